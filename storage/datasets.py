"""Dataset queries: create, find, rename, delete, label sets and summaries.

Writes commit their own short transaction unless called with ``commit=False`` (see `storage.repo`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from storage.label_values import check_problem
from storage.models import ACTIVE_STATUSES, TASKS, Dataset, Job, Label, iob2_tags, utcnow


def _done(session: Session, commit: bool) -> None:
    """Commit, or only flush when the caller composes a larger transaction."""
    session.commit() if commit else session.flush()


# --- datasets -------------------------------------------------------------------------------------------


def create_dataset(
    session: Session,
    name: str,
    task: str,
    labels: Iterable[str] | None = (),
    commit: bool = True,
    problem: str = "single",
) -> Dataset:
    """Create a dataset with an ordered label set (entity types for token datasets).

    Args:
        session: the session.
        name: unique name.
        task: ``sequence``, ``pair`` or ``token`` (the input shape).
        labels: the label set, in display order (a regression dataset has none).
        problem: ``single``, ``multilabel`` or ``regression`` (the last two for sequence and pair only).

    Returns:
        The new Dataset.

    >>> create_dataset(s, "reviews", "sequence", ["neg", "pos"]).label_names  # doctest: +SKIP
    ['neg', 'pos']
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    check_problem(task, problem)
    labels = list(labels or ())
    if problem == "regression" and labels:
        raise ValueError("a regression dataset has no label set: its labels are numbers")
    if not name.strip():
        raise ValueError("dataset name is empty")
    if get_dataset_by_name(session, name) is not None:
        raise ValueError(f"a dataset named {name!r} already exists")
    ds = Dataset(name=name, task=task, problem=problem)
    session.add(ds)
    session.flush()
    add_labels(session, ds.id, labels, commit=False)
    _done(session, commit)
    return ds


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    """The dataset with this id; KeyError if there is none."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise KeyError(f"no dataset with id {dataset_id}")
    return ds


def get_dataset_by_name(session: Session, name: str) -> Dataset | None:
    """The dataset with this name, or None."""
    return session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()


def list_datasets(session: Session) -> list[Dataset]:
    """All datasets, by name."""
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def rename_dataset(session: Session, dataset_id: int, new_name: str, commit: bool = True) -> Dataset:
    """Rename a dataset; ValueError if the name is taken or empty."""
    ds = get_dataset(session, dataset_id)
    if not new_name.strip():
        raise ValueError("dataset name is empty")
    other = get_dataset_by_name(session, new_name)
    if other is not None and other.id != ds.id:
        raise ValueError(f"a dataset named {new_name!r} already exists")
    ds.name = new_name
    _done(session, commit)
    return ds


def delete_dataset(session: Session, dataset_id: int, commit: bool = True) -> None:
    """Delete a dataset with its examples, labels and finished jobs.

    Refused (ValueError naming the job) while a job on it is queued, running or cancelling, or interrupted
    while its worker's lease still runs: that worker may still be reading the examples and writing the job.
    """
    now = utcnow()
    busy = session.execute(
        select(Job.id, Job.status)
        .where(
            Job.dataset_id == dataset_id,
            or_(Job.status.in_(ACTIVE_STATUSES), and_(Job.status == "interrupted", Job.lease_until > now)),
        )
        .order_by(Job.id)
        .limit(1)
    ).one_or_none()
    if busy is not None:
        state = busy.status
        if state == "interrupted":
            state = "interrupted, but its worker may still be running"
        raise ValueError(f"job {busy.id} on this dataset is {state}: cancel it or let it end, then delete")
    session.execute(delete(Dataset).where(Dataset.id == dataset_id))  # FK cascades remove the rest
    _done(session, commit)
    session.expunge_all()  # objects of deleted rows must not linger in the identity map


def label_names(session: Session, dataset_id: int) -> list[str]:
    """The dataset's label set, in order."""
    return list(
        session.scalars(select(Label.name).where(Label.dataset_id == dataset_id).order_by(Label.position))
    )


def tag_names(session: Session, dataset_id: int) -> list[str]:
    """For token datasets: the IOB2 tags that follow from the entity types (O, B-X, I-X, ...)."""
    return iob2_tags(label_names(session, dataset_id))


def add_labels(session: Session, dataset_id: int, names: Iterable[str], commit: bool = True) -> list[str]:
    """Append labels not yet in the set, keeping order; returns the whole set (regression datasets have none)."""
    current = label_names(session, dataset_id)
    names = [str(n) for n in names]
    ds = session.get(Dataset, dataset_id)
    if names and ds is not None and ds.problem == "regression":
        raise ValueError("a regression dataset has no label set: its labels are numbers")
    for name in names:
        name = str(name)
        if not name.strip():
            raise ValueError("label name is empty")
        if name not in current:
            session.add(Label(dataset_id=dataset_id, name=name, position=len(current)))
            current.append(name)
    _done(session, commit)
    return current
