"""Split queries: a seeded, stratified train/eval/test assignment, moves between splits, counts per split."""

from __future__ import annotations

import random
from collections import defaultdict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.datasets import _done, get_dataset
from storage.examples import _filtered
from storage.models import SPLITS, Example
from storage.splits import split_name


def assign_split(
    session: Session, dataset_id: int, eval_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> dict[str, int]:
    """Assign train/eval/test to labeled examples, stratified by label and deterministic for a seed.

    Args:
        session: the session.
        dataset_id: the dataset.
        eval_fraction, test_fraction: shares per label (rounded per label; a label with one example
            goes to train so training sees every class); multi-label and regression datasets are not
            stratified.
        seed: same seed and same labeled examples -> the same split.

    Returns:
        Counts per split. Unlabeled examples are left unassigned.

    >>> assign_split(s, ds.id, eval_fraction=0.25, seed=1)  # doctest: +SKIP
    {'train': 6, 'eval': 2, 'test': 0}
    """
    if eval_fraction < 0 or test_fraction < 0 or eval_fraction + test_fraction >= 1:
        raise ValueError("fractions must be >= 0 and leave some examples for training")
    problem = get_dataset(session, dataset_id).problem
    rows = session.execute(
        select(Example.id, Example.label, Example.tags)
        .where(*_filtered(dataset_id, "labeled", None, None, None))
        .order_by(Example.id)
    ).all()
    strata: dict[str, list[int]] = defaultdict(list)
    for ex_id, label, tags in rows:
        if problem != "single":
            # one stratum: label lists and scores are mostly unique, and a stratum of one goes to train
            key = ""
        else:  # token examples are stratified by their first entity type ("O" when none)
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
