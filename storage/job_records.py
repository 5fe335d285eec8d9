"""A job's records (re-exported by `storage.repo`): its loss curve, its evaluations and a scoring job's
per-example predictions. Split from `storage.jobs`, which keeps the job rows' life cycle; every write here is
fenced by the writer's attempt as the job's own are (`storage.leases`).
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from storage.leases import _hold
from storage.models import EvalPoint, ExampleScore, LossPoint, utcnow


def add_loss_points(session: Session, job_id: int, points: list[dict], attempt: int | None = None) -> int:
    """Append loss points in one insert: dicts with ``step``, ``loss`` and optional ``epoch``, ``split``, ``lr``.

    With `attempt`, refused (`JobFenced`) once that attempt no longer holds the job.
    """
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
        _hold(session, job_id, attempt)
        session.execute(insert(LossPoint), rows)
    session.commit()
    return len(rows)


def delete_loss_points_after(session: Session, job_id: int, step: int, attempt: int | None = None) -> int:
    """Drop loss and eval points past `step` (a resumed job re-runs, and re-evaluates, the steps after its
    checkpoint: with several evaluations an epoch some fall inside the interrupted epoch); returns how many.

    A restart without a checkpoint passes step 0: the new attempt's curve replaces the old one whole.
    """
    _hold(session, job_id, attempt)
    dropped = 0
    for table in (LossPoint, EvalPoint):
        dropped += session.execute(
            delete(table)
            .where(table.job_id == job_id, table.step > step)
            .execution_options(synchronize_session=False)
        ).rowcount
    session.commit()
    return dropped


def add_eval_point(
    session: Session, job_id: int, epoch: float, step: int, metrics: dict, attempt: int | None = None
) -> EvalPoint:
    """Record evaluation metrics of one epoch/step (with `attempt`: JobFenced once it lost the job)."""
    _hold(session, job_id, attempt)
    point = EvalPoint(job_id=job_id, epoch=float(epoch), step=int(step), metrics=dict(metrics))
    session.add(point)
    session.commit()
    return point


def add_example_scores(session: Session, job_id: int, scores: list[dict], attempt: int | None = None) -> int:
    """Store model predictions: dicts with ``example_id`` and optional label/tags/confidence/entropy/margin."""
    now = utcnow()
    keys = ("label", "tags", "confidence", "entropy", "margin")
    rows = [
        {"job_id": job_id, "example_id": s["example_id"], "created_at": now} | {k: s.get(k) for k in keys}
        for s in scores
    ]
    if rows:
        _hold(session, job_id, attempt)
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
