"""Job leases and attempts: who may write to a job, and taking a job from a worker that is gone.

A claim (`storage.jobs.claim_next_job`) makes the job ``attempt`` n and gives its worker a lease
(``lease_until``) that every heartbeat extends. Liveness is the lease alone: a job whose lease lapsed is taken
from its worker (`interrupt_job`: ``interrupted``, resumable) by any live app or worker. Every write of a worker
names its attempt and is refused with `JobFenced` once the job's attempt or status moved on, so a worker that
was only stopped (SIGSTOP, swap, a slow import under load) learns at its next write that its job was taken and
stops without writing. Only portable SQL: the same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Job, utcnow

LEASE_S = 60.0  # a claim or heartbeat holds the job this long; the worker beats every few seconds (worker.py)
HELD = ("running", "cancelling")  # the statuses in which a worker holds a job and may write to it


class JobFenced(RuntimeError):
    """A worker's write was refused: its attempt no longer holds the job (recovered, resumed, finished, deleted)."""

    def __init__(self, job_id: int, attempt: int, now: str):
        super().__init__(
            f"job {job_id} attempt {attempt} no longer holds the job ({now}): stopping without writing"
        )
        self.job_id, self.attempt = job_id, attempt


def worker_id(pid: int) -> str:
    """The lease holder's name, ``host:pid``: a PID means something only on its own host."""
    return f"{socket.gethostname()}:{pid}"


def lease_live(job: Job, now: datetime | None = None) -> bool:
    """Whether the job's lease still runs (its worker may be alive, even if the job shows interrupted)."""
    return job.lease_until is not None and job.lease_until > (now or utcnow())


def _fenced(session: Session, job_id: int, attempt: int) -> JobFenced:
    """The JobFenced to raise after a refused write, saying what the job is now; ends the transaction."""
    session.rollback()
    row = session.execute(select(Job.status, Job.attempt).where(Job.id == job_id)).one_or_none()
    session.commit()
    now = "deleted" if row is None else f"{row.status}, attempt {row.attempt}"
    return JobFenced(job_id, attempt, now)


def _hold(session: Session, job_id: int, attempt: int | None, **values: Any) -> None:
    """Check, inside the caller's transaction, that `attempt` still holds the job, or raise JobFenced.

    The guard is an UPDATE: it locks the job row (SQLite: the database) until the caller commits, so a
    recovery cannot slip in between the check and the write it guards. No attempt (tests, the CLI): no guard.
    """
    if attempt is None:
        return
    stmt = update(Job).where(Job.id == job_id, Job.attempt == attempt, Job.status.in_(HELD))
    values = {"heartbeat_at": utcnow(), **values}
    result = session.execute(stmt.values(**values).execution_options(synchronize_session=False))
    if result.rowcount == 0:
        raise _fenced(session, job_id, attempt)


def _lapsed(now: datetime, stale_after_s: float | None = None):
    """SQL: the lease ran out (rows from before leases: no heartbeat for LEASE_S); with `stale_after_s`,
    also no heartbeat for that long."""
    legacy = now - timedelta(seconds=LEASE_S)
    stale = or_(
        Job.lease_until < now,
        and_(
            Job.lease_until.is_(None),
            or_(Job.heartbeat_at < legacy, and_(Job.heartbeat_at.is_(None), Job.created_at < legacy)),
        ),
    )
    if stale_after_s is not None:
        cutoff = now - timedelta(seconds=stale_after_s)
        stale = or_(
            stale, Job.heartbeat_at < cutoff, and_(Job.heartbeat_at.is_(None), Job.created_at < cutoff)
        )
    return stale


def held_jobs(session: Session) -> list[dict]:
    """Running and cancelling jobs with their lease: ``id, attempt, status, worker_id, worker_pid, heartbeat_at,
    lease_until, lapsed`` (plain values; recovery decides per job and `interrupt_job` re-checks)."""
    now = utcnow()
    rows = session.execute(
        select(
            Job.id, Job.attempt, Job.status, Job.worker_id, Job.worker_pid, Job.heartbeat_at, Job.lease_until,
            _lapsed(now).label("lapsed"),
        ).where(Job.status.in_(HELD)).order_by(Job.id)
    ).mappings().all()  # fmt: skip
    session.commit()
    return [{**r, "lapsed": bool(r["lapsed"])} for r in rows]


def interrupt_job(
    session: Session, job_id: int, attempt: int, message: str, only_if_lapsed: bool = False
) -> str | None:
    """Take a job from its attempt: running becomes ``interrupted`` (resumable), cancelling ``cancelled``.

    Args:
        session: the session.
        job_id: the job.
        attempt: the attempt the caller judged gone; a newer one (or a finished job) is left alone.
        message: why, for the user ("the app restarted while this job ran").
        only_if_lapsed: re-check in the UPDATE that the lease has lapsed, so a heartbeat that just renewed it
            wins (the caller judged by the lease, not by a dead process).

    Returns:
        The new status, or None if nothing changed. The lease ends now: Resume and deletes may go ahead.
    """
    now = utcnow()
    guard = [Job.id == job_id, Job.attempt == attempt] + ([_lapsed(now)] if only_if_lapsed else [])
    for old, new, extra in (
        ("running", "interrupted", {}),
        ("cancelling", "cancelled", {"finished_at": now}),
    ):
        stmt = (
            update(Job)
            .where(*guard, Job.status == old)
            .values(status=new, message=message, lease_until=now, **extra)
        )
        if session.execute(stmt.execution_options(synchronize_session=False)).rowcount:
            session.commit()
            return new
    session.commit()
    return None


def silence_s(job: dict | Job, now: datetime | None = None) -> float:
    """Seconds since the job's worker was last heard from (its last heartbeat, else its claim)."""
    get = job.get if isinstance(job, dict) else lambda k: getattr(job, k)
    last = get("heartbeat_at") or get("lease_until")
    return max(0.0, ((now or utcnow()) - last).total_seconds()) if last else 0.0


def mark_stale_jobs_interrupted(session: Session, stale_after_s: float | None = None) -> list[int]:
    """Take every job whose lease lapsed from its worker (see `interrupt_job`); the app and workers call it often.

    Args:
        session: the session.
        stale_after_s: also count jobs without a heartbeat for this long (None: the lease alone decides).

    Returns:
        Ids of the jobs changed; each message says how long the worker has been silent.

    >>> mark_stale_jobs_interrupted(s)  # doctest: +SKIP
    [3]
    """
    now = utcnow()
    stale = session.execute(
        select(Job.id, Job.attempt, Job.heartbeat_at, Job.lease_until).where(
            Job.status.in_(HELD), _lapsed(now, stale_after_s)
        )
    ).mappings().all()  # fmt: skip
    session.commit()
    changed = []
    for job in stale:
        note = f"the worker stopped responding: no heartbeat for {silence_s(job, now):.0f} s"
        # judged by the lease alone, the UPDATE re-checks it: a heartbeat that renewed it meanwhile wins
        if interrupt_job(session, job["id"], job["attempt"], note, only_if_lapsed=stale_after_s is None):
            changed.append(job["id"])
    return changed
