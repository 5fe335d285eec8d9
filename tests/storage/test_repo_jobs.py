"""Job queue queries: create, claim (atomically, across engines), progress, finish, cancel, recover."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from storage import repo
from storage.db import make_engine, session_factory
from storage.models import Job, LossPoint, utcnow


@pytest.fixture
def dataset(session, make_dataset):
    """A small labeled sequence dataset to hang jobs on."""
    return make_dataset(session, "sequence", n=4)


def _age_heartbeat(session, job_id: int, seconds: float) -> None:
    """Pretend the job's worker last beat `seconds` ago."""
    session.execute(
        update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
    )
    session.commit()


def test_create_and_claim_in_priority_then_creation_order(session, dataset):
    a = repo.create_job(session, dataset.id, {"epochs": 1})
    b = repo.create_job(session, dataset.id, {"epochs": 2}, kind="score")
    c = repo.create_job(session, dataset.id, {"epochs": 3}, priority=5)
    assert a.status == "queued" and b.kind == "score" and a.config == {"epochs": 1}
    with pytest.raises(ValueError):
        repo.create_job(session, dataset.id, {}, kind="no-such-kind")
    with pytest.raises(KeyError):
        repo.create_job(session, 999, {})
    claimed = [repo.claim_next_job(session, worker_pid=42) for _ in range(4)]
    assert [j.id if j else None for j in claimed] == [c.id, a.id, b.id, None]
    job = repo.get_job(session, c.id)
    assert (job.status, job.worker_pid) == ("running", 42)
    assert job.started_at is not None and job.heartbeat_at is not None


def test_claim_filters_by_kind(session, dataset):
    repo.create_job(session, dataset.id, {}, kind="score")
    assert repo.claim_next_job(session, 1, kinds=("train",)) is None
    assert repo.claim_next_job(session, 1, kinds=("score",)).kind == "score"


@pytest.mark.parametrize(("n_jobs", "n_workers", "returning"), [(1, 2, True), (30, 4, True), (30, 4, False)])
def test_concurrent_claims_never_share_a_job(db_url, session, dataset, n_jobs, n_workers, returning):
    """Workers in threads, each with its own engine like separate processes, race for the queue.

    ``returning=False`` exercises the path for databases without UPDATE ... RETURNING.
    """
    ids = {repo.create_job(session, dataset.id, {"i": i}).id for i in range(n_jobs)}
    barrier = threading.Barrier(n_workers)
    claims: list[list[int]] = [[] for _ in range(n_workers)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        engine = make_engine(db_url)
        engine.dialect.update_returning = returning
        try:
            with session_factory(engine)() as s:
                barrier.wait()
                while (job := repo.claim_next_job(s, worker_pid=1000 + k)) is not None:
                    claims[k].append(job.id)
        except BaseException as err:  # surfaced below; a thread's exception is otherwise lost
            errors.append(err)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    everything = [j for c in claims for j in c]
    assert sorted(everything) == sorted(ids)  # each job claimed exactly once
    session.expire_all()
    for job_id in ids:
        job = repo.get_job(session, job_id)
        assert job.status == "running"
        assert job_id in claims[job.worker_pid - 1000]


def test_heartbeat_updates_only_given_fields(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    assert repo.heartbeat(session, job.id, progress=0.5) == "queued"  # not running: nothing recorded
    assert repo.get_job(session, job.id).progress == 0.0
    repo.claim_next_job(session, 1)
    _age_heartbeat(session, job.id, 100)
    before = repo.get_job(session, job.id).heartbeat_at
    status = repo.heartbeat(
        session, job.id, progress=1.7, step=5, total_steps=10, examples_per_s=3.5, eta_s=9
    )
    assert status == "running"
    got = repo.get_job(session, job.id)
    assert got.progress == 1.0  # clamped
    assert (got.step, got.total_steps, got.examples_per_s, got.eta_s) == (5, 10, 3.5, 9)
    assert got.heartbeat_at > before
    repo.heartbeat(session, job.id, message="epoch 2", checkpoint_dir="/ck/2")
    got = repo.get_job(session, job.id)
    assert (got.step, got.message, got.checkpoint_dir) == (5, "epoch 2", "/ck/2")


def test_loss_and_eval_points_feed_job_view(session, dataset):
    job = repo.create_job(session, dataset.id, {"lr": 1e-3})
    repo.claim_next_job(session, 7)
    assert repo.add_loss_points(session, job.id, []) == 0
    repo.add_loss_points(
        session, job.id, [{"step": 2, "loss": 0.5, "epoch": 0.2, "lr": 1e-3}, {"step": 1, "loss": 0.7}]
    )
    repo.add_loss_points(session, job.id, [{"step": 2, "loss": 0.6, "split": "eval", "epoch": 1}])
    repo.add_eval_point(session, job.id, epoch=1, step=2, metrics={"accuracy": 0.75})
    view = repo.job_view(session, job.id)
    assert view["loss"]["train"] == {
        "step": [1, 2],
        "epoch": [0.0, 0.2],
        "loss": [0.7, 0.5],
        "lr": [None, 1e-3],
    }
    assert view["loss"]["eval"]["loss"] == [0.6]
    assert view["evals"] == [{"epoch": 1.0, "step": 2, "metrics": {"accuracy": 0.75}}]
    assert view["status"] == "running" and view["active"] is True
    assert view["dataset_name"] == dataset.name and view["dataset_examples"] == 4
    assert view["config"] == {"lr": 1e-3} and view["error"] is None


def test_finish_and_fail(session, dataset):
    a = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    done = repo.finish_job(session, a.id, {"accuracy": 0.9}, "/runs/1")
    assert (done.status, done.progress, done.model_dir, done.metrics) == (
        "completed",
        1.0,
        "/runs/1",
        {"accuracy": 0.9},
    )
    assert done.finished_at is not None
    with pytest.raises(ValueError, match="completed"):
        repo.finish_job(session, a.id, {}, "/x")
    assert repo.fail_job(session, a.id, "late error").status == "completed"  # finished stays finished
    b = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    failed = repo.fail_job(session, b.id, "Traceback: boom")
    assert (failed.status, failed.error) == ("failed", "Traceback: boom")
    assert repo.job_view(session, b.id)["active"] is False
    with pytest.raises(KeyError):
        repo.fail_job(session, 12345, "x")


def test_cancel_queued_at_once_running_via_cancelling(session, dataset):
    queued = repo.create_job(session, dataset.id, {}, priority=-1)
    running = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    assert repo.request_cancel(session, queued.id) == "cancelled"
    assert repo.claim_next_job(session, 1) is None  # a cancelled job is never claimed
    assert repo.is_cancel_requested(session, running.id) is False
    assert repo.request_cancel(session, running.id) == "cancelling"
    assert repo.is_cancel_requested(session, running.id) is True
    assert repo.heartbeat(session, running.id, step=3) == "cancelling"  # the worker learns it here
    assert repo.mark_cancelled(session, running.id).status == "cancelled"
    assert repo.request_cancel(session, running.id) == "cancelled"


def test_stale_jobs_are_interrupted_and_resumable(session, dataset):
    stale = repo.create_job(session, dataset.id, {})
    fresh = repo.create_job(session, dataset.id, {})
    leaving = repo.create_job(session, dataset.id, {})
    waiting = repo.create_job(session, dataset.id, {})
    for _ in range(3):
        repo.claim_next_job(session, 1)
    repo.heartbeat(session, stale.id, checkpoint_dir="/ck/stale")
    repo.request_cancel(session, leaving.id)
    _age_heartbeat(session, stale.id, 300)
    _age_heartbeat(session, leaving.id, 300)
    _age_heartbeat(session, fresh.id, 5)
    assert sorted(repo.mark_stale_jobs_interrupted(session, stale_after_s=60)) == sorted(
        [stale.id, leaving.id]
    )
    assert repo.get_job(session, stale.id).status == "interrupted"
    assert "no heartbeat" in repo.get_job(session, stale.id).message
    assert repo.get_job(session, leaving.id).status == "cancelled"
    assert repo.get_job(session, fresh.id).status == "running"
    assert repo.get_job(session, waiting.id).status == "queued"  # queued jobs have no worker to lose
    assert repo.mark_stale_jobs_interrupted(session, stale_after_s=60) == []

    with pytest.raises(ValueError, match="only interrupted"):
        repo.requeue_for_resume(session, fresh.id)
    job = repo.requeue_for_resume(session, stale.id)
    assert (job.status, job.resume_from, job.worker_pid) == ("queued", "/ck/stale", None)
    repo.request_cancel(session, waiting.id)
    again = repo.claim_next_job(session, 2)
    assert (again.id, again.resume_from) == (stale.id, "/ck/stale")


def test_list_jobs(session, dataset, make_dataset):
    other = make_dataset(session, "pair", n=2)
    a = repo.create_job(session, dataset.id, {})
    b = repo.create_job(session, other.id, {})
    assert [j.id for j in repo.list_jobs(session)] == [b.id, a.id]
    assert [j.id for j in repo.list_jobs(session, dataset_id=dataset.id)] == [a.id]
    assert repo.list_jobs(session, status="running") == []


def test_example_scores(session, dataset):
    job = repo.create_job(session, dataset.id, {}, kind="score")
    ids = [e.id for e in repo.page_examples(session, dataset.id)]
    rows = [
        {"example_id": i, "label": "pos", "confidence": c, "entropy": 0.1, "margin": 0.2}
        for i, c in zip(ids, [0.9, 0.4, 0.7, 0.5], strict=True)
    ]
    assert repo.add_example_scores(session, job.id, rows) == 4
    assert [s.confidence for s in repo.example_scores(session, job.id)] == [0.4, 0.5, 0.7, 0.9]


def test_delete_loss_points_after_a_checkpoint(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    repo.add_loss_points(
        session, job.id, [{"step": s, "epoch": 1, "split": "train", "loss": 1.0 / s} for s in range(1, 11)]
    )
    for step in (3, 6, 9):  # evaluations inside an epoch: the one at step 9 is re-run by the resume
        repo.add_eval_point(session, job.id, step / 6, step, {"accuracy": 0.5})
    assert repo.delete_loss_points_after(session, job.id, 6) == 5
    view = repo.job_view(session, job.id)
    assert view["loss"]["train"]["step"] == [1, 2, 3, 4, 5, 6]
    assert [e["step"] for e in view["evals"]] == [3, 6]


def test_delete_job_refuses_active_jobs_and_cascades(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    with pytest.raises(ValueError, match="cancel it"):
        repo.delete_job(session, job.id)
    repo.claim_next_job(session, 1)
    repo.add_loss_points(session, job.id, [{"step": 1, "epoch": 1, "split": "train", "loss": 0.5}])
    repo.finish_job(session, job.id, {"accuracy": 1.0}, "/models/1")
    assert repo.delete_job(session, job.id) == "/models/1"
    with pytest.raises(KeyError):
        repo.get_job(session, job.id)
    assert session.scalar(select(func.count()).select_from(LossPoint)) == 0


def test_heartbeat_ends_its_read_transaction(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    assert repo.heartbeat(session, job.id, step=3) == "running"
    assert not session.in_transaction()


def test_list_jobs_filters_by_kind(session, dataset):
    train_job = repo.create_job(session, dataset.id, {})
    repo.create_job(session, dataset.id, {}, kind="score")
    assert [j.id for j in repo.list_jobs(session, kind="train")] == [train_job.id]
    assert len(repo.list_jobs(session)) == 2


# --- leases, attempts, fencing (issue 20) ---------------------------------------------------------------------


def _expire_lease(session, job_id: int, seconds: float = 1) -> None:
    """Pretend the job's lease ran out `seconds` ago."""
    session.execute(
        update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=seconds))
    )
    session.commit()


def test_claim_starts_an_attempt_with_a_lease_and_heartbeats_renew_it(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    claimed = repo.claim_next_job(session, 42, lease_s=30)
    assert (claimed.attempt, claimed.worker_id) == (1, f"{socket.gethostname()}:42")
    assert claimed.lease_until > utcnow() + timedelta(seconds=20)
    _expire_lease(session, job.id)
    assert repo.heartbeat(session, job.id, step=1, attempt=1, lease_s=30) == "running"
    assert repo.lease_live(repo.get_job(session, job.id))


@pytest.mark.parametrize(
    "write",
    [
        lambda s, j, a: repo.heartbeat(s, j, step=9, attempt=a),
        lambda s, j, a: repo.add_loss_points(s, j, [{"step": 9, "loss": 0.1}], attempt=a),
        lambda s, j, a: repo.add_eval_point(s, j, 1, 9, {"accuracy": 1.0}, attempt=a),
        lambda s, j, a: repo.delete_loss_points_after(s, j, 0, attempt=a),
        lambda s, j, a: repo.finish_job(s, j, {"accuracy": 1.0}, "/m", attempt=a),
        lambda s, j, a: repo.fail_job(s, j, "late", attempt=a),
        lambda s, j, a: repo.mark_cancelled(s, j, attempt=a),
        lambda s, j, a: repo.is_cancel_requested(s, j, attempt=a),
        lambda s, j, a: repo.add_example_scores(s, j, [{"example_id": 1, "label": "pos"}], attempt=a),
    ],
)
def test_every_write_of_a_taken_attempt_is_refused(session, dataset, db_snapshot, write):
    job = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    repo.add_loss_points(session, job.id, [{"step": 1, "loss": 0.5}], attempt=1)
    _expire_lease(session, job.id)
    assert repo.mark_stale_jobs_interrupted(session) == [job.id]
    before = db_snapshot(session)
    with pytest.raises(repo.JobFenced, match="attempt 1 no longer holds"):
        write(session, job.id, 1)  # interrupted: the stopped worker's late write
    repo.requeue_for_resume(session, job.id)
    assert repo.claim_next_job(session, 2).attempt == 2
    with pytest.raises(repo.JobFenced):
        write(session, job.id, 1)  # a newer attempt holds it
    after = db_snapshot(session)
    assert after == before
    got = repo.get_job(session, job.id)
    assert (got.status, got.error, got.step) == ("running", None, None)
    write(session, job.id, 2)  # the holder's own write goes through


def test_a_deleted_job_fences_its_worker_instead_of_keyerror_or_foreign_key(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    repo.interrupt_job(session, job.id, 1, "the worker process stopped")
    repo.delete_dataset(session, dataset.id)
    with pytest.raises(repo.JobFenced, match="deleted"):
        repo.add_loss_points(session, job.id, [{"step": 1, "loss": 0.5}], attempt=1)
    with pytest.raises(repo.JobFenced, match="deleted"):
        repo.heartbeat(session, job.id, attempt=1)


def test_a_live_lease_is_never_recovered_however_old_its_heartbeat(session, dataset):
    """A worker on another host, slow or stopped for less than its lease: its PID means nothing here."""
    job = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1, holder="elsewhere:1")
    _age_heartbeat(session, job.id, 300)
    assert repo.mark_stale_jobs_interrupted(session) == []
    _expire_lease(session, job.id)
    assert repo.mark_stale_jobs_interrupted(session) == [job.id]
    got = repo.get_job(session, job.id)
    assert got.message == "the worker stopped responding: no heartbeat for 300 s"
    assert not repo.lease_live(got)


def test_resume_and_deletes_refused_while_an_interrupted_job_may_still_run(session, dataset):
    job = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    with pytest.raises(ValueError, match=f"job {job.id} on this dataset is running"):
        repo.delete_dataset(session, dataset.id)
    # interrupted while the lease still runs (an older release's verdict, or a clock jump)
    session.execute(update(Job).where(Job.id == job.id).values(status="interrupted"))
    session.commit()
    with pytest.raises(ValueError, match="may still be running: its lease ends in"):
        repo.requeue_for_resume(session, job.id)
    with pytest.raises(ValueError, match=f"job {job.id} on this dataset is interrupted, but its worker may"):
        repo.delete_dataset(session, dataset.id)
    with pytest.raises(ValueError, match="may still be running"):
        repo.delete_job(session, job.id)
    assert repo.get_job(session, job.id).status == "interrupted"
    _expire_lease(session, job.id)
    assert repo.requeue_for_resume(session, job.id).status == "queued"
    repo.request_cancel(session, job.id)
    repo.delete_dataset(session, dataset.id)  # nothing on it can be alive now


def test_job_ids_are_never_reused(session, dataset):
    repo.create_job(session, dataset.id, {})
    last = repo.create_job(session, dataset.id, {})
    repo.request_cancel(session, last.id)
    repo.delete_job(session, last.id)
    assert repo.create_job(session, dataset.id, {}).id > last.id  # a late write of `last` cannot land on it


def test_a_lease_renewed_after_the_verdict_wins(session, dataset):
    """Recovery judged the lease lapsed; the worker renewed it before the UPDATE: the job stays its."""
    job = repo.create_job(session, dataset.id, {})
    repo.claim_next_job(session, 1)
    _expire_lease(session, job.id)
    [judged] = [j for j in repo.held_jobs(session) if j["lapsed"]]
    assert repo.heartbeat(session, job.id, attempt=judged["attempt"]) == "running"
    assert repo.interrupt_job(session, job.id, judged["attempt"], "gone?", only_if_lapsed=True) is None
    assert repo.get_job(session, job.id).status == "running"
    assert repo.interrupt_job(session, job.id, judged["attempt"] + 1, "gone?") is None  # not that attempt
