"""The worker, for real on a 1-layer model: complete, cancel, SIGKILL -> interrupted -> resume, readable failures."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from concurrency_support import wait_for
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

import supervisor
import worker
from storage import repo
from storage.models import Job, utcnow
from ui import live
from ui.common import Ctx

ROOT = Path(__file__).resolve().parents[2]


def claim(sessions, job_id: int) -> None:
    with sessions() as s:
        job = repo.claim_next_job(s, os.getpid())
        assert job is not None and job.id == job_id


def view(sessions, job_id: int) -> dict:
    with sessions() as s:
        return repo.job_view(s, job_id)


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
    meta = json.loads((Path(v["model_dir"]) / "finetuner.json").read_text())
    assert v["metrics"]["ran_as"] == meta["config"]["mode"] != "auto"  # the estimate's speeds read it
    shown = live.poll(Ctx(settings=None, sessions=sessions), job_id)["status_md"]
    assert f"Auto ran it as **{meta['config']['mode']}**" in shown  # the job was queued as auto
    assert not (Path(v["model_dir"]) / "checkpoint").exists()


def test_cancel_stops_between_steps_and_keeps_checkpoint(sessions, make_job, data_dir, monkeypatch):
    # full mode: encoder steps take long enough for the cancel check between them (an Auto frozen head on this
    # tiny set runs its 300 steps in well under the check interval, so it would finish first)
    job_id = make_job(epochs=30, mode="full")  # far more steps than run before the cancel
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
    job_id = make_job(epochs=3, mode="full")  # full: a frozen head would finish before the kill
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


# --- leases, fencing, recovery, disk full (issue 20; the real-process versions are in tests/reliability) --------


def test_recovery_after_an_app_restart_says_so(sessions, make_job):
    job_id = make_job()
    with sessions() as s:
        repo.claim_next_job(s, 0)  # pid 0: the worker died with the previous app
    assert supervisor.recover_jobs(sessions, app_start=True) == [job_id]
    assert view(sessions, job_id)["message"] == "the app restarted while this job ran"  # not "for 0 s"


def test_recovery_never_judges_another_hosts_worker_by_pid(sessions, make_job):
    job_id = make_job()
    with sessions() as s:
        repo.claim_next_job(s, 999_999_999, holder="another-host:999999999")  # no such PID here
    assert supervisor.recover_jobs(sessions) == []  # its lease runs: alive, wherever it is
    with sessions() as s:
        s.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
        s.commit()
    assert supervisor.recover_jobs(sessions) == [job_id]
    assert "the worker stopped responding: no heartbeat for" in view(sessions, job_id)["message"]


def test_lease_is_renewed_while_the_main_thread_is_busy(sessions, make_job):
    """The first heartbeat used to come only after torch was imported: longer than the lease under load."""
    job_id = make_job()
    lease_s = 2.0
    with sessions() as s:
        attempt = repo.claim_next_job(s, os.getpid(), lease_s=lease_s).attempt
    with worker.Lease(sessions, job_id, attempt, lease_s=lease_s):
        time.sleep(lease_s * 1.5)  # the main thread busy (an import, a long step), past the first lease
        assert supervisor.recover_jobs(sessions) == []
    assert view(sessions, job_id)["status"] == "running"


def test_worker_whose_job_was_taken_stops_without_writing(sessions, make_job, data_dir, monkeypatch):
    job_id = make_job(epochs=30)
    claim(sessions, job_id)
    on_eval, seen = worker.JobReporter.on_eval, {}

    def taken_after_epoch_1(self, info):  # the app judged the worker gone and the user pressed Resume
        on_eval(self, info)
        if info.epoch == 1:
            with sessions() as s:
                repo.interrupt_job(s, job_id, 1, "the worker stopped responding: no heartbeat for 61 s")
                repo.requeue_for_resume(s, job_id)
            seen.update(view(sessions, job_id))

    monkeypatch.setattr(worker.JobReporter, "on_eval", taken_after_epoch_1)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "fenced"
    v = view(sessions, job_id)
    assert (
        v["status"] == "queued" and v["error"] is None and v["loss"] == seen["loss"]
    )  # nothing more written
    worker.work(sessions, data_dir / "models", once=True)  # the resumed attempt runs alone, to the end
    v = view(sessions, job_id)
    assert (v["status"], v["attempt"]) == ("completed", 2), v["error"]
    assert v["loss"]["train"]["step"] == list(range(1, v["total_steps"] + 1))  # one curve, no doubled steps


def test_killed_before_the_first_checkpoint_resume_replaces_the_curve(
    sessions, make_job, data_dir, monkeypatch
):
    """Killed after epoch 1's eval point but before its checkpoint: the restart's points replace the first's."""
    from finetuner import training

    job_id = make_job(epochs=2)
    with sessions() as s:
        repo.claim_next_job(s, 0)  # pid 0: "dies" with the kill below

    def killed(*_args):
        raise KeyboardInterrupt  # what run_job lets through, like a SIGKILL leaves the job running

    monkeypatch.setattr(training, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        worker.run_job(sessions, job_id, data_dir / "models")
    monkeypatch.undo()
    assert view(sessions, job_id)["evals"]  # epoch 1's eval point is in
    assert supervisor.recover_jobs(sessions) == [job_id]
    with sessions() as s:
        repo.requeue_for_resume(s, job_id)
    worker.work(sessions, data_dir / "models", once=True)
    v = view(sessions, job_id)
    assert v["status"] == "completed", v["error"]
    assert v["loss"]["train"]["step"] == list(range(1, v["total_steps"] + 1))
    assert [e["epoch"] for e in v["evals"]] == [1, 2]


def _no_space(_obj, path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_disk_full_at_the_checkpoint_fails_the_job_with_its_path(sessions, make_job, data_dir, monkeypatch):
    from finetuner import checkpoints

    job_id = make_job()
    claim(sessions, job_id)
    monkeypatch.setattr(checkpoints, "atomic_save", _no_space)
    assert worker.run_job(sessions, job_id, data_dir / "models") == "failed"
    error = view(sessions, job_id)["error"]  # the feature cache (frozen) or the state is the first write
    assert error.startswith(f"disk full at {data_dir / 'models' / str(job_id) / 'checkpoint'}")
    assert error.endswith(": free some space, then train again")


def test_disk_full_for_the_database_too_leaves_the_reason_for_recovery(
    sessions, make_job, data_dir, monkeypatch
):
    from finetuner import checkpoints

    job_id = make_job()
    with sessions() as s:
        repo.claim_next_job(s, 0)  # pid 0: gone once run_job gives up, as the worker exits
    monkeypatch.setattr(checkpoints, "atomic_save", _no_space)
    db_full = OperationalError("UPDATE jobs ...", {}, sqlite3.OperationalError("database or disk is full"))
    monkeypatch.setattr(repo, "fail_job", lambda *a, **k: (_ for _ in ()).throw(db_full))
    with pytest.raises(worker.CannotRecord) as info:
        worker.run_job(sessions, job_id, data_dir / "models")
    assert info.value.disk_full
    monkeypatch.undo()  # space was freed
    assert supervisor.recover_jobs(sessions, data_dir, exit_code=supervisor.EXIT_DISK_FULL) == [job_id]
    v = view(sessions, job_id)
    assert v["status"] == "failed" and v["error"].startswith("disk full at ") and "checkpoint" in v["error"]


def test_supervisor_keeps_respawning_when_recovery_raises(sessions, data_dir, worker_env, monkeypatch):
    def full(*_args, **_kwargs):
        raise OperationalError("UPDATE jobs ...", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(supervisor, "recover_jobs", full)
    sup = worker.WorkerSupervisor(sessions, data_dir, env=worker_env, check_s=0.2).start()
    try:
        first = sup.proc.pid
        sup.proc.kill()
        wait_for(lambda: sup.proc.pid != first, timeout_s=15)
        assert sup.proc.poll() is None and sup.last_exit == -signal.SIGKILL
    finally:
        sup.stop()


def test_an_idle_worker_recovers_lapsed_jobs_without_the_app(sessions, make_job, data_dir, monkeypatch):
    job_id = make_job()
    with sessions() as s:
        repo.claim_next_job(s, 1, holder="another-host:1", lease_s=0)  # its lease lapses at once
    rounds = iter(range(1000))  # bounds the loop should recovery never happen

    def parent_alive(_pid):  # the worker's exit check: its parent "dies" once the job was recovered
        next(rounds)
        return view(sessions, job_id)["status"] == "running"

    monkeypatch.setattr(worker, "pid_alive", parent_alive)
    worker.work(sessions, data_dir / "models", poll_s=0.01, parent_pid=os.getpid(), lease_s=0.05)
    assert view(sessions, job_id)["status"] == "interrupted"
