"""A job that asks for 2 processes: the worker trains it under torchrun (finetuner/launch.py), same job record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import worker
from storage import repo


@pytest.mark.slow
def test_job_with_nproc_2_trains_under_torchrun_and_reports_once(sessions, make_job, data_dir, monkeypatch):
    from finetuner import launch

    launched = []
    original = launch.train_in_processes

    def spy(*args, nproc, **kwargs):
        launched.append(nproc)
        return original(*args, nproc=nproc, **kwargs)

    monkeypatch.setattr(launch, "train_in_processes", spy)
    job_id = make_job(epochs=2, nproc=2)
    with sessions() as s:
        assert repo.claim_next_job(s, os.getpid()).id == job_id

    assert worker.run_job(sessions, job_id, data_dir / "models") == "completed"
    assert launched == [2]

    with sessions() as s:
        v = repo.job_view(s, job_id)
    assert v["status"] == "completed" and v["progress"] == 1.0
    assert len(v["loss"]["train"]["loss"]) == v["total_steps"]  # one point a step: rank 0 alone reports
    assert len(v["evals"]) == 2 and "accuracy" in v["metrics"]
    assert (Path(v["model_dir"]) / "finetuner.json").exists()
    assert Path(v["model_dir"]) == data_dir / "models" / str(job_id)
