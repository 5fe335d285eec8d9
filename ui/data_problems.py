"""The Data tab's multi-label and score pieces (issue 24): the question a list-valued label column raises, the
score range, and per-problem label summaries for the import result and the dataset list."""

from __future__ import annotations

import pandas as pd

from storage import repo
from ui.common import esc
from ui.problems import PROBLEM_NAMES, fmt_score, label_list, problem_of, score_value


def ask_lists(list_labels: str, sep: str) -> str:
    """What the import found and the question it asks before importing anything."""
    shown = esc(sep) if sep.strip() else "a separator"
    return (
        f"**The label column looks like lists:** {esc(list_labels)}.\n\n"
        "Does each text take **several labels** (multi-label: split on "
        f"`{shown}` or read as a JSON list), or is each cell **one label** whose name contains the separator? "
        "Nothing was imported yet."
    )


def preview_scores(rows: pd.DataFrame, label_col: str | None) -> str:
    """The range of the label column's numbers in the preview rows (a score import), or "" when it holds none."""
    if not label_col or label_col not in rows.columns:
        return ""
    values = [v for v in (score_value(c) for c in rows[label_col]) if v is not None]
    if not values:
        return ""
    return f"Scores in these first rows: {fmt_score(min(values))} to {fmt_score(max(values))}."


def score_summary(s, dataset_id: int) -> dict | None:
    """`repo.score_summary` (storage's, from issue 24), or None before it exists."""
    summary = getattr(repo, "score_summary", None)
    return summary(s, dataset_id) if summary else None


def summary_text(summary: dict | None) -> str:
    """``"120 scores from 1 to 5, mean 3.21"``; "no score yet" when none is labeled."""
    if not summary or not summary.get("count"):
        return "no score yet"
    return (
        f"{summary['count']:,} scores from {fmt_score(summary['min'])} to {fmt_score(summary['max'])}, "
        f"mean {summary['mean']:.2f}"
    )


def import_lines(s, dataset_id: int, problem: str, loaded) -> list[str]:
    """The import result's lines about the problem: the score range, or how many labels a text has."""
    if problem == "regression":
        known = getattr(loaded, "score_range", None)
        file_range = f" (this file: {fmt_score(known[0])} to {fmt_score(known[1])})" if known else ""
        return [f"Scores: {esc(summary_text(score_summary(s, dataset_id)))}{file_range}."]
    if problem == "multilabel":
        sets = [label_list(e.get("label")) for e in loaded.examples if e.get("label") is not None]
        if sets:
            mean = sum(len(x) for x in sets) / len(sets)
            empty = sum(not x for x in sets)
            none = f", {empty:,} with none" if empty else ""
            return [f"Multi-label: {mean:.2f} labels per labeled text on average{none}."]
    return []


def labels_cell(s, summary: dict) -> str:
    """The dataset list's labels cell: counts per label (multi-label: texts per label), or the score summary."""
    if problem_of(summary) == "regression":
        return summary_text(score_summary(s, summary["id"]))
    return ", ".join(f"{k}: {v}" for k, v in summary["distribution"].items())


def problem_cell(summary: dict) -> str:
    """The dataset list's problem cell: one label, multi-label, score."""
    return PROBLEM_NAMES[problem_of(summary)]
