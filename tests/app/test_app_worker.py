"""The worker, for real on a 1-layer model: complete, cancel, SIGKILL -> interrupted -> resume, readable failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import worker
from storage import repo

ROOT = Path(__file__).resolve().parents[2]


def claim(sessions, job_id: int) -> None:
    with sessions() as s:
        job = repo.claim_next_job(s, os.getpid())
        assert job is not None and job.id == job_id


def view(sessions, job_id: int) -> dict:
    with sessions() as s:
        return repo.job_view(s, job_id)


def wait_for(predicate, timeout_s: float = 60.0, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("condition not met in time")


def test_job_runs_queued_to_completed_with_loss_points_and_model_folder(sessions, make_job, data_dir):
    job_id = make_job(epochs=2)
    assert view(sessions, job_id)["status"] == "queued"
    claim(sessions, job_id)
    assert view(sessions, job_id)["status"] == "running"

    assert worker.run_job(sessions, job_id, data_dir / "models") == "completed"

    v = view(sessions, job_id)
    assert v["status"] == "completed" and v["progress"] == 1.0
    assert len(v["loss"]["train"]["loss"]) == v["total_steps"]  # log_every=1: one point a step
    assert len(v["loss"]["eval"]["loss"]) == 2 and len(v["evals"]) == 2
    assert "accuracy" in v["metrics"] and "confusion_matrix" in v["evals"][0]["metrics"]
    assert Path(v["model_dir"]) == data_dir / "models" / str(job_id)
    assert (Path(v["model_dir"]) / "finetuner.json").exists()
    assert not (Path(v["model_dir"]) / "checkpoint").exists()


def test_cancel_stops_between_steps_and_keeps_checkpoint(sessions, make_job, data_dir, monkeypatch):
    job_id = make_job(epochs=30)  # far more steps than run before the cancel
    claim(sessions, job_id)
    on_eval = worker.JobReporter.on_eval

    def cancel_after_epoch_1(self, info):  # the user presses Cancel during epoch 2, from another session
        on_eval(self, info)
        if info.epoch == 1:
            with sessions() as s:
                assert repo.request_cancel(s, job_id) == "cancelling"

    monkeypatch.setattr(worker.JobReporter, "on_eval", cancel_after_epoch_1)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "cancelled"
    v = view(sessions, job_id)
    assert v["status"] == "cancelled" and v["step"] < v["total_steps"]
    assert (data_dir / "models" / str(job_id) / "checkpoint" / "state.pt").exists()


def test_bad_model_id_fails_with_readable_reason(sessions, make_job, data_dir):
    job_id = make_job(model="no-such-org/no-such-model")
    claim(sessions, job_id)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "failed"
    v = view(sessions, job_id)
    assert v["status"] == "failed"
    assert v["error"].startswith("could not load the model") and "no-such-org/no-such-model" in v["error"]
    assert "Traceback" not in v["error"]


def test_invalid_setting_fails_with_the_config_message(sessions, make_job, data_dir):
    job_id = make_job(mode="half")
    claim(sessions, job_id)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "failed"
    assert "mode must be" in view(sessions, job_id)["error"]


def test_sigkilled_worker_is_interrupted_at_next_start_and_resumes_to_completion(
    sessions, make_job, data_dir, worker_env
):
    job_id = make_job(epochs=3)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "worker.py"),
            "--data-dir",
            str(data_dir),
            "--nice",
            "0",
            "--poll-s",
            "0.2",
        ],
        env=worker_env,
        cwd=ROOT,
    )
    try:
        state = data_dir / "models" / str(job_id) / "checkpoint" / "state.pt"
        wait_for(state.exists, timeout_s=90)  # epoch 1 is checkpointed
        assert view(sessions, job_id)["status"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert view(sessions, job_id)["status"] == "running"  # nobody has noticed yet

    assert worker.recover_jobs(sessions) == [job_id]  # what the app does at start
    assert view(sessions, job_id)["status"] == "interrupted"
    with sessions() as s:
        assert repo.requeue_for_resume(s, job_id).resume_from  # Resume
    worker.work(sessions, data_dir / "models", once=True)

    v = view(sessions, job_id)
    assert v["status"] == "completed", v["error"]
    assert len(v["evals"]) == 3  # epochs 2 and 3 were run after the resume, epoch 1 was not repeated
    assert sorted(e["epoch"] for e in v["evals"]) == [1, 2, 3]


def test_recover_leaves_jobs_of_a_live_worker_alone(sessions, make_job):
    job_id = make_job()
    claim(sessions, job_id)  # claimed by this (live) test process, heartbeat just now
    assert worker.recover_jobs(sessions) == []
    assert view(sessions, job_id)["status"] == "running"


def test_supervisor_restarts_a_dead_worker(sessions, data_dir, worker_env):
    sup = worker.WorkerSupervisor(sessions, data_dir, env=worker_env, check_s=0.2).start()
    try:
        first = sup.proc.pid
        sup.proc.kill()
        wait_for(lambda: sup.proc.pid != first, timeout_s=15)
        assert sup.proc.poll() is None and sup.restarts == 1
    finally:
        sup.stop()
    assert sup.proc.poll() is not None


def test_nan_loss_fails_with_readable_reason(sessions, make_job, data_dir):
    job_id = make_job(optimizer="sgd", lr=1e38, grad_clip=0, epochs=3)  # the weights overflow to inf at once
    claim(sessions, job_id)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "failed"
    error = view(sessions, job_id)["error"]
    assert "training loss became nan" in error and "lower learning rate" in error


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (MemoryError(), "out of memory: lower the batch size"),
        (
            RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "out of memory: lower the batch size",
        ),
        (ValueError("eval_split must be in [0, 1)"), "eval_split must be in [0, 1)"),
        (KeyError("text"), "KeyError: 'text'"),
    ],
)
def test_readable_error(err, expected):
    assert worker.readable_error(err).startswith(expected)
