"""Job queue queries (re-exported by `storage.repo`): create, claim, progress, finish, cancel, recover.

The web process and the worker process change the same job rows, so every status change is one
conditional UPDATE (``... WHERE status IN (allowed)``) and never a read-modify-write of an ORM object:
whichever process writes second sees rowcount 0 instead of overwriting the other's change.

A worker's writes name the attempt its claim made and are fenced by it (`storage.leases`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.leases import HELD, LEASE_S, _fenced, _hold, lease_live, worker_id
from storage.models import (
    ACTIVE_STATUSES,
    JOB_KINDS,
    Dataset,
    EvalPoint,
    Example,
    Job,
    LossPoint,
    utcnow,
)

CLAIM_RETRIES = 20  # another worker can take our candidate between SELECT and UPDATE; try the next one


def get_job(session: Session, job_id: int) -> Job:
    """The job, freshly read from the database (another process may have changed it); KeyError if none."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise KeyError(f"no job with id {job_id}")
    return job


def _transition(session: Session, job_id: int, allowed: tuple[str, ...], **values: Any) -> bool:
    """Apply `values` only if the job's status is in `allowed`; commit; True if it applied."""
    stmt = update(Job).where(Job.id == job_id, Job.status.in_(allowed)).values(**values)
    result = session.execute(stmt.execution_options(synchronize_session=False))
    session.commit()
    if result.rowcount == 0:
        get_job(session, job_id)  # raises KeyError for an unknown id
        return False
    return True


def create_job(
    session: Session, dataset_id: int | None, config: dict, kind: str = "train", priority: int = 0
) -> Job:
    """Queue a job.

    Args:
        session: the session.
        dataset_id: the dataset it trains on or scores.
        config: the training configuration (JSON-serialisable, e.g. ``dataclasses.asdict(TrainConfig)``).
        kind: ``train`` or ``score``.
        priority: higher runs first; equal priorities run in creation order.

    Returns:
        The queued Job. Check `repo.training_problems` first for a friendly "needs two classes" message.

    >>> create_job(s, ds.id, {"epochs": 3}).status  # doctest: +SKIP
    'queued'
    """
    if kind not in JOB_KINDS:
        raise ValueError(f"kind must be one of {JOB_KINDS}")
    if dataset_id is not None and session.get(Dataset, dataset_id) is None:
        raise KeyError(f"no dataset with id {dataset_id}")
    job = Job(dataset_id=dataset_id, config=dict(config), kind=kind, priority=priority, status="queued")
    session.add(job)
    session.commit()
    return job


def claim_next_job(
    session: Session,
    worker_pid: int,
    kinds: tuple[str, ...] = JOB_KINDS,
    holder: str | None = None,
    lease_s: float = LEASE_S,
) -> Job | None:
    """Atomically take the next queued job (highest priority, then oldest) and mark it running.

    Args:
        session: the worker's session (its own engine, in its own process).
        worker_pid: recorded on the job, for diagnosis.
        kinds: job kinds this worker runs.
        holder: the lease holder's name; default `worker_id(worker_pid)` (``host:pid``).
        lease_s: seconds the claim holds the job before a heartbeat must renew it.

    Returns:
        The claimed Job, its ``attempt`` one more than before, or None when the queue is empty. Two workers
        never get the same job: the UPDATE re-checks ``status = 'queued'`` and only the one whose UPDATE
        changed the row wins.

    >>> job = claim_next_job(s, os.getpid())  # doctest: +SKIP
    """
    returning = session.get_bind().dialect.update_returning  # SQLite >= 3.35, PostgreSQL; not MySQL
    for _ in range(CLAIM_RETRIES):
        next_id = (
            select(Job.id)
            .where(Job.status == "queued", Job.kind.in_(kinds))
            .order_by(Job.priority.desc(), Job.created_at, Job.id)
            .limit(1)
        )
        if not returning:  # pick the candidate first; the guarded UPDATE below still decides who wins
            candidate = session.scalar(next_id)
            session.commit()
            if candidate is None:
                return None
            next_id = select(Job.id).where(Job.id == candidate)
        next_id = next_id.scalar_subquery()
        now = utcnow()
        stmt = (
            update(Job)
            .where(Job.id == next_id, Job.status == "queued")
            .values(
                status="running",
                worker_pid=worker_pid,
                worker_id=holder or worker_id(worker_pid),
                attempt=Job.attempt + 1,
                lease_until=now + timedelta(seconds=lease_s),
                started_at=func.coalesce(Job.started_at, now),
                heartbeat_at=now,
                message=None,
            )
            .execution_options(synchronize_session=False)
        )
        if returning:
            claimed = session.execute(stmt.returning(Job.id)).scalars().all()
        else:
            claimed = [candidate] if session.execute(stmt).rowcount == 1 else []
        session.commit()
        if claimed:
            return get_job(session, claimed[0])
        still_queued = session.scalar(select(func.count()).where(Job.status == "queued", Job.kind.in_(kinds)))
        session.commit()  # end the read so the next attempt sees fresh data
        if not still_queued:
            return None
    return None


def heartbeat(
    session: Session,
    job_id: int,
    progress: float | None = None,
    step: int | None = None,
    total_steps: int | None = None,
    examples_per_s: float | None = None,
    eta_s: float | None = None,
    message: str | None = None,
    checkpoint_dir: str | None = None,
    attempt: int | None = None,
    lease_s: float = LEASE_S,
) -> str:
    """Renew the lease, record whichever progress fields are given; returns the job's status.

    The worker checks the returned status: ``cancelling`` means the user asked it to stop. With `attempt`,
    a job that attempt no longer holds raises `JobFenced` (without, nothing is recorded on such a job).

    >>> heartbeat(s, job.id, progress=0.5, step=50, total_steps=100, attempt=1)  # doctest: +SKIP
    'running'
    """
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "lease_until": now + timedelta(seconds=lease_s)}
    given = {"step": step, "total_steps": total_steps, "examples_per_s": examples_per_s, "eta_s": eta_s}
    values.update({k: v for k, v in given.items() if v is not None})
    if progress is not None:
        values["progress"] = min(1.0, max(0.0, float(progress)))
    if message is not None:
        values["message"] = message
    if checkpoint_dir is not None:
        values["checkpoint_dir"] = checkpoint_dir
    if attempt is not None:
        _hold(session, job_id, attempt, **values)
        session.commit()
    else:
        _transition(session, job_id, HELD, **values)
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    session.commit()  # end the read: a long-lived worker session must not pin an old WAL snapshot
    return status  # type: ignore[return-value]


def is_cancel_requested(session: Session, job_id: int, attempt: int | None = None) -> bool:
    """True once the user asked to cancel (the worker's `should_stop`); JobFenced if `attempt` lost the job."""
    row = session.execute(select(Job.status, Job.attempt).where(Job.id == job_id)).one_or_none()
    session.commit()
    if attempt is not None and (row is None or row.attempt != attempt or row.status not in HELD):
        raise _fenced(session, job_id, attempt)
    return row is not None and row.status in ("cancelling", "cancelled")


def delete_job(session: Session, job_id: int) -> str | None:
    """Delete a finished job with its curves and scores; returns its model folder (for the caller to remove).

    Refused (ValueError) while the job is queued or running, or interrupted with a live lease: cancel it first.
    """
    job = get_job(session, job_id)
    if job.status in ACTIVE_STATUSES:
        raise ValueError(f"job {job_id} is {job.status}: cancel it before deleting it")
    if lease_live(job):
        raise ValueError(
            f"job {job_id}'s worker may still be running (its lease ends {_iso(job.lease_until)})"
        )
    model_dir = job.model_dir
    session.execute(delete(Job).where(Job.id == job_id, Job.status.not_in(ACTIVE_STATUSES)))
    session.commit()
    return model_dir


def finish_job(
    session: Session, job_id: int, metrics: dict, model_dir: str, attempt: int | None = None
) -> Job:
    """Mark a running (or cancelling) job completed with its final metrics and model folder.

    With `attempt`, JobFenced once that attempt lost the job; without, ValueError on a job not running.
    """
    now = utcnow()
    values = dict(
        status="completed", metrics=dict(metrics), model_dir=model_dir, progress=1.0, finished_at=now,
        heartbeat_at=now, eta_s=0.0, lease_until=None,
    )  # fmt: skip
    if attempt is not None:
        _hold(session, job_id, attempt, **values)
        session.commit()
    elif not _transition(session, job_id, HELD, **values):
        raise ValueError(f"job {job_id} is {get_job(session, job_id).status}; it cannot complete")
    return get_job(session, job_id)


def fail_job(session: Session, job_id: int, error: str, attempt: int | None = None) -> Job:
    """Mark a job failed with the error text (a traceback is fine); no-op on a job already finished.

    With `attempt` (the worker), JobFenced once that attempt lost the job: its failure is no longer news.
    """
    now = utcnow()
    values = dict(status="failed", error=error, finished_at=now, heartbeat_at=now, lease_until=None)
    if attempt is not None:
        _hold(session, job_id, attempt, **values)
        session.commit()
    else:
        _transition(session, job_id, ("queued", *HELD, "interrupted"), **values)
    return get_job(session, job_id)


def request_cancel(session: Session, job_id: int) -> str:
    """Cancel a job: queued or interrupted ones at once, running ones via ``cancelling``; returns the new status."""
    if _transition(session, job_id, ("queued", "interrupted"), status="cancelled", finished_at=utcnow()):
        return "cancelled"
    _transition(session, job_id, ("running",), status="cancelling", message="cancelling...")
    return get_job(session, job_id).status


def mark_cancelled(session: Session, job_id: int, attempt: int | None = None) -> Job:
    """The worker stopped a job on request: mark it cancelled (with `attempt`: JobFenced once it lost the job)."""
    now = utcnow()
    values = dict(status="cancelled", finished_at=now, heartbeat_at=now, lease_until=None)
    if attempt is not None:
        _hold(session, job_id, attempt, **values)
        session.commit()
    else:
        _transition(session, job_id, ("queued", *HELD), **values)
    return get_job(session, job_id)


def requeue_for_resume(session: Session, job_id: int) -> Job:
    """Put an interrupted job back in the queue; ``resume_from`` is its last checkpoint (None: start over).

    Refused (ValueError) unless the job is interrupted and its lease has ended: two workers must never train
    the same job into the same folder.
    """
    job = get_job(session, job_id)
    now = utcnow()
    stmt = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == "interrupted",
            or_(Job.lease_until.is_(None), Job.lease_until <= now),
        )
        .values(
            status="queued", resume_from=job.checkpoint_dir, worker_pid=None, worker_id=None, heartbeat_at=None,
            lease_until=None,
            message="queued to resume" if job.checkpoint_dir else "queued to restart (no checkpoint)",
        )
    )  # fmt: skip
    ok = session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1
    session.commit()
    if not ok:
        job = get_job(session, job_id)
        if job.status == "interrupted":
            wait = (job.lease_until - now).total_seconds()
            raise ValueError(f"job {job_id}'s worker may still be running: its lease ends in {wait:.0f} s")
        raise ValueError(f"job {job_id} is {job.status}; only interrupted jobs can be resumed")
    return get_job(session, job_id)


def list_jobs(
    session: Session, dataset_id: int | None = None, status: str | None = None, kind: str | None = None
) -> list[Job]:
    """Jobs, newest first, optionally for one dataset, one status and/or one kind ("train" or "score")."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    if dataset_id is not None:
        stmt = stmt.where(Job.dataset_id == dataset_id)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    return list(session.scalars(stmt.execution_options(populate_existing=True)))


def _iso(value) -> str | None:
    """ISO time string (naive UTC) or None."""
    return value.isoformat() if value is not None else None


def job_view(session: Session, job_id: int) -> dict:
    """Everything the UI draws for a job, as plain values: status, progress, curves, evals, metrics, error.

    Args:
        session: the session.
        job_id: the job.

    Returns:
        A dict; ``loss`` maps ``train``/``eval`` to ``{"step": [...], "epoch": [...], "loss": [...],
        "lr": [...]}``; ``evals`` is a list of ``{"epoch", "step", "metrics"}``.

    >>> job_view(s, job.id)["loss"]["train"]["loss"][:2]  # doctest: +SKIP
    [0.69, 0.61]
    """
    job = get_job(session, job_id)
    loss: dict[str, dict[str, list]] = {
        s: {"step": [], "epoch": [], "loss": [], "lr": []} for s in ("train", "eval")
    }
    points = session.execute(
        select(LossPoint.split, LossPoint.step, LossPoint.epoch, LossPoint.loss, LossPoint.lr)
        .where(LossPoint.job_id == job_id)
        .order_by(LossPoint.step, LossPoint.id)
    )
    for split, step, epoch, value, lr in points:
        curve = loss.setdefault(split, {"step": [], "epoch": [], "loss": [], "lr": []})
        (
            curve["step"].append(step),
            curve["epoch"].append(epoch),
            curve["loss"].append(value),
            curve["lr"].append(lr),
        )
    evals = [
        {"epoch": e.epoch, "step": e.step, "metrics": e.metrics}
        for e in session.scalars(
            select(EvalPoint).where(EvalPoint.job_id == job_id).order_by(EvalPoint.step, EvalPoint.id)
        )
    ]
    n_examples = session.scalar(select(func.count(Example.id)).where(Example.dataset_id == job.dataset_id))
    dataset_name = session.scalar(select(Dataset.name).where(Dataset.id == job.dataset_id))
    session.commit()  # end the read transaction so the next poll sees the worker's newest rows
    return {
        "id": job.id,
        "dataset_id": job.dataset_id,
        "dataset_name": dataset_name,
        "dataset_examples": n_examples,
        "kind": job.kind,
        "status": job.status,
        "active": job.status in ("queued", "running", "cancelling"),
        "config": job.config,
        "priority": job.priority,
        "progress": job.progress,
        "step": job.step,
        "total_steps": job.total_steps,
        "examples_per_s": job.examples_per_s,
        "eta_s": job.eta_s,
        "message": job.message,
        "error": job.error,
        "metrics": job.metrics,
        "model_dir": job.model_dir,
        "checkpoint_dir": job.checkpoint_dir,
        "resume_from": job.resume_from,
        "worker_pid": job.worker_pid,
        "worker_id": job.worker_id,
        "attempt": job.attempt,
        "lease_until": _iso(job.lease_until),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "heartbeat_at": _iso(job.heartbeat_at),
        "loss": loss,
        "evals": evals,
    }
