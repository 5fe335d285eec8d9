"""Fault injection on real worker processes: issue 20's findings 1-6, each reproduced and checked fixed.

The test plays the app: it calls `recover_jobs` as the supervisor does every few seconds. Workers run with a
3 s lease (`fault_support.LEASE_S`), so a lapse takes seconds, not the production minute. The process tests
are marked slow (about 100 s together); their in-process twins in tests/app/test_app_worker.py and
tests/storage/test_repo_jobs.py run by default. The figures of this module are in the README's "Reliability"
section.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest
from concurrency_support import wait_for
from fault_support import FAULTY_WORKER, LEASE_S
from sqlalchemy.exc import OperationalError

import supervisor
import worker
from storage import repo
from storage.errors import readable_db_error


def no_duplicate_points(v: dict) -> None:
    """Every step has one train point, every evaluation one eval point and one eval row: nothing doubled."""
    steps = v["loss"]["train"]["step"]
    assert steps == list(range(1, v["total_steps"] + 1)), steps
    eval_steps = [e["step"] for e in v["evals"]]
    assert eval_steps == sorted(set(eval_steps)) == v["loss"]["eval"]["step"]


@pytest.mark.slow  # a real worker process each (~15-35 s): `pytest -m slow tests/reliability`
def test_1_live_worker_keeps_its_job_through_a_slow_start_and_a_short_stop(
    sessions, make_job, start_worker, view
):
    """Finding 1: the lease is renewed from the claim on (torch takes longer to import than the lease lasts),
    and a stop shorter than the lease costs nothing."""
    job_id = make_job(epochs=3)
    proc = start_worker("slow_steps")
    recovered = []

    def recovering(until):  # what the app does every few seconds, from the moment the job is queued
        def check():
            recovered.extend(supervisor.recover_jobs(sessions))
            return until(view(job_id))

        return check

    wait_for(recovering(lambda v: v["step"]), timeout_s=240, every_s=0.2)  # imported torch, now training
    proc.send_signal(signal.SIGSTOP)
    time.sleep(LEASE_S / 3)
    assert supervisor.recover_jobs(sessions) == []  # stopped, but its lease still runs
    proc.send_signal(signal.SIGCONT)
    wait_for(recovering(lambda v: v["status"] != "running"), timeout_s=240, every_s=0.2)
    v = view(job_id)
    assert recovered == [] and v["status"] == "completed", (v["status"], v["message"], v["error"])
    assert v["step"] == v["total_steps"] and v["attempt"] == 1
    no_duplicate_points(v)


@pytest.mark.slow  # a real worker process each (~15-35 s): `pytest -m slow tests/reliability`
def test_1_2_3_stopped_worker_loses_its_job_is_fenced_and_the_resume_runs_alone(
    sessions, make_job, start_worker, view
):
    """Findings 1-3: a worker stopped past its lease loses the job (interrupted, with the real silence); once
    continued it writes nothing more (no FOREIGN KEY failure, no KeyError after the dataset went), stays alive,
    and the resumed job completes with one curve."""
    job_id = make_job(epochs=4)
    proc = start_worker("slow_steps")
    wait_for(lambda: view(job_id)["step"], timeout_s=240)
    proc.send_signal(signal.SIGSTOP)
    assert wait_for(lambda: supervisor.recover_jobs(sessions), timeout_s=60) == [job_id]
    v = view(job_id)
    assert v["status"] == "interrupted"
    silence = float(v["message"].split("no heartbeat for ")[1].split(" s")[0])
    assert silence >= LEASE_S  # the real silence, never "0 s"
    points = len(v["loss"]["train"]["step"])

    with sessions() as s:  # Resume: the old attempt is fenced, the new one is queued (the worker is stopped)
        repo.requeue_for_resume(s, job_id)
    proc.send_signal(signal.SIGCONT)
    wait_for(lambda: view(job_id)["status"] == "completed", timeout_s=240, every_s=0.2)
    v = view(job_id)
    assert v["attempt"] == 2 and v["error"] is None and len(v["loss"]["train"]["step"]) >= points
    no_duplicate_points(v)
    log = proc.log_path.read_text()
    assert "attempt 1 no longer holds the job" in log  # the old attempt learned it at its next write

    # finding 3: the dataset of a job whose worker is stopped past its lease may go; the worker survives it
    doomed = make_job(name="doomed", epochs=50)
    wait_for(lambda: view(doomed)["step"], timeout_s=240)
    with sessions() as s:
        dataset_id = repo.get_job(s, doomed).dataset_id
        with pytest.raises(ValueError, match=f"job {doomed} on this dataset is running"):
            repo.delete_dataset(s, dataset_id)
    proc.send_signal(signal.SIGSTOP)
    assert wait_for(lambda: supervisor.recover_jobs(sessions), timeout_s=60) == [doomed]
    with sessions() as s:
        repo.delete_dataset(s, dataset_id)
        after = make_job(name="after", epochs=1)
    assert after > doomed  # ids are never reused: a late write cannot land on a newer job
    proc.send_signal(signal.SIGCONT)
    wait_for(lambda: view(after)["status"] == "completed", timeout_s=240, every_s=0.2)
    log = proc.log_path.read_text()
    assert f"job {doomed} attempt 1 no longer holds the job (deleted)" in log
    assert "FOREIGN KEY" not in log and "KeyError" not in log and proc.poll() is None


@pytest.mark.slow  # a real worker process each (~15-35 s): `pytest -m slow tests/reliability`
def test_4_sigkill_between_eval_and_checkpoint_then_resume_keeps_one_curve(
    sessions, make_job, start_worker, view, data_dir
):
    """Finding 4: killed after epoch 1's eval point but before its checkpoint, the resumed run starts over and
    its curve replaces the first attempt's (no 228 rows for 171 steps)."""
    job_id = make_job(epochs=2)
    proc = start_worker("kill_at_checkpoint")
    assert proc.wait(timeout=240) == -signal.SIGKILL
    v = view(job_id)
    assert v["status"] == "running" and v["evals"]  # the eval point is in, no checkpoint was written
    assert supervisor.recover_jobs(sessions) == [
        job_id
    ]  # a dead local process: no need to wait for the lease
    assert view(job_id)["message"] == "the worker process stopped"
    with sessions() as s:
        repo.requeue_for_resume(s, job_id)
    worker.work(sessions, data_dir / "models", once=True)
    v = view(job_id)
    assert v["status"] == "completed", v["error"]
    no_duplicate_points(v)
    assert [e["epoch"] for e in v["evals"]] == [1, 2]


@pytest.mark.slow  # a real worker process each (~15-35 s): `pytest -m slow tests/reliability`
def test_5_disk_full_at_the_checkpoint_fails_the_job_with_the_path(make_job, start_worker, view):
    """Finding 5, the database still writable: the job ends failed, "disk full at <path>", the worker lives on."""
    job_id = make_job(epochs=1)
    proc = start_worker("enospc_checkpoint")
    wait_for(lambda: view(job_id)["status"] == "failed", timeout_s=240)
    error = view(job_id)["error"]
    assert error.startswith("disk full at ") and "checkpoint" in error and "Traceback" not in error
    assert proc.poll() is None


@pytest.mark.slow  # a real worker process each (~15-35 s): `pytest -m slow tests/reliability`
def test_5_disk_full_everywhere_the_supervisor_respawns_and_records_the_reason(
    sessions, make_job, data_dir, worker_env, view, monkeypatch
):
    """Finding 5, the database full too: the worker leaves the reason in a file and exits; recovery raises
    ("database or disk is full") yet the supervisor respawns the worker, and records the reason once it can."""
    job_id = make_job(epochs=1)
    recover, refused, sup = supervisor.recover_jobs, [], None

    def full_until_respawn(*args, **kwargs):  # the app's writes fail too, until space is freed
        if sup.restarts == 0:
            refused.append(kwargs.get("exit_code"))
            raise OperationalError(
                "UPDATE jobs ...", {}, sqlite3.OperationalError("database or disk is full")
            )
        return recover(*args, **kwargs)

    monkeypatch.setattr(supervisor, "recover_jobs", full_until_respawn)
    env = {**worker_env, "FINETUNER_FAULTS": "enospc_checkpoint,db_full"}
    sup = supervisor.WorkerSupervisor(
        sessions, data_dir, env=env, nice=0, check_s=0.2, worker_py=FAULTY_WORKER
    )
    sup.start()
    try:
        first = sup.proc.pid
        wait_for(lambda: sup.proc.pid != first, timeout_s=240)  # respawned although recovery raised
        assert sup.last_exit == supervisor.EXIT_DISK_FULL and supervisor.EXIT_DISK_FULL in refused
        wait_for(lambda: view(job_id)["status"] == "failed", timeout_s=60)  # recorded once it could write
    finally:
        sup.stop()
    error = view(job_id)["error"]
    assert error.startswith("disk full at ") and "checkpoint" in error
    assert not list((data_dir / "logs").glob("*.reason"))  # recorded once, then removed


def test_5_ui_shows_a_readable_database_error(data_dir):
    err = OperationalError(
        "INSERT INTO datasets ...", {}, sqlite3.OperationalError("database or disk is full")
    )
    message = readable_db_error(err, str(data_dir / "finetuner.db"))
    assert message.startswith(f"disk full at {data_dir / 'finetuner.db'}") and "INSERT" not in message


def test_6_diverged_frozen_run_fails_with_lr_advice(sessions, make_job, data_dir, view):
    """Finding 6: lr 1e6 in frozen mode ended "completed" with eval loss 6.5e14; now it fails, saying why."""
    job_id = make_job(mode="frozen", lr=1e6, epochs=3)
    with sessions() as s:
        repo.claim_next_job(s, 0)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "failed"
    error = view(job_id)["error"]
    assert "diverged" in error and "lower learning rate" in error
