"""Labeling multi-label and score datasets (issue 24): the toggled set on the card, a typed or keyed score.

Multi-label: keys 1-9 (or clicks) toggle labels on the shown example; nothing is written until Enter confirms the
set, and an empty set is a label too ("none apply"). The set being built lives in the labeling state as
``picked`` (names) for the example ``picked_for``; a new example starts from its stored labels, else from the
model's suggestion, else empty. Score: a typed number and Enter, or, on a bounded integer scale (``scale``,
from the labeled scores: e.g. 1-5), the score's own digit.
"""

from __future__ import annotations

import math

from storage import repo
from ui.problems import integer_scale, label_list, problem_of, score_value


def dataset_kind(s, dataset_id: int) -> dict:
    """``{"problem", "scale"}`` for the labeling state: the dataset's problem and, for scores, the keyed scale."""
    problem = problem_of(repo.get_dataset(s, dataset_id))
    scale = integer_scale(score_summary(s, dataset_id)) if problem == "regression" else None
    return {"problem": problem, "scale": scale}


def score_summary(s, dataset_id: int) -> dict | None:
    """``{"count", "min", "max", "mean"}`` of a score dataset's labels (None before storage has it)."""
    summary = getattr(repo, "score_summary", None)  # storage's, from issue 24
    return summary(s, dataset_id) if summary else None


def suggested_labels(score) -> list[str] | None:
    """The labels a score job's row suggests for a multi-label example (a JSON list, or one name), or None."""
    if score is None or score.label is None:
        return None
    return label_list(score.label)


def suggested_score(score) -> float | None:
    """The score a score job's row suggests for a score example, or None (no number stored)."""
    return None if score is None else score_value(score.label)


def picked(s, st: dict, example) -> list[str]:
    """The set on the card for `example`: the one being built, else its stored labels, else the model's."""
    if st.get("picked_for") == example.id and st.get("picked") is not None:
        return list(st["picked"])
    stored = label_list(example.label)
    if stored is not None:
        return stored
    score = repo.example_score(s, repo.latest_score_job_id(s, st["dataset"]), example.id)
    return suggested_labels(score) or []


def toggle(s, st: dict, example, labels: list[str], index: int) -> None:
    """Key or click on label `index`: in the set if it was out, out if it was in (kept in label-set order)."""
    current = set(picked(s, st, example))
    name = labels[index]
    current ^= {name}
    st["picked"] = [n for n in labels if n in current]
    st["picked_for"] = example.id


def forget_picked(st: dict) -> None:
    """The set belongs to one example: drop it once that one is labeled or left."""
    st["picked"], st["picked_for"] = None, None


def parse_score(value) -> float:
    """A typed score as a number; ValueError saying what was typed.

    >>> parse_score(" 3,5 ")
    3.5
    """
    text = str(value if value is not None else "").strip().replace(",", ".")  # 3,5 as many keyboards write it
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"type a number for the score (got {text!r})") from None
    if not math.isfinite(number):
        raise ValueError(f"the score must be a finite number (got {text!r})")
    return number


def restorable(stored, problem: str):
    """A stored label as `repo.restore_label` takes it back (Undo): a list, a number, or the name."""
    if stored is None:
        return None
    if problem == "multilabel":
        return label_list(stored)
    if problem == "regression":
        return score_value(stored)
    return stored
