"""Example queries: bulk import in one transaction, browse, and rows for training or export (labels are
written by `storage.labeling`).

Label values are kept as text per the dataset's problem (`storage.label_values`); callers give and get the
engine's values: a name, a list of names (multi-label) or a float (regression).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Text, cast, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from storage.conll import TAG_RE
from storage.datasets import (
    _done,
    add_labels,
    create_dataset,
    get_dataset,
    get_dataset_by_name,
)
from storage.label_values import decode_label, encode_label
from storage.models import SPLITS, Dataset, Example, iob2_tags, utcnow
from storage.splits import split_name

INSERT_CHUNK = 5_000  # rows per executemany: big enough to be fast, small enough to bound memory
FILTERS = ("all", "labeled", "unlabeled")
PROBLEM_WORDS = {"single": "one label per example", "multilabel": "lists of labels", "regression": "scores"}


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
    positions = {name: i for i, name in enumerate(ds.label_names)}
    now = utcnow()
    n = 0
    chunk: list[dict] = []
    for ex in examples:
        row = _example_row(ex, dataset_id, ds.task, split, source_file, now)
        if row["split"] is not None and row["split"] not in SPLITS:
            raise ValueError(f"split {row['split']!r} is not one of {SPLITS}")
        if row["label"] is not None and (ds.problem != "single" or not isinstance(row["label"], str)):
            try:
                row["label"] = encode_label(ds.problem, row["label"], positions)
            except ValueError as err:
                where = f"row {row['source_row']}: " if row["source_row"] is not None else ""
                raise ValueError(f"{where}{err}") from None
        _check_example(ds.task, row, allowed, ds.problem)
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


def _check_example(task: str, row: dict, allowed: set[str], problem: str = "single") -> None:
    """Guard the invariants the database relies on (io validates files earlier, with row/column messages).

    ``row["label"]`` is the stored text: only a single-label name is checked here (`encode_label` checks the
    others as it writes them)."""
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
        if problem == "single" and row["label"] is not None and row["label"] not in allowed:
            raise ValueError(f"label {row['label']!r} is not in the label set {sorted(allowed)}")


def import_examples(
    session: Session,
    dataset_name: str,
    task: str,
    examples: list[dict],
    labels: Iterable[str] = (),
    split: str | None = None,
    source_file: str | None = None,
    problem: str = "single",
) -> Dataset:
    """Create the dataset if needed, extend its label set and add the examples: one transaction.

    Args:
        session: the session.
        dataset_name: existing or new dataset.
        task: must match an existing dataset's task.
        examples: validated dicts from `storage.io.load_examples`.
        labels: labels to add to the set (those found in the file).
        split, source_file: as in `add_examples`.
        problem: ``single``, ``multilabel`` or ``regression``: a new dataset gets it, an existing one must
            have it.

    Returns:
        The dataset. On any error nothing is written.

    >>> import_examples(s, "sst2", "sequence", loaded.examples, loaded.labels)  # doctest: +SKIP
    """
    try:
        ds = get_dataset_by_name(session, dataset_name)
        if ds is None:
            ds = create_dataset(session, dataset_name, task, labels, commit=False, problem=problem)
        elif ds.task != task:
            raise ValueError(f"dataset {dataset_name!r} is a {ds.task} dataset, not {task}")
        elif ds.problem != problem:
            raise ValueError(
                f"dataset {dataset_name!r} holds {PROBLEM_WORDS[ds.problem]}, and this import "
                f"{PROBLEM_WORDS[problem]}: import it into another dataset"
            )
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


def label_match(problem: str, label):
    """The WHERE clause for examples with this label: for multi-label, those whose list holds it.

    REPLACE, not LIKE: it is case-sensitive on SQLite and PostgreSQL alike (SQLite's LIKE is not).
    """
    if problem == "multilabel":
        needle = json.dumps(label, ensure_ascii=False)  # how the name appears inside the stored JSON list
        return Example.label != func.replace(Example.label, needle, "")
    if problem == "regression":
        return Example.label == encode_label("regression", label)
    return Example.label == label


def _problem_of(session: Session, dataset_id: int) -> str:
    """The dataset's problem ("single" when there is no such dataset: its filters then match nothing)."""
    ds = session.get(Dataset, dataset_id)
    return ds.problem if ds is not None else "single"


def _filtered(
    dataset_id: int,
    status: str,
    label: str | None,
    search: str | None,
    split: str | None,
    problem: str = "single",
):
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
        clauses.append(label_match(problem, label))
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
    problem = _problem_of(session, dataset_id) if label is not None else "single"
    stmt = select(Example).where(*_filtered(dataset_id, status, label, search, split, problem))
    stmt = stmt.order_by(Example.id)
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
    problem = _problem_of(session, dataset_id) if label is not None else "single"
    return session.scalar(
        select(func.count(Example.id)).where(*_filtered(dataset_id, status, label, search, split, problem))
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


def _engine_dict(ex_id: int, task: str, problem: str, text, text_pair, tokens, label, tags) -> dict:
    """One example in the engine's format."""
    if task == "token":
        return {"id": ex_id, "tokens": tokens, "tags": tags}
    out = {"id": ex_id, "text": text, "label": decode_label(problem, label)}
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
        ``{"id", "text", "label"}`` (sequence), plus ``"text_pair"`` (pair), or ``{"id", "tokens", "tags"}``;
        the label is a name, a list of names (multi-label) or a float (regression).

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
    ds = get_dataset(session, dataset_id)
    status = "labeled" if labeled_only else "all"
    stmt = (
        select(Example.id, Example.text, Example.text_pair, Example.tokens, Example.label, Example.tags)
        .where(*_filtered(dataset_id, status, None, None, split))
        .order_by(Example.id)
    )
    out = [_engine_dict(r[0], ds.task, ds.problem, *r[1:]) for r in session.execute(stmt)]
    if not with_id:
        for d in out:
            del d["id"]
    return out


def delete_examples(session: Session, example_ids: list[int], commit: bool = True) -> int:
    """Delete examples by id; returns how many went."""
    result = session.execute(delete(Example).where(Example.id.in_(example_ids)))
    _done(session, commit)
    return result.rowcount
