"""Fixtures shared by every test package: a migrated template database per run, each test's own copy of it.

The database is SQLite by default. With ``FINETUNER_TEST_DATABASE_URL`` set to a PostgreSQL server's URL (what
`.ci/postgres.sh start` prints), every test gets its own PostgreSQL database instead, created from a migrated
template database, and `DATABASE_URL` points the app and worker processes at it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if (
    str(ROOT) not in sys.path
):  # the packages live at the repository root; pytest may not have put it on sys.path
    sys.path.insert(0, str(ROOT))

from storage.db import init_db, make_engine, session_factory  # noqa: E402

PG_URL = os.environ.get("FINETUNER_TEST_DATABASE_URL")  # a server URL: tests run on PostgreSQL
_db_names = itertools.count()


def _pg_admin(statement: str) -> None:
    """Run CREATE/DROP DATABASE on the server (they cannot run inside a transaction)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _pg_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """A database migrated to head once per run (a SQLite file, or a PostgreSQL template database's name);
    tests copy it, since migrating per test would cost ~0.1 s each."""
    if PG_URL:
        name = f"ft_template_{os.getpid()}"
        _pg_admin(f"DROP DATABASE IF EXISTS {name}")
        _pg_admin(f"CREATE DATABASE {name}")
        engine = make_engine(_pg_url(name))
        init_db(engine)
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template without connections
        yield name
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    path = tmp_path_factory.mktemp("template") / "finetuner.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    engine.dispose()
    yield path


@pytest.fixture
def db_url(tmp_path, template_db):
    """URL of this test's own database, already at the head revision (SQLite: ``tmp_path/data/finetuner.db``)."""
    if PG_URL:
        name = f"ft_test_{os.getpid()}_{next(_db_names)}"
        _pg_admin(f"CREATE DATABASE {name} TEMPLATE {template_db}")
        yield _pg_url(name)
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # FORCE: a worker process may still hold it
        return
    path = tmp_path / "data" / "finetuner.db"
    path.parent.mkdir(exist_ok=True)
    shutil.copy(template_db, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def offline(monkeypatch):
    """No test reaches the network: a hub id fails at once with the engine's offline message."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def data_dir(tmp_path, db_url, monkeypatch) -> Path:
    """A fresh DATA_DIR (database already migrated) set in the environment, as the app and worker see it."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    monkeypatch.setenv("DATA_DIR", str(d))
    if PG_URL:
        monkeypatch.setenv("DATABASE_URL", db_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    return d


@pytest.fixture
def sessions(data_dir, db_url):
    """A session factory on the test's database (its own engine, disposed afterwards)."""
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()
