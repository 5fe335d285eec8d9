"""Job queue queries (re-exported by `storage.repo`): create, claim, progress, finish, cancel, recover.

The web process and the worker process change the same job rows, so every status change is one
conditional UPDATE (``... WHERE status IN (allowed)``) and never a read-modify-write of an ORM object:
whichever process writes second sees rowcount 0 instead of overwriting the other's change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from storage.models import (
    ACTIVE_STATUSES,
    JOB_KINDS,
    Dataset,
    EvalPoint,
    Example,
    ExampleScore,
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


def claim_next_job(session: Session, worker_pid: int, kinds: tuple[str, ...] = JOB_KINDS) -> Job | None:
    """Atomically take the next queued job (highest priority, then oldest) and mark it running.

    Args:
        session: the worker's session (its own engine, in its own process).
        worker_pid: recorded on the job, for diagnosis.
        kinds: job kinds this worker runs.

    Returns:
        The claimed Job, or None when the queue is empty. Two workers never get the same job: the
        UPDATE re-checks ``status = 'queued'`` and only the one whose UPDATE changed the row wins.

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
) -> str:
    """Record liveness and whichever progress fields are given; returns the job's status.

    The worker checks the returned status: ``cancelling`` means the user asked it to stop.

    >>> heartbeat(s, job.id, progress=0.5, step=50, total_steps=100)  # doctest: +SKIP
    'running'
    """
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    given = {"step": step, "total_steps": total_steps, "examples_per_s": examples_per_s, "eta_s": eta_s}
    values.update({k: v for k, v in given.items() if v is not None})
    if progress is not None:
        values["progress"] = min(1.0, max(0.0, float(progress)))
    if message is not None:
        values["message"] = message
    if checkpoint_dir is not None:
        values["checkpoint_dir"] = checkpoint_dir
    _transition(session, job_id, ("running", "cancelling"), **values)
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    session.commit()  # end the read: a long-lived worker session must not pin an old WAL snapshot
    return status  # type: ignore[return-value]


def is_cancel_requested(session: Session, job_id: int) -> bool:
    """True once the user asked to cancel (the worker's `should_stop`)."""
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    session.commit()
    return status in ("cancelling", "cancelled")


def add_loss_points(session: Session, job_id: int, points: list[dict]) -> int:
    """Append loss points in one insert: dicts with ``step``, ``loss`` and optional ``epoch``, ``split``, ``lr``."""
    now = utcnow()
    rows = [
        {
            "job_id": job_id,
            "step": int(p["step"]),
            "loss": float(p["loss"]),
            "epoch": float(p.get("epoch") or 0.0),
            "split": p.get("split", "train"),
            "lr": p.get("lr"),
            "created_at": p.get("created_at", now),
        }
        for p in points
    ]
    if rows:
        session.execute(insert(LossPoint), rows)
    session.commit()
    return len(rows)


def delete_loss_points_after(session: Session, job_id: int, step: int) -> int:
    """Drop loss and eval points past `step` (a resumed job re-runs, and re-evaluates, the steps after its
    checkpoint: with several evaluations an epoch some fall inside the interrupted epoch); returns how many."""
    dropped = 0
    for table in (LossPoint, EvalPoint):
        dropped += session.execute(
            delete(table)
            .where(table.job_id == job_id, table.step > step)
            .execution_options(synchronize_session=False)
        ).rowcount
    session.commit()
    return dropped


def delete_job(session: Session, job_id: int) -> str | None:
    """Delete a finished job with its curves and scores; returns its model folder (for the caller to remove).

    Refused (ValueError) while the job is queued or running: cancel it first.
    """
    job = get_job(session, job_id)
    if job.status in ACTIVE_STATUSES:
        raise ValueError(f"job {job_id} is {job.status}: cancel it before deleting it")
    model_dir = job.model_dir
    session.execute(delete(Job).where(Job.id == job_id, Job.status.not_in(ACTIVE_STATUSES)))
    session.commit()
    return model_dir


def add_eval_point(session: Session, job_id: int, epoch: float, step: int, metrics: dict) -> EvalPoint:
    """Record evaluation metrics of one epoch/step."""
    point = EvalPoint(job_id=job_id, epoch=float(epoch), step=int(step), metrics=dict(metrics))
    session.add(point)
    session.commit()
    return point


def add_example_scores(session: Session, job_id: int, scores: list[dict]) -> int:
    """Store model predictions: dicts with ``example_id`` and optional label/tags/confidence/entropy/margin."""
    now = utcnow()
    keys = ("label", "tags", "confidence", "entropy", "margin")
    rows = [
        {"job_id": job_id, "example_id": s["example_id"], "created_at": now} | {k: s.get(k) for k in keys}
        for s in scores
    ]
    if rows:
        session.execute(insert(ExampleScore), rows)
    session.commit()
    return len(rows)


def example_scores(session: Session, job_id: int) -> list[ExampleScore]:
    """A scoring job's predictions, lowest confidence first (most useful to label next)."""
    stmt = (
        select(ExampleScore)
        .where(ExampleScore.job_id == job_id)
        .order_by(ExampleScore.confidence, ExampleScore.id)
    )
    return list(session.scalars(stmt))


def finish_job(session: Session, job_id: int, metrics: dict, model_dir: str) -> Job:
    """Mark a running (or cancelling) job completed with its final metrics and model folder."""
    now = utcnow()
    ok = _transition(
        session, job_id, ("running", "cancelling", "interrupted"),
        status="completed", metrics=dict(metrics), model_dir=model_dir, progress=1.0, finished_at=now,
        heartbeat_at=now, eta_s=0.0,
    )  # fmt: skip
    if not ok:
        raise ValueError(f"job {job_id} is {get_job(session, job_id).status}; it cannot complete")
    return get_job(session, job_id)


def fail_job(session: Session, job_id: int, error: str) -> Job:
    """Mark a job failed with the error text (a traceback is fine); no-op on a job already finished."""
    now = utcnow()
    _transition(
        session, job_id, ("queued", "running", "cancelling", "interrupted"),
        status="failed", error=error, finished_at=now, heartbeat_at=now,
    )  # fmt: skip
    return get_job(session, job_id)


def request_cancel(session: Session, job_id: int) -> str:
    """Cancel a job: queued or interrupted ones at once, running ones via ``cancelling``; returns the new status."""
    if _transition(session, job_id, ("queued", "interrupted"), status="cancelled", finished_at=utcnow()):
        return "cancelled"
    _transition(session, job_id, ("running",), status="cancelling", message="cancelling...")
    return get_job(session, job_id).status


def mark_cancelled(session: Session, job_id: int) -> Job:
    """The worker stopped a job on request: mark it cancelled."""
    now = utcnow()
    _transition(
        session,
        job_id,
        ("queued", "running", "cancelling"),
        status="cancelled",
        finished_at=now,
        heartbeat_at=now,
    )
    return get_job(session, job_id)


def mark_stale_jobs_interrupted(session: Session, stale_after_s: float) -> list[int]:
    """Find running/cancelling jobs whose last heartbeat is older than `stale_after_s` and stop waiting for them.

    Running jobs become ``interrupted`` (they can be resumed with `requeue_for_resume`); jobs the user was
    already cancelling become ``cancelled``, since nobody wants them resumed.

    Args:
        session: the session.
        stale_after_s: seconds without a heartbeat after which a worker counts as gone.

    Returns:
        Ids of the jobs changed.

    >>> mark_stale_jobs_interrupted(s, stale_after_s=120)  # at app start  # doctest: +SKIP
    [3]
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    stale = or_(Job.heartbeat_at < cutoff, and_(Job.heartbeat_at.is_(None), Job.created_at < cutoff))
    ids = list(session.scalars(select(Job.id).where(Job.status.in_(("running", "cancelling")), stale)))
    changed = []
    note = f"worker stopped responding (no heartbeat for {stale_after_s:g} s)"
    for job_id in ids:
        if _transition(session, job_id, ("running",), status="interrupted", message=note) or _transition(
            session, job_id, ("cancelling",), status="cancelled", finished_at=now, message=note
        ):
            changed.append(job_id)
    return changed


def requeue_for_resume(session: Session, job_id: int) -> Job:
    """Put an interrupted job back in the queue; ``resume_from`` is its last checkpoint (None: start over)."""
    job = get_job(session, job_id)
    ok = _transition(
        session, job_id, ("interrupted",),
        status="queued", resume_from=job.checkpoint_dir, worker_pid=None, heartbeat_at=None,
        message="queued to resume" if job.checkpoint_dir else "queued to restart (no checkpoint)",
    )  # fmt: skip
    if not ok:
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
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "heartbeat_at": _iso(job.heartbeat_at),
        "loss": loss,
        "evals": evals,
    }
