"""Example queries: bulk import in one transaction, browse, label, split, and rows for training or export."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Text, cast, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from storage.conll import TAG_RE, to_iob2
from storage.datasets import (
    _done,
    add_labels,
    create_dataset,
    get_dataset,
    get_dataset_by_name,
    label_names,
    list_datasets,
)
from storage.models import SPLITS, Dataset, Example, Label, iob2_tags, utcnow
from storage.splits import split_name

INSERT_CHUNK = 5_000  # rows per executemany: big enough to be fast, small enough to bound memory
FILTERS = ("all", "labeled", "unlabeled")


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
    split = split_name(split)  # "dev" / "validation" name the stored eval split; ValueError otherwise
    ds = get_dataset(session, dataset_id)
    allowed = set(ds.label_names)
    now = utcnow()
    n = 0
    chunk: list[dict] = []
    for ex in examples:
        row = _example_row(ex, dataset_id, ds.task, split, source_file, now)
        if row["split"] is not None and row["split"] not in SPLITS:
            raise ValueError(f"split {row['split']!r} is not one of {SPLITS}")
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


def set_split(
    session: Session, dataset_id: int, example_ids: list[int], split: str | None, commit: bool = True
) -> int:
    """Move examples of a dataset to a split (``train``, ``dev``/``eval``, ``test``; None: unassigned, i.e. train).

    Returns:
        How many moved. KeyError naming the ids that are not in the dataset (then none moves).
    """
    split = split_name(split)
    ids = sorted(set(example_ids))
    found = set(
        session.scalars(select(Example.id).where(Example.dataset_id == dataset_id, Example.id.in_(ids)))
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise KeyError(f"examples not in this dataset: {', '.join(map(str, missing[:20]))}")
    if ids:
        session.execute(update(Example).where(Example.id.in_(ids)).values(split=split))
    _done(session, commit)
    return len(ids)


def split_counts(session: Session, dataset_id: int) -> dict[str, int]:
    """Labeled examples per split; examples with no split count as ``train`` (the worker trains on them).

    >>> split_counts(s, ds.id)  # doctest: +SKIP
    {'train': 40, 'eval': 5, 'test': 5}
    """
    stmt = (
        select(Example.split, func.count())
        .where(*_filtered(dataset_id, "labeled", None, None, None))
        .group_by(Example.split)
    )
    counts = dict.fromkeys(SPLITS, 0)
    for split, n in session.execute(stmt):
        counts[split or "train"] += n
    return counts


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


def _train_counts(
    session: Session, dataset_id: int, task: str, held_out: tuple[str, ...]
) -> tuple[int, Counter]:
    """Labeled examples outside the ``held_out`` splits and their classes' counts."""
    stmt = select(Example.label, Example.tags, Example.split).where(
        *_filtered(dataset_id, "labeled", None, None, None)
    )
    n, counts = 0, Counter()
    for label, tags, split in session.execute(stmt):
        if split in held_out:
            continue
        n += 1
        # token sentences count once per entity type they hold ("O" alone: a sentence without entities)
        counts.update(({t[2:] for t in tags if t != "O"} or {"O"}) if task == "token" else {label})
    return n, counts


def training_plan(session: Session, dataset_id: int, eval_split: float = 0.1) -> dict:
    """What a training job on this dataset would use, and why it cannot start (mirrors worker.training_data).

    The worker trains on the labeled examples only, on the dataset's own eval split when it has one, else on
    a seeded ``eval_split`` share held out by the engine (stratified only when every class has two examples).

    Returns:
        ``{"problems": [...] (empty: it can start), "notes": [...] (what is left out), "labels": the classes
        with examples in label-set order (entity types for token datasets), "labeled", "total"}``.

    >>> training_plan(s, ds.id)["problems"]  # doctest: +SKIP
    ['training needs labeled examples of at least two labels; so far: pos (5)']
    """
    ds = get_dataset(session, dataset_id)
    task, names = ds.task, ds.label_names
    total = count_examples(session, dataset_id)
    has_eval = count_examples(session, dataset_id, status="labeled", split="eval") > 0
    n_test = count_examples(session, dataset_id, status="labeled", split="test")
    # the test split is never trained on (nor used to pick weights); eval is held out when there is one
    held_out = ("eval", "test") if has_eval else ("test",)
    labeled, counts = _train_counts(session, dataset_id, task, held_out=held_out)
    classes = {k: v for k, v in counts.items() if k != "O"}  # token: the entity types; "O" is always there
    # the model's classes: every label with an example, also one seen only in the eval or test split (the
    # engine's default, the training part's labels, failed on it: "eval example 1: label 'LOC' is not in the
    # label set")
    used = _train_counts(session, dataset_id, task, held_out=())[1]
    labels = [n for n in names if used.get(n)] + sorted(k for k in used if k not in names and k != "O")
    so_far = ", ".join(f"{k} ({v})" for k, v in sorted(classes.items())) or "none"
    problems = []
    if len(classes) < (1 if task == "token" else 2):
        what = "entities of at least one type" if task == "token" else "examples of at least two labels"
        where = (
            " outside the dataset's eval and test splits"
            if has_eval
            else " outside its test split"
            if n_test
            else ""
        )
        problems.append(f"training needs labeled {what}{where}; so far: {so_far}")
    elif not has_eval and eval_split > 0:
        n_eval = max(1, round(labeled * eval_split))  # as finetuner.training.split_off_eval
        stratified = min(classes.values()) >= 2 and n_eval >= len(classes)
        if labeled - n_eval < 1:
            problems.append(
                f"{labeled} labeled example(s) are too few to hold {eval_split:.0%} out for evaluation: "
                "label more, or set Eval split to 0"
            )
        elif task != "token" and not stratified and labeled - max(classes.values()) <= n_eval:
            few = ", ".join(k for k, v in sorted(classes.items()) if v < 2)
            problems.append(
                f"too few examples to split: the eval split may take every example of {few or 'a label'} and "
                f"leave training one label; label more of them, or set Eval split to 0 (so far: {so_far})"
            )
    notes = []
    unlabeled = count_examples(session, dataset_id, status="unlabeled")
    if not problems and unlabeled:
        notes.append(
            f"Training on the {labeled:,} labeled examples of {total:,}; the unlabeled are left out."
        )
    if not problems and n_test:
        notes.append(
            f"The {n_test:,} test examples are held out: scored once, after training, with the kept model."
        )
    empty = [n for n in names if not used.get(n)]
    if not problems and empty:
        notes.append(f"Labels with no examples are left out: {', '.join(empty)}.")
    return {"problems": problems, "notes": notes, "labels": labels, "labeled": labeled, "total": total,
            "counts": dict(counts)}  # fmt: skip


def delete_examples(session: Session, example_ids: list[int], commit: bool = True) -> int:
    """Delete examples by id; returns how many went."""
    result = session.execute(delete(Example).where(Example.id.in_(example_ids)))
    _done(session, commit)
    return result.rowcount


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
