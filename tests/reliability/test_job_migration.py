"""Migration 0003 (job leases, attempts, AUTOINCREMENT) rebuilds the jobs table: every row must survive it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from storage import repo
from storage.db import current_revision, init_db, make_engine, session_factory


@pytest.mark.parametrize("rows", [0, 3])
def test_0002_database_upgrades_keeping_jobs_curves_and_scores(tmp_path, rows):
    """With foreign keys on, SQLite's DROP TABLE of the old jobs table would cascade-delete every curve."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    init_db(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets VALUES (1, 'old', 'sequence', '2024-01-01', '2024-01-01')"))
        conn.execute(
            text("INSERT INTO examples (id, dataset_id, text, created_at) VALUES (1, 1, 'x', '2024-01-01')")
        )
        for job_id in range(1, rows + 1):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, dataset_id, config, status, created_at, progress, kind, priority) "
                    "VALUES (:id, 1, :cfg, 'completed', '2024-01-02', 1.0, 'train', 0)"
                ),
                {"id": job_id, "cfg": json.dumps({"epochs": job_id})},
            )
            conn.execute(
                text("INSERT INTO loss_points (job_id, step, epoch, split, loss, created_at) "
                     "VALUES (:id, 1, 1, 'train', 0.5, '2024-01-02')"),
                {"id": job_id},
            )  # fmt: skip
            conn.execute(
                text("INSERT INTO eval_points (job_id, epoch, step, metrics, created_at) "
                     "VALUES (:id, 1, 1, '{}', '2024-01-02')"),
                {"id": job_id},
            )  # fmt: skip
            conn.execute(
                text("INSERT INTO example_scores (example_id, job_id, confidence, created_at) "
                     "VALUES (1, :id, 0.5, '2024-01-02')"),
                {"id": job_id},
            )  # fmt: skip
    init_db(engine)
    assert current_revision(engine) == "0004"  # the head: 0003 and every later migration ran
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # restored after the migration
        counts = [conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar() for t in
                  ("jobs", "loss_points", "eval_points", "example_scores")]  # fmt: skip
    assert counts == [rows] * 4
    with session_factory(engine)() as s:
        for job_id in range(1, rows + 1):
            v = repo.job_view(s, job_id)
            assert (v["config"], v["attempt"], v["loss"]["train"]["loss"]) == ({"epochs": job_id}, 0, [0.5])
        if rows:
            repo.delete_job(s, rows)
        new = repo.create_job(s, 1, {})
        assert new.id == rows + 1  # the deleted job's id is not handed out again
        repo.request_cancel(s, new.id)
        repo.delete_dataset(s, 1)  # cascades still reach every child table of the rebuilt jobs table
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM loss_points").scalar() == 0
