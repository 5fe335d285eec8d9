"""Engine and session factory; the schema is created and upgraded by Alembic, run from code.

The web app and the worker are separate processes that both write, so every SQLite connection gets WAL
(readers never block the writer), foreign keys (SQLite leaves them off by default) and a busy timeout
(a writer waits for the other's lock instead of failing with "database is locked").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

BUSY_TIMEOUT_MS = 30_000  # longer than any single write transaction we make, including a 1M-row import
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def database_url() -> str:
    """The configured database URL.

    Returns:
        ``$DATABASE_URL`` if set, else SQLite at ``$DATA_DIR/finetuner.db`` (``DATA_DIR`` defaults to ``./data``).

    >>> import os; os.environ["DATABASE_URL"] = "sqlite:///x.db"; database_url()
    'sqlite:///x.db'
    >>> del os.environ["DATABASE_URL"]
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    data_dir = Path(os.environ.get("DATA_DIR", "./data"))
    return f"sqlite:///{data_dir / 'finetuner.db'}"


def _on_sqlite_connect(dbapi_conn, _record) -> None:
    """Set the per-connection pragmas (they are not stored in the database file, except WAL)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; FULL would fsync every commit
    cur.close()


def make_engine(url: str | None = None, echo: bool = False) -> Engine:
    """Create an engine; for SQLite, create the parent folder and set the pragmas on every connection.

    Args:
        url: any SQLAlchemy URL; defaults to `database_url()`.
        echo: log SQL.

    Returns:
        A new Engine. Each process (web app, worker) makes its own.

    >>> make_engine("sqlite://").dialect.name
    'sqlite'
    """
    url = url or database_url()
    # ensure_ascii=False keeps JSON token lists searchable with LIKE for non-ASCII words
    common = {"echo": echo, "json_serializer": lambda obj: json.dumps(obj, ensure_ascii=False)}
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, **common)
    kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}}
    path = url.split("///", 1)[1] if "///" in url else ""
    if path in ("", ":memory:"):
        kwargs["poolclass"] = StaticPool  # one shared connection, or every session would see an empty DB
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **common, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to `engine`; objects stay readable after commit (the UI reads them then)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def _alembic_config(connection):
    """An Alembic Config pointing at our migrations and reusing `connection`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def init_db(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision`; safe to call at every start, from every process.

    Args:
        engine: the engine to migrate.
        revision: an Alembic revision; tests use the first one to check upgrades keep data.

    >>> init_db(make_engine("sqlite://"))
    """
    from alembic import command

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # A table rebuild (0003) drops the old table: with foreign keys on, that cascade-deletes its
            # children. The pragma is a no-op inside a transaction, so it is set before BEGIN, restored after.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            # pysqlite runs DDL outside a transaction; take the write lock first so that an app and a
            # worker starting together migrate one after the other instead of both creating tables.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        command.upgrade(_alembic_config(conn), revision)
        conn.commit()
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_db(url: str | None = None) -> sessionmaker[Session]:
    """Open (create or upgrade) the database and return a session factory: the one call an entry point needs.

    Args:
        url: any SQLAlchemy URL; defaults to `database_url()`.

    Returns:
        A sessionmaker; use ``with Session() as s: ...``.

    >>> Session = open_db("sqlite://")
    >>> with Session() as s: s.execute(text("select 1")).scalar()  # doctest: +SKIP
    1
    """
    engine = make_engine(url)
    init_db(engine)
    return session_factory(engine)
