"""What a dataset's labels add up to: distributions, score summaries, training plans, listings, the label set.

Kept apart from `storage.examples` (the rows themselves); every count here knows the dataset's problem: a
multi-label example counts once for each label it holds, a regression dataset has scores, not classes.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage.datasets import _done, add_labels, get_dataset, label_names, list_datasets
from storage.examples import _filtered, count_examples
from storage.label_values import decode_label, encode_label
from storage.models import Example, Label


def label_distribution(session: Session, dataset_id: int, include_zero: bool = True) -> dict[str, int]:
    """Labeled examples per label in label-set order; for token datasets, entity spans (B- tags) per type.

    Multi-label: the examples whose list holds each label. Regression: ``{}`` (see `score_summary`).
    """
    ds = get_dataset(session, dataset_id)
    if ds.problem == "regression":
        return {}
    names = label_names(session, dataset_id)  # a query: ds.labels may predate labels added in this session
    counts: Counter[str] = Counter()
    if ds.task == "token":
        for tags in session.scalars(select(Example.tags).where(Example.dataset_id == dataset_id)):
            counts.update(t[2:] for t in tags or () if t.startswith("B-"))
    else:
        stmt = (
            select(Example.label, func.count())
            .where(Example.dataset_id == dataset_id, Example.label.is_not(None))
            .group_by(Example.label)
        )
        for label, n in session.execute(stmt):
            # a multi-label group is one combination of labels: each of its labels gets its examples
            for name in decode_label("multilabel", label) if ds.problem == "multilabel" else [label]:
                counts[name] += n
    ordered = {n: counts.get(n, 0) for n in names if include_zero or counts.get(n)}
    ordered.update({k: v for k, v in counts.items() if k not in ordered})
    return ordered


def score_summary(session: Session, dataset_id: int) -> dict:
    """A regression dataset's labeled scores: ``{"count", "min", "max", "mean"}`` (None values when none).

    >>> score_summary(s, ds.id)  # doctest: +SKIP
    {'count': 3, 'min': 1.0, 'max': 4.5, 'mean': 2.5}
    """
    stored = session.scalars(
        select(Example.label).where(Example.dataset_id == dataset_id, Example.label.is_not(None))
    ).all()
    scores = [float(v) for v in stored]
    if not scores:
        return {"count": 0, "min": None, "max": None, "mean": None}
    return {"count": len(scores), "min": min(scores), "max": max(scores), "mean": sum(scores) / len(scores)}


def _list_or_score_problems(
    session: Session, dataset_id: int, problem: str, held_out: tuple[str, ...], where: str
) -> list[str]:
    """Why a multi-label or regression dataset cannot train: too few labeled examples, no label in use, or one
    score only (a correlation needs two)."""
    stmt = select(Example.label, Example.split).where(*_filtered(dataset_id, "labeled", None, None, None))
    values = [label for label, split in session.execute(stmt) if split not in held_out]
    if len(values) < 2:
        return [f"training needs at least two labeled examples{where}; so far: {len(values)}"]
    if problem == "multilabel":
        if not any(decode_label(problem, v) for v in values):
            return [
                f"training needs at least one label in use{where}; so far none of the {len(values)} labeled "
                "examples has a label that applies"
            ]
        return []
    distinct = sorted({float(v) for v in values})
    if len(distinct) < 2:
        return [
            f"training needs at least two different scores{where}; so far all {len(values)} labeled "
            f"examples score {distinct[0]:g}"
        ]
    return []


def training_problems(session: Session, dataset_id: int) -> list[str]:
    """Why a dataset cannot be trained on yet (empty list: it can)."""
    ds = get_dataset(session, dataset_id)
    if ds.problem != "single":
        return _list_or_score_problems(session, dataset_id, ds.problem, held_out=(), where="")
    dist = label_distribution(session, dataset_id, include_zero=False)
    classes = len(dist) + (1 if ds.task == "token" else 0)  # token datasets also have the O class
    if classes < 2:
        return [f"training needs at least two classes; labeled so far: {sorted(dist) or 'none'}"]
    return []


def _train_counts(
    session: Session, dataset_id: int, task: str, held_out: tuple[str, ...], problem: str = "single"
) -> tuple[int, Counter]:
    """Labeled examples outside the ``held_out`` splits and their classes' counts (multi-label: examples per
    label; regression: none)."""
    stmt = select(Example.label, Example.tags, Example.split).where(
        *_filtered(dataset_id, "labeled", None, None, None)
    )
    n, counts = 0, Counter()
    for label, tags, split in session.execute(stmt):
        if split in held_out:
            continue
        n += 1
        if task == "token":
            # token sentences count once per entity type they hold ("O" alone: a sentence without entities)
            counts.update({t[2:] for t in tags if t != "O"} or {"O"})
        elif problem == "multilabel":
            counts.update(decode_label(problem, label))
        elif problem == "single":
            counts[label] += 1
    return n, counts


def training_plan(session: Session, dataset_id: int, eval_split: float = 0.1) -> dict:
    """What a training job on this dataset would use, and why it cannot start (mirrors worker.training_data).

    The worker trains on the labeled examples only, on the dataset's own eval split when it has one, else on
    a seeded ``eval_split`` share held out by the engine (stratified only when every class has two examples;
    never for multi-label and regression).

    Returns:
        ``{"problems": [...] (empty: it can start), "notes": [...] (what is left out), "labels": the classes
        with examples in label-set order (entity types for token datasets; ``["score"]`` for regression),
        "labeled", "total", "counts"}``.

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
    labeled, counts = _train_counts(session, dataset_id, task, held_out, ds.problem)
    classes = {k: v for k, v in counts.items() if k != "O"}  # token: the entity types; "O" is always there
    # the model's classes: every label with an example, also one seen only in the eval or test split (the
    # engine's default, the training part's labels, failed on it: "eval example 1: label 'LOC' is not in the
    # label set")
    used = _train_counts(session, dataset_id, task, (), ds.problem)[1]
    labels = [n for n in names if used.get(n)] + sorted(k for k in used if k not in names and k != "O")
    if ds.problem == "regression":
        labels = ["score"]  # the engine's one output
    so_far = ", ".join(f"{k} ({v})" for k, v in sorted(classes.items())) or "none"
    where = (
        " outside the dataset's eval and test splits"
        if has_eval
        else " outside its test split"
        if n_test
        else ""
    )
    problems = []
    too_few_to_hold_out = (
        f"{labeled} labeled example(s) are too few to hold {eval_split:.0%} out for evaluation: "
        "label more, or set Eval split to 0"
    )
    if ds.problem != "single":  # no stratification: any held-out share leaves the rest to train on
        problems = _list_or_score_problems(session, dataset_id, ds.problem, held_out, where)
        n_eval = max(1, round(labeled * eval_split))  # as finetuner.training_parts.split_off_eval
        if not problems and not has_eval and eval_split > 0 and labeled - n_eval < 1:
            problems.append(too_few_to_hold_out)
    elif len(classes) < (1 if task == "token" else 2):
        what = "entities of at least one type" if task == "token" else "examples of at least two labels"
        problems.append(f"training needs labeled {what}{where}; so far: {so_far}")
    elif not has_eval and eval_split > 0:
        n_eval = max(1, round(labeled * eval_split))  # as finetuner.training_parts.split_off_eval
        stratified = min(classes.values()) >= 2 and n_eval >= len(classes)
        if labeled - n_eval < 1:
            problems.append(too_few_to_hold_out)
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


def sample_inputs(session: Session, dataset_id: int, sample: int = 500) -> list:
    """What the encoder reads of the first `sample` labeled examples: texts, (text, text_pair) tuples, or token
    sentences (lists of words). The estimated time counts their tokens.

    >>> sample_inputs(s, ds.id, 2)  # doctest: +SKIP
    [('A man plays', 'Someone plays'), ('A dog runs', 'A cat sleeps')]
    """
    stmt = (
        select(Example.text, Example.text_pair, Example.tokens)
        .where(*_filtered(dataset_id, "labeled", None, None, None))
        .order_by(Example.id)
        .limit(sample)
    )
    return [
        list(tokens) if tokens is not None else (text or "", pair) if pair is not None else text or ""
        for text, pair, tokens in session.execute(stmt)
    ]


def set_labels(session: Session, dataset_id: int, names: list[str], commit: bool = True) -> list[str]:
    """Replace the label set (new order); refuses to drop a label that examples still use.

    Multi-label values are stored in label-set order, so a new order rewrites them.
    """
    used = set(label_distribution(session, dataset_id, include_zero=False))
    missing = used - set(names)
    if missing:
        raise ValueError(f"labels still in use: {sorted(missing)}")
    session.execute(delete(Label).where(Label.dataset_id == dataset_id))
    session.flush()
    add_labels(session, dataset_id, names, commit=False)
    if get_dataset(session, dataset_id).problem == "multilabel":
        positions = {n: i for i, n in enumerate(names)}
        stmt = select(Example.id, Example.label).where(
            Example.dataset_id == dataset_id, Example.label.is_not(None)
        )
        rows = [
            {"id": ex_id, "label": encode_label("multilabel", decode_label("multilabel", stored), positions)}
            for ex_id, stored in session.execute(stmt)
        ]
        if rows:
            session.execute(update(Example), rows)
    _done(session, commit)
    return list(names)


def dataset_summaries(session: Session) -> list[dict]:
    """Every dataset with task, problem, example counts and label distribution (and ``scores``, the
    `score_summary`, for regression), for listings."""
    out = []
    for ds in list_datasets(session):
        summary = {
            "id": ds.id,
            "name": ds.name,
            "task": ds.task,
            "problem": ds.problem,
            "labels": ds.label_names,
            "examples": count_examples(session, ds.id),
            "labeled": count_examples(session, ds.id, status="labeled"),
            "distribution": label_distribution(session, ds.id),
        }
        if ds.problem == "regression":
            summary["scores"] = score_summary(session, ds.id)
        out.append(summary)
    return out
