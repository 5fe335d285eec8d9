"""Labeling queries: atomic leases on examples, guarded label writes, and the model's scores."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import BigInteger, Text, and_, cast, exists, false, func, or_, select, update
from sqlalchemy.orm import Session

from storage.conll import to_iob2
from storage.datasets import _done, get_dataset, label_names
from storage.examples import _check_example, count_examples, get_example, label_match
from storage.jobs import create_job, get_job
from storage.label_values import encode_label
from storage.models import Dataset, Example, ExampleScore, Job, utcnow

# --- labeling: atomic leases, guarded label writes, the model's scores ------------------------------------------

LABEL_FILTERS = ("unlabeled", "labeled", "label", "disagreements", "all")
LABEL_ORDERS = ("id", "random", "entropy", "margin")
LEASE_RETRIES = 20  # another labeler can take our candidate between choosing and leasing it; try the next one
_HASH_P = 2_147_483_647  # 2^31 - 1: (x * x) stays inside SQLite's 64-bit integers


def checked_label(
    session: Session, ex: Example, label, tags: list[str] | None
) -> tuple[str | None, list | None]:
    """Validate a label (or tags) given for `ex` -> (the text to store, the IOB2 tags); ValueError says why."""
    ds = get_dataset(session, ex.dataset_id)
    if (ds.task == "token") != (tags is not None) or (ds.task != "token" and label is None):
        raise ValueError("give tags for token datasets and a label otherwise (clear_label removes one)")
    if tags is not None:
        tags = to_iob2(list(tags))[0]
    names = label_names(session, ex.dataset_id)
    stored = encode_label(ds.problem, label, names) if label is not None else None
    row = {"text": ex.text, "text_pair": ex.text_pair, "tokens": ex.tokens, "label": stored, "tags": tags}
    _check_example(ds.task, row, set(names), ds.problem)
    return stored, tags


def set_label(
    session: Session,
    example_id: int,
    label: str | list[str] | float | None = None,
    tags: list[str] | None = None,
    labeled_by: str | None = None,
    commit: bool = True,
) -> Example:
    """Set an example's label (or IOB2 tags for token datasets); stray I- tags are repaired to B-.

    Args:
        session: the session.
        example_id: the example.
        label: a label from the dataset's set (sequence/pair); multi-label: a list of them (``[]``: none
            applies); regression: a number (or its text).
        tags: one IOB2 tag per token (token datasets).
        labeled_by: who labeled it.

    Returns:
        The updated example; its lease is released.

    >>> set_label(s, ex.id, "pos", labeled_by="ana").label  # doctest: +SKIP
    'pos'
    """
    ex = get_example(session, example_id)
    stored, tags = checked_label(session, ex, label, tags)
    ex.label, ex.tags = stored, tags
    ex.labeled_by, ex.labeled_at = labeled_by, utcnow()
    ex.lease_owner = ex.lease_until = None
    _done(session, commit)
    return ex


def clear_label(session: Session, example_id: int, commit: bool = True) -> Example:
    """Remove an example's label or tags."""
    ex = get_example(session, example_id)
    ex.label = ex.tags = ex.labeled_by = ex.labeled_at = None
    _done(session, commit)
    return ex


def latest_score_job_id(session: Session, dataset_id: int) -> int | None:
    """The dataset's newest completed score job (its predictions are the ones shown), or None."""
    return session.scalar(
        select(Job.id)
        .where(Job.dataset_id == dataset_id, Job.kind == "score", Job.status == "completed")
        .order_by(Job.finished_at.desc(), Job.id.desc())
        .limit(1)
    )


def queue_score_job(session: Session, train_job_id: int, force: bool = False) -> int | None:
    """After a train job: queue scoring its dataset with its model when it has unlabeled examples (or `force`: the
    Label tab's "Score now", to review disagreements on a labeled set); the new job's id, or None.

    The worker runs it (`worker_score.run_score_job`); the Label tab then shows its predictions as suggestions.
    """
    job = get_job(session, train_job_id)
    if job.status != "completed" or not job.model_dir or job.dataset_id is None:
        return None
    if not force and not count_examples(session, job.dataset_id, status="unlabeled"):
        return None  # nothing to suggest labels for; the Label tab's "Score now" still can
    config = {"model_dir": job.model_dir, "train_job_id": job.id, "task": job.config.get("task")}
    return create_job(session, job.dataset_id, config, kind="score", priority=1).id  # quick: runs first


def latest_train_job(session: Session, dataset_id: int) -> Job | None:
    """The dataset's newest train job, whatever its status (Retrain reuses its settings), or None."""
    return session.scalars(
        select(Job)
        .where(Job.dataset_id == dataset_id, Job.kind == "train")
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    ).first()


def _label_where(
    dataset_id: int, status: str, label: str | None, score_job_id: int | None, problem: str = "single"
) -> list:
    """WHERE clauses of the label view's filters (``disagreements`` needs the score job).

    ``label`` matches the examples with that label: for multi-label, those whose list holds it.
    """
    if status not in LABEL_FILTERS:
        raise ValueError(f"filter must be one of {LABEL_FILTERS}, not {status!r}")
    labeled = or_(Example.label.is_not(None), Example.tags.is_not(None))
    clauses = [Example.dataset_id == dataset_id]
    if status == "unlabeled":
        clauses.append(~labeled)
    elif status == "labeled":
        clauses.append(labeled)
    elif status == "label":
        pattern = '%"B-' + (label or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
        clauses.append(or_(label_match(problem, label), cast(Example.tags, Text).like(pattern, escape="\\")))
    elif status == "disagreements":
        if score_job_id is None:
            return [false()]
        differs = or_(
            ExampleScore.label != Example.label, cast(ExampleScore.tags, Text) != cast(Example.tags, Text)
        )
        clauses += [
            labeled,
            exists().where(
                ExampleScore.job_id == score_job_id, ExampleScore.example_id == Example.id, differs
            ),
        ]
    return clauses


def _problem(session: Session, dataset_id: int, status: str) -> str:
    """The dataset's problem, looked up only for the ``label`` filter (the one that depends on it)."""
    ds = session.get(Dataset, dataset_id) if status == "label" else None
    return ds.problem if ds is not None else "single"


def _label_order(stmt, order: str, seed: int, score_job_id: int | None):
    """ORDER BY for the label view: file order, a per-seed shuffle, or the model's least sure first."""
    if order not in LABEL_ORDERS:
        raise ValueError(f"order must be one of {LABEL_ORDERS}, not {order!r}")
    if order == "random":
        # a seeded hash, not RANDOM(): the same seed gives the same order on every call
        # in 64-bit integers: PostgreSQL's integer column would overflow at the first product
        x = ((cast(Example.id, BigInteger) + int(seed) * 2_654_435_761 % _HASH_P) * 48_271) % _HASH_P
        return stmt.order_by((x * x) % _HASH_P, Example.id)
    if order in ("entropy", "margin") and score_job_id is not None:
        stmt = stmt.outerjoin(
            ExampleScore, and_(ExampleScore.example_id == Example.id, ExampleScore.job_id == score_job_id)
        )
        first = ExampleScore.entropy.desc() if order == "entropy" else ExampleScore.margin.asc()
        # token scores have neither entropy nor margin: their confidence orders them
        return stmt.order_by(first.nulls_last(), ExampleScore.confidence.asc().nulls_last(), Example.id)
    return stmt.order_by(Example.id)


def lease_next_example(
    session: Session,
    dataset_id: int,
    owner: str,
    lease_s: float = 120,
    order: str = "id",
    seed: int = 0,
    status: str = "unlabeled",
    label: str | None = None,
    exclude: Iterable[int] = (),
    score_job_id: int | None = None,
) -> Example | None:
    """Atomically lease the next example to `owner`: two labelers never get the same one.

    Args:
        session: the labeler's session.
        dataset_id: the dataset.
        owner: who leases it (a browser session id); their own leases count as free.
        lease_s: how long others do not get it (a short lease: an abandoned tab frees it soon).
        order: ``id``, ``random`` (stable for a seed), ``entropy`` or ``margin`` (least sure first).
        seed: the shuffle's seed (one per browser session).
        status: one of LABEL_FILTERS; ``label`` also needs `label`, ``disagreements`` the score job.
        exclude: ids to pass over (this session's skipped and visited examples).
        score_job_id: the score job whose predictions order or filter (see `latest_score_job_id`).

    Returns:
        The leased Example, or None when none is left. The UPDATE re-checks that the row is still free,
        like `claim_next_job`: whoever's UPDATE changes the row has it.

    >>> lease_next_example(s, ds.id, owner="tab-1", order="entropy", score_job_id=7)  # doctest: +SKIP
    """
    now = utcnow()
    free = or_(Example.lease_until.is_(None), Example.lease_until < now, Example.lease_owner == owner)
    where = [
        *_label_where(dataset_id, status, label, score_job_id, _problem(session, dataset_id, status)),
        free,
    ]
    exclude = list(exclude)
    if exclude:
        where.append(Example.id.not_in(exclude))
    returning = session.get_bind().dialect.update_returning
    for _ in range(LEASE_RETRIES):
        pick = _label_order(select(Example.id).where(*where), order, seed, score_job_id).limit(1)
        # PostgreSQL: skip rows another labeler is leasing right now, instead of all racing for the same one and
        # retrying (20 labelers exhausted the retries); SQLite serialises writers and renders no FOR UPDATE
        pick = pick.with_for_update(of=Example, skip_locked=True)
        if not returning:
            candidate = session.scalar(pick)
            if candidate is None:
                session.commit()
                return None
            pick = select(Example.id).where(Example.id == candidate)
        stmt = (
            update(Example)
            .where(Example.id == pick.scalar_subquery(), *where)
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        if returning:
            got = session.execute(stmt.returning(Example.id)).scalars().all()
        else:
            got = [candidate] if session.execute(stmt).rowcount == 1 else []
        session.commit()
        if got:
            return session.get(Example, got[0], populate_existing=True)
        if session.scalar(select(func.count()).select_from(Example).where(*where)) == 0:
            session.commit()
            return None
    return None


def release_lease(session: Session, example_id: int, owner: str) -> None:
    """Give back `owner`'s lease on an example (skipped: another labeler may take it at once)."""
    session.execute(
        update(Example)
        .where(Example.id == example_id, Example.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def give_label(
    session: Session,
    example_id: int,
    label: str | list[str] | float | None = None,
    tags: list[str] | None = None,
    labeled_by: str | None = None,
    owner: str | None = None,
    expect_unlabeled: bool = False,
) -> bool:
    """Label an example unless another labeler holds it: one guarded UPDATE, committed at once.

    Args:
        session: the session.
        example_id: the example.
        label, tags: as in `set_label` (validated the same way): a name, a list of names for multi-label
            (``[]``: none applies), a number for regression.
        labeled_by: who gives it (the login name).
        owner: the labeler's lease id; an example leased to someone else is refused.
        expect_unlabeled: refuse if someone labeled it meanwhile (it was shown unlabeled).

    Returns:
        True if written, False if refused (nothing written).

    >>> give_label(s, ex.id, "pos", labeled_by="ana", owner="tab-1", expect_unlabeled=True)  # doctest: +SKIP
    True
    """
    ex = get_example(session, example_id)
    stored, tags = checked_label(session, ex, label, tags)
    now = utcnow()
    guard = [Example.id == example_id]
    if owner is not None:
        guard.append(
            or_(Example.lease_until.is_(None), Example.lease_until < now, Example.lease_owner == owner)
        )
    if expect_unlabeled:
        guard += [Example.label.is_(None), Example.tags.is_(None)]
    result = session.execute(
        update(Example)
        .where(*guard)
        .values(
            label=stored, tags=tags, labeled_by=labeled_by, labeled_at=now, lease_owner=None, lease_until=None
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def restore_label(
    session: Session, example_id: int, label, tags: list[str] | None, labeled_by: str | None
) -> Example:
    """Put back an earlier label (None and None: unlabeled) -- what Undo does.

    ``label`` is the engine's value or the stored text (``ex.label``): a multi-label JSON list text or a
    regression number's text reads back as the value it stands for.
    """
    if label is None and tags is None:
        return clear_label(session, example_id)
    return set_label(session, example_id, label=label, tags=tags, labeled_by=labeled_by)


def example_score(session: Session, score_job_id: int | None, example_id: int) -> ExampleScore | None:
    """One example's prediction by a score job, or None."""
    if score_job_id is None:
        return None
    return session.scalars(
        select(ExampleScore)
        .where(ExampleScore.job_id == score_job_id, ExampleScore.example_id == example_id)
        .order_by(ExampleScore.id.desc())
        .limit(1)
    ).first()


def count_label_view(
    session: Session, dataset_id: int, status: str, label: str | None = None, score_job_id: int | None = None
) -> int:
    """How many examples a label-view filter matches (e.g. the disagreements to review)."""
    where = _label_where(dataset_id, status, label, score_job_id, _problem(session, dataset_id, status))
    return session.scalar(select(func.count(Example.id)).where(*where))  # type: ignore[return-value]
