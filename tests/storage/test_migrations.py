"""Schema creation and upgrades: Alembic run from code, pragmas, database URL configuration."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from storage import repo
from storage.db import (
    _alembic_config,
    current_revision,
    database_url,
    init_db,
    make_engine,
    open_db,
    session_factory,
)
from storage.models import Base


def test_head_schema_matches_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    init_db(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []  # a model change without a migration fails here
    assert current_revision(engine) == "0004"


def test_init_db_is_idempotent_and_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    Session = open_db(url)
    with Session() as s:
        repo.create_dataset(s, "keep", "sequence", ["a"])
    Session = open_db(url)  # a restart runs the upgrade again
    with Session() as s:
        assert [d.name for d in repo.list_datasets(s)] == ["keep"]


def test_upgrade_from_first_revision_keeps_rows(tmp_path):
    """A database written by the first release upgrades to head with every row intact."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    init_db(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets VALUES (1, 'old', 'sequence', '2024-01-01', '2024-01-01')"))
        conn.execute(text("INSERT INTO labels VALUES (1, 1, 'pos', 0), (2, 1, 'neg', 1)"))
        conn.execute(
            text(
                "INSERT INTO examples (id, dataset_id, text, label, split, created_at) "
                "VALUES (1, 1, 'great', 'pos', 'train', '2024-01-01'), (2, 1, 'awful', NULL, NULL, '2024-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, dataset_id, config, status, created_at, progress, metrics) "
                "VALUES (1, 1, :cfg, 'completed', '2024-01-02', 1.0, :m)"
            ),
            {"cfg": json.dumps({"epochs": 3}), "m": json.dumps({"accuracy": 0.9})},
        )
        conn.execute(
            text("INSERT INTO loss_points VALUES (1, 1, 10, 0.5, 'train', 0.42, 0.001, '2024-01-02')")
        )
    init_db(engine)
    assert current_revision(engine) == "0004"
    with session_factory(engine)() as s:
        assert repo.label_names(s, 1) == ["pos", "neg"]
        assert repo.count_examples(s, 1) == 2 and repo.count_examples(s, 1, status="labeled") == 1
        view = repo.job_view(s, 1)
        assert (view["kind"], view["priority"], view["config"]) == ("train", 0, {"epochs": 3})
        assert view["metrics"] == {"accuracy": 0.9} and view["loss"]["train"]["loss"] == [0.42]
        ex = repo.next_example(s, 1, owner="ana")  # the new lease columns work on old rows
        assert ex.text == "awful" and ex.lease_owner == "ana"
        repo.add_eval_point(s, 1, 1, 10, {"f1": 0.5})


def test_sqlite_pragmas_on_every_connection(tmp_path):
    engine = make_engine(
        f"sqlite:///{tmp_path / 'p.db'}"
    )  # SQLite's own, also when the suite runs on PostgreSQL
    init_db(engine)
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        engine.dispose()  # the next loop opens a brand-new connection


def test_database_url_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DATA_DIR", raising=False)
    assert database_url() == "sqlite:///data/finetuner.db"
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    assert database_url() == f"sqlite:///{tmp_path / 'd' / 'finetuner.db'}"
    make_engine()  # creates the folder so SQLite can create the file
    assert (tmp_path / "d").is_dir()
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    assert database_url() == "sqlite:///elsewhere.db"


def test_in_memory_database_is_shared_across_sessions():
    Session = open_db("sqlite://")
    with Session() as s:
        repo.create_dataset(s, "mem", "token", ["PER"])
    with Session() as s:
        assert repo.get_dataset_by_name(s, "mem").label_names == ["PER"]


def test_0004_adds_the_problem_and_downgrades(tmp_path):
    """Datasets from before 0004 are single-label; the downgrade drops the column and keeps every row."""
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'p4.db'}")
    init_db(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets VALUES (1, 'old', 'sequence', '2024-01-01', '2024-01-01')"))
        conn.execute(text("INSERT INTO labels VALUES (1, 1, 'pos', 0)"))
        conn.execute(
            text(
                "INSERT INTO examples (id, dataset_id, text, label, created_at) VALUES (1, 1, 'a', 'pos', '2024-01-01')"
            )
        )
    init_db(engine)
    assert current_revision(engine) == "0004"
    with session_factory(engine)() as s:
        assert repo.get_dataset(s, 1).problem == "single"  # the server default fills old rows
        ds = repo.create_dataset(s, "emo", "sequence", ["joy"], problem="multilabel")
        repo.add_examples(s, ds.id, [{"text": "b", "label": ["joy"]}])
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # as init_db: the table rebuild must not cascade
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        command.downgrade(_alembic_config(conn), "0003")
        conn.commit()
    assert current_revision(engine) == "0003"
    with engine.connect() as conn:
        assert "problem" not in [row[1] for row in conn.exec_driver_sql("PRAGMA table_info(datasets)")]
        assert conn.exec_driver_sql("SELECT count(*) FROM examples").scalar() == 2
        assert conn.exec_driver_sql("SELECT count(*) FROM labels").scalar() == 2
    init_db(engine)  # and up again
    with session_factory(engine)() as s:
        assert [d.problem for d in repo.list_datasets(s)] == ["single", "single"]
