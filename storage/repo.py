"""Every query the app, the worker and the CLI make: the one place SQL lives.

Each function takes a Session first. Writes commit their own short transaction (a label click or a
heartbeat must be durable at once) unless called with ``commit=False``, which lets a caller compose
several writes into one transaction -- `import_examples` does that so an import lands whole or not at all.
Job functions live in `storage.jobs` and are re-exported here, so callers only ever import `repo`.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Text, and_, cast, delete, exists, false, func, insert, or_, select, update
from sqlalchemy.orm import Session

from storage.conll import TAG_RE, to_iob2
from storage.jobs import (  # noqa: F401  (re-exported: repo is the one import for every query)
    add_eval_point,
    add_example_scores,
    add_loss_points,
    claim_next_job,
    create_job,
    delete_job,
    delete_loss_points_after,
    example_scores,
    fail_job,
    finish_job,
    get_job,
    heartbeat,
    is_cancel_requested,
    job_view,
    list_jobs,
    mark_cancelled,
    mark_stale_jobs_interrupted,
    request_cancel,
    requeue_for_resume,
)
from storage.models import SPLITS, TASKS, Dataset, Example, ExampleScore, Job, Label, iob2_tags, utcnow

INSERT_CHUNK = 5_000  # rows per executemany: big enough to be fast, small enough to bound memory
FILTERS = ("all", "labeled", "unlabeled")


def _done(session: Session, commit: bool) -> None:
    """Commit, or only flush when the caller composes a larger transaction."""
    session.commit() if commit else session.flush()


# --- datasets -------------------------------------------------------------------------------------------


def create_dataset(
    session: Session, name: str, task: str, labels: Iterable[str] = (), commit: bool = True
) -> Dataset:
    """Create a dataset with an ordered label set (entity types for token datasets).

    Args:
        session: the session.
        name: unique name.
        task: ``sequence``, ``pair`` or ``token``.
        labels: the label set, in display order.

    Returns:
        The new Dataset.

    >>> create_dataset(s, "reviews", "sequence", ["neg", "pos"]).label_names  # doctest: +SKIP
    ['neg', 'pos']
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if not name.strip():
        raise ValueError("dataset name is empty")
    if get_dataset_by_name(session, name) is not None:
        raise ValueError(f"a dataset named {name!r} already exists")
    ds = Dataset(name=name, task=task)
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
    """Delete a dataset with its examples, labels and finished jobs; refused while a job on it is active."""
    active = session.scalar(
        select(func.count()).where(
            Job.dataset_id == dataset_id, Job.status.in_(("queued", "running", "cancelling"))
        )
    )
    if active:
        raise ValueError("cancel the dataset's queued or running jobs first")
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
    """Append labels not yet in the set, keeping order; returns the whole set."""
    current = label_names(session, dataset_id)
    for name in names:
        name = str(name)
        if not name.strip():
            raise ValueError("label name is empty")
        if name not in current:
            session.add(Label(dataset_id=dataset_id, name=name, position=len(current)))
            current.append(name)
    _done(session, commit)
    return current


def set_labels(session: Session, dataset_id: int, names: list[str], commit: bool = True) -> list[str]:
    """Replace the label set (new order); refuses to drop a label that examples still use."""
    used = set(label_distribution(session, dataset_id, include_zero=False))
    missing = used - set(names)
    if missing:
        raise ValueError(f"labels still in use: {sorted(missing)}")
    session.execute(delete(Label).where(Label.dataset_id == dataset_id))
    session.flush()
    add_labels(session, dataset_id, names, commit=False)
    _done(session, commit)
    return list(names)


def dataset_summaries(session: Session) -> list[dict]:
    """Every dataset with task, example counts and label distribution, for listings."""
    out = []
    for ds in list_datasets(session):
        total = count_examples(session, ds.id)
        labeled = count_examples(session, ds.id, status="labeled")
        out.append(
            {
                "id": ds.id,
                "name": ds.name,
                "task": ds.task,
                "labels": ds.label_names,
                "examples": total,
                "labeled": labeled,
                "distribution": label_distribution(session, ds.id),
            }
        )
    return out


# --- examples --------------------------------------------------------------------------------------------


def _example_row(
    ex: dict, dataset_id: int, task: str, split: str | None, source_file: str | None, now
) -> dict:
    """An engine-format dict -> the column values of one `examples` row."""
    labeled = ex.get("tags") is not None if task == "token" else ex.get("label") is not None
    return {
        "dataset_id": dataset_id,
        "text": ex.get("text"),
        "text_pair": ex.get("text_pair"),
        "tokens": ex.get("tokens"),
        "label": ex.get("label") if task != "token" else None,
        "tags": ex.get("tags") if task == "token" else None,
        "split": ex.get("split", split),
        "source_file": ex.get("source_file", source_file),
        "source_row": ex.get("source_row"),
        "labeled_by": ex.get("labeled_by", "import" if labeled else None),
        "labeled_at": now if labeled else None,
        "created_at": now,
    }


def _insert_chunk(session: Session, rows: list[dict]) -> None:
    """One executemany; a seam that tests use to inject a failure mid-import."""
    session.execute(insert(Example), rows)


def add_examples(
    session: Session,
    dataset_id: int,
    examples: Iterable[dict],
    split: str | None = None,
    source_file: str | None = None,
    commit: bool = True,
) -> int:
    """Insert examples in bulk (executemany, not one ORM object each: 100k rows in about a second).

    Args:
        session: the session.
        dataset_id: target dataset.
        examples: engine-format dicts, optionally with ``source_row``, ``split``, ``source_file``.
        split: split for examples that do not name one.
        source_file: file name recorded as provenance.

    Returns:
        The number inserted. Labels must already be in the label set (`import_examples` extends it).

    >>> add_examples(s, ds.id, [{"text": "great", "label": "pos"}])  # doctest: +SKIP
    1
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    ds = get_dataset(session, dataset_id)
    allowed = set(ds.label_names)
    now = utcnow()
    n = 0
    chunk: list[dict] = []
    for ex in examples:
        row = _example_row(ex, dataset_id, ds.task, split, source_file, now)
        _check_example(ds.task, row, allowed)
        chunk.append(row)
        if len(chunk) >= INSERT_CHUNK:
            _insert_chunk(session, chunk)
            n += len(chunk)
            chunk = []
    if chunk:
        _insert_chunk(session, chunk)
        n += len(chunk)
    ds.updated_at = now
    _done(session, commit)
    return n


def _check_example(task: str, row: dict, allowed: set[str]) -> None:
    """Guard the invariants the database relies on (io validates files earlier, with row/column messages)."""
    if task == "token":
        tokens, tags = row["tokens"], row["tags"]
        if not tokens:
            raise ValueError("token example without tokens")
        if tags is not None:
            if len(tags) != len(tokens):
                raise ValueError(f"{len(tags)} tags for {len(tokens)} tokens")
            for tag in tags:
                if not TAG_RE.match(tag) or (tag != "O" and tag[2:] not in allowed):
                    raise ValueError(f"tag {tag!r} is not in the tag set {iob2_tags(sorted(allowed))}")
    else:
        if not (row["text"] or "").strip():
            raise ValueError("example text is empty")
        if task == "pair" and not (row["text_pair"] or "").strip():
            raise ValueError("example text pair is empty")
        if row["label"] is not None and row["label"] not in allowed:
            raise ValueError(f"label {row['label']!r} is not in the label set {sorted(allowed)}")


def import_examples(
    session: Session,
    dataset_name: str,
    task: str,
    examples: list[dict],
    labels: Iterable[str] = (),
    split: str | None = None,
    source_file: str | None = None,
) -> Dataset:
    """Create the dataset if needed, extend its label set and add the examples: one transaction.

    Args:
        session: the session.
        dataset_name: existing or new dataset.
        task: must match an existing dataset's task.
        examples: validated dicts from `storage.io.load_examples`.
        labels: labels to add to the set (those found in the file).
        split, source_file: as in `add_examples`.

    Returns:
        The dataset. On any error nothing is written.

    >>> import_examples(s, "sst2", "sequence", loaded.examples, loaded.labels)  # doctest: +SKIP
    """
    try:
        ds = get_dataset_by_name(session, dataset_name)
        if ds is None:
            ds = create_dataset(session, dataset_name, task, labels, commit=False)
        elif ds.task != task:
            raise ValueError(f"dataset {dataset_name!r} is a {ds.task} dataset, not {task}")
        else:
            add_labels(session, ds.id, labels, commit=False)
        session.refresh(ds, ["labels"])
        add_examples(session, ds.id, examples, split=split, source_file=source_file, commit=False)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return ds


def get_example(session: Session, example_id: int) -> Example:
    """The example with this id; KeyError if there is none."""
    ex = session.get(Example, example_id)
    if ex is None:
        raise KeyError(f"no example with id {example_id}")
    return ex


def _filtered(dataset_id: int, status: str, label: str | None, search: str | None, split: str | None):
    """WHERE clauses shared by page and count."""
    if status not in FILTERS:
        raise ValueError(f"status must be one of {FILTERS}")
    labeled = or_(Example.label.is_not(None), Example.tags.is_not(None))
    clauses = [Example.dataset_id == dataset_id]
    if status == "labeled":
        clauses.append(labeled)
    elif status == "unlabeled":
        clauses.append(~labeled)
    if label is not None:
        clauses.append(Example.label == label)
    if split is not None:
        clauses.append(Example.split == split)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(
            or_(
                Example.text.ilike(pattern, escape="\\"),
                Example.text_pair.ilike(pattern, escape="\\"),
                cast(Example.tokens, Text).ilike(pattern, escape="\\"),
            )
        )
    return clauses


def page_examples(
    session: Session,
    dataset_id: int,
    offset: int = 0,
    limit: int = 50,
    status: str = "all",
    label: str | None = None,
    search: str | None = None,
    split: str | None = None,
) -> list[Example]:
    """A page of examples in id order, filtered by labeled/unlabeled, label, split and text search."""
    stmt = select(Example).where(*_filtered(dataset_id, status, label, search, split)).order_by(Example.id)
    return list(session.scalars(stmt.offset(offset).limit(limit)))


def count_examples(
    session: Session,
    dataset_id: int,
    status: str = "all",
    label: str | None = None,
    search: str | None = None,
    split: str | None = None,
) -> int:
    """How many examples match the same filters as `page_examples`."""
    return session.scalar(
        select(func.count(Example.id)).where(*_filtered(dataset_id, status, label, search, split))
    )  # type: ignore[return-value]


def next_example(
    session: Session, dataset_id: int, owner: str | None = None, lease_s: float = 600, order: str = "id"
) -> Example | None:
    """The next unlabeled example not leased to someone else; with an owner, lease it to them.

    ``order`` is ``id`` (file order) or ``random`` (seeded by nothing: each call may differ).
    """
    now = utcnow()
    free = or_(Example.lease_until.is_(None), Example.lease_until < now, Example.lease_owner == owner)
    stmt = select(Example).where(*_filtered(dataset_id, "unlabeled", None, None, None), free)
    stmt = stmt.order_by(func.random() if order == "random" else Example.id).limit(1)
    ex = session.scalars(stmt).first()
    if ex is not None and owner is not None:
        ex.lease_owner, ex.lease_until = owner, now + timedelta(seconds=lease_s)
        session.commit()
    return ex


def set_label(
    session: Session,
    example_id: int,
    label: str | None = None,
    tags: list[str] | None = None,
    labeled_by: str | None = None,
    commit: bool = True,
) -> Example:
    """Set an example's label (or IOB2 tags for token datasets); stray I- tags are repaired to B-.

    Args:
        session: the session.
        example_id: the example.
        label: a label from the dataset's set (sequence/pair).
        tags: one IOB2 tag per token (token datasets).
        labeled_by: who labeled it.

    Returns:
        The updated example; its lease is released.

    >>> set_label(s, ex.id, "pos", labeled_by="ana").label  # doctest: +SKIP
    'pos'
    """
    ex = get_example(session, example_id)
    task = get_dataset(session, ex.dataset_id).task
    if (task == "token") != (tags is not None) or (task != "token" and label is None):
        raise ValueError("give tags for token datasets and a label otherwise (clear_label removes one)")
    if tags is not None:
        tags = to_iob2(list(tags))[0]
    row = {"text": ex.text, "text_pair": ex.text_pair, "tokens": ex.tokens, "label": label, "tags": tags}
    _check_example(task, row, set(label_names(session, ex.dataset_id)))
    ex.label, ex.tags = label, tags
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


def label_distribution(session: Session, dataset_id: int, include_zero: bool = True) -> dict[str, int]:
    """Labeled examples per label in label-set order; for token datasets, entity spans (B- tags) per type."""
    names = label_names(session, dataset_id)
    task = get_dataset(session, dataset_id).task
    counts: Counter[str] = Counter()
    if task == "token":
        for tags in session.scalars(select(Example.tags).where(Example.dataset_id == dataset_id)):
            counts.update(t[2:] for t in tags or () if t.startswith("B-"))
    else:
        stmt = (
            select(Example.label, func.count())
            .where(Example.dataset_id == dataset_id, Example.label.is_not(None))
            .group_by(Example.label)
        )
        counts.update(dict(session.execute(stmt).all()))
    ordered = {n: counts.get(n, 0) for n in names if include_zero or counts.get(n)}
    ordered.update({k: v for k, v in counts.items() if k not in ordered})
    return ordered


def assign_split(
    session: Session, dataset_id: int, eval_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> dict[str, int]:
    """Assign train/eval/test to labeled examples, stratified by label and deterministic for a seed.

    Args:
        session: the session.
        dataset_id: the dataset.
        eval_fraction, test_fraction: shares per label (rounded per label; a label with one example
            goes to train so training sees every class).
        seed: same seed and same labeled examples -> the same split.

    Returns:
        Counts per split. Unlabeled examples are left unassigned.

    >>> assign_split(s, ds.id, eval_fraction=0.25, seed=1)  # doctest: +SKIP
    {'train': 6, 'eval': 2, 'test': 0}
    """
    if eval_fraction < 0 or test_fraction < 0 or eval_fraction + test_fraction >= 1:
        raise ValueError("fractions must be >= 0 and leave some examples for training")
    rows = session.execute(
        select(Example.id, Example.label, Example.tags)
        .where(*_filtered(dataset_id, "labeled", None, None, None))
        .order_by(Example.id)
    ).all()
    strata: dict[str, list[int]] = defaultdict(list)
    for ex_id, label, tags in rows:
        # token examples are stratified by their first entity type ("O" when none)
        key = label if label is not None else next((t[2:] for t in tags if t != "O"), "O")
        strata[key].append(ex_id)
    updates = []
    for key in sorted(strata):
        ids = strata[key]
        random.Random(f"{seed}:{key}").shuffle(ids)  # string seed: stable across runs and Python versions
        n_eval = round(len(ids) * eval_fraction) if len(ids) > 1 else 0
        n_test = round(len(ids) * test_fraction) if len(ids) > 2 else 0
        for i, ex_id in enumerate(ids):
            split = "eval" if i < n_eval else "test" if i < n_eval + n_test else "train"
            updates.append({"id": ex_id, "split": split})
    if updates:
        session.execute(update(Example), updates)  # ORM bulk update by primary key
    session.commit()
    return {s: sum(u["split"] == s for u in updates) for s in SPLITS}


def _engine_dict(ex_id: int, task: str, text, text_pair, tokens, label, tags) -> dict:
    """One example in the engine's format."""
    if task == "token":
        return {"id": ex_id, "tokens": tokens, "tags": tags}
    out = {"id": ex_id, "text": text, "label": label}
    if task == "pair":
        out["text_pair"] = text_pair
    return out


def examples_for_training(session: Session, dataset_id: int, split: str | None = None) -> list[dict]:
    """Labeled examples as plain dicts in the engine's format, each with its ``id``.

    Args:
        session: the session.
        dataset_id: the dataset.
        split: None for all labeled examples, else ``train``, ``eval`` or ``test``.

    Returns:
        ``{"id", "text", "label"}`` (sequence), plus ``"text_pair"`` (pair), or ``{"id", "tokens", "tags"}``.

    >>> examples_for_training(s, ds.id, "train")[0]  # doctest: +SKIP
    {'id': 1, 'text': 'great', 'label': 'pos'}
    """
    return examples_for_export(session, dataset_id, labeled_only=True, split=split, with_id=True)


def examples_for_export(
    session: Session,
    dataset_id: int,
    labeled_only: bool = False,
    split: str | None = None,
    with_id: bool = False,
) -> list[dict]:
    """Examples as engine-format dicts in id order (unlabeled ones with label/tags None) for export."""
    task = get_dataset(session, dataset_id).task
    status = "labeled" if labeled_only else "all"
    stmt = (
        select(Example.id, Example.text, Example.text_pair, Example.tokens, Example.label, Example.tags)
        .where(*_filtered(dataset_id, status, None, None, split))
        .order_by(Example.id)
    )
    out = [_engine_dict(r[0], task, *r[1:]) for r in session.execute(stmt)]
    if not with_id:
        for d in out:
            del d["id"]
    return out


def training_problems(session: Session, dataset_id: int) -> list[str]:
    """Why a dataset cannot be trained on yet (empty list: it can)."""
    task = get_dataset(session, dataset_id).task
    dist = label_distribution(session, dataset_id, include_zero=False)
    classes = len(dist) + (1 if task == "token" else 0)  # token datasets also have the O class
    if classes < 2:
        return [f"training needs at least two classes; labeled so far: {sorted(dist) or 'none'}"]
    return []


def delete_examples(session: Session, example_ids: list[int], commit: bool = True) -> int:
    """Delete examples by id; returns how many went."""
    result = session.execute(delete(Example).where(Example.id.in_(example_ids)))
    _done(session, commit)
    return result.rowcount


# --- labeling: atomic leases, guarded label writes, the model's scores ------------------------------------------

LABEL_FILTERS = ("unlabeled", "labeled", "label", "disagreements", "all")
LABEL_ORDERS = ("id", "random", "entropy", "margin")
LEASE_RETRIES = 20  # another labeler can take our candidate between choosing and leasing it; try the next one
_HASH_P = 2_147_483_647  # 2^31 - 1: (x * x) stays inside SQLite's 64-bit integers


def latest_score_job_id(session: Session, dataset_id: int) -> int | None:
    """The dataset's newest completed score job (its predictions are the ones shown), or None."""
    return session.scalar(
        select(Job.id)
        .where(Job.dataset_id == dataset_id, Job.kind == "score", Job.status == "completed")
        .order_by(Job.finished_at.desc(), Job.id.desc())
        .limit(1)
    )


def latest_train_job(session: Session, dataset_id: int) -> Job | None:
    """The dataset's newest train job, whatever its status (Retrain reuses its settings), or None."""
    return session.scalars(
        select(Job)
        .where(Job.dataset_id == dataset_id, Job.kind == "train")
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    ).first()


def _label_where(dataset_id: int, status: str, label: str | None, score_job_id: int | None) -> list:
    """WHERE clauses of the label view's filters (``disagreements`` needs the score job)."""
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
        clauses.append(or_(Example.label == label, cast(Example.tags, Text).like(pattern, escape="\\")))
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


def _label_order(stmt, order: str, seed: int, score_job_id: int | None):
    """ORDER BY for the label view: file order, a per-seed shuffle, or the model's least sure first."""
    if order not in LABEL_ORDERS:
        raise ValueError(f"order must be one of {LABEL_ORDERS}, not {order!r}")
    if order == "random":
        # a seeded hash, not RANDOM(): the same seed gives the same order on every call
        x = ((Example.id + int(seed) * 2_654_435_761 % _HASH_P) * 48_271) % _HASH_P
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
    where = [*_label_where(dataset_id, status, label, score_job_id), free]
    exclude = list(exclude)
    if exclude:
        where.append(Example.id.not_in(exclude))
    returning = session.get_bind().dialect.update_returning
    for _ in range(LEASE_RETRIES):
        pick = _label_order(select(Example.id).where(*where), order, seed, score_job_id).limit(1)
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
    label: str | None = None,
    tags: list[str] | None = None,
    labeled_by: str | None = None,
    owner: str | None = None,
    expect_unlabeled: bool = False,
) -> bool:
    """Label an example unless another labeler holds it: one guarded UPDATE, committed at once.

    Args:
        session: the session.
        example_id: the example.
        label, tags: as in `set_label` (validated the same way).
        labeled_by: who gives it (the login name).
        owner: the labeler's lease id; an example leased to someone else is refused.
        expect_unlabeled: refuse if someone labeled it meanwhile (it was shown unlabeled).

    Returns:
        True if written, False if refused (nothing written).

    >>> give_label(s, ex.id, "pos", labeled_by="ana", owner="tab-1", expect_unlabeled=True)  # doctest: +SKIP
    True
    """
    ex = get_example(session, example_id)
    task = get_dataset(session, ex.dataset_id).task
    if (task == "token") != (tags is not None) or (task != "token" and label is None):
        raise ValueError("give tags for token datasets and a label otherwise")
    if tags is not None:
        tags = to_iob2(list(tags))[0]
    row = {"text": ex.text, "text_pair": ex.text_pair, "tokens": ex.tokens, "label": label, "tags": tags}
    _check_example(task, row, set(label_names(session, ex.dataset_id)))
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
            label=label, tags=tags, labeled_by=labeled_by, labeled_at=now, lease_owner=None, lease_until=None
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def restore_label(
    session: Session, example_id: int, label: str | None, tags: list[str] | None, labeled_by: str | None
) -> Example:
    """Put back an earlier label (None and None: unlabeled) -- what Undo does."""
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
    where = _label_where(dataset_id, status, label, score_job_id)
    return session.scalar(select(func.count(Example.id)).where(*where))  # type: ignore[return-value]
