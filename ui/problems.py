"""The problem axis in the UI (issue 24): one label, several labels (multi-label) or a score (regression).

Plain functions, no gradio: the kind choices the Data and Label tabs offer, what a stored label means for each
problem, the integer scale keys can give, and which metrics a model of each problem is known by.
"""

from __future__ import annotations

import math

from storage.label_values import coerce_label, parse_score

PROBLEM_NAMES = {"single": "one label", "multilabel": "multi-label", "regression": "score"}
# One control for input shape and problem: "task" or "task:problem" (single keeps the bare task name, so the
# values stored and sent before issue 24 still mean what they meant)
KIND_CHOICES = [
    ("Text → one label", "sequence"),
    ("Text → several labels (multi-label)", "sequence:multilabel"),
    ("Text → a score (regression)", "sequence:regression"),
    ("Two texts → one label (pair)", "pair"),
    ("Two texts → several labels (pair, multi-label)", "pair:multilabel"),
    ("Two texts → a score (pair, regression)", "pair:regression"),
    ("Words → tags (token / NER)", "token"),
]
SCALE_MAX_VALUES = 9  # keys 0-9 give a score directly; a wider scale is typed


def split_kind(kind: str | None) -> tuple[str, str]:
    """A kind choice as (task, problem).

    >>> split_kind("pair:regression")
    ('pair', 'regression')
    >>> split_kind("token")
    ('token', 'single')
    """
    task, _, problem = (kind or "sequence").partition(":")
    problem = problem or "single"
    if problem not in PROBLEM_NAMES:
        raise ValueError(f"unknown problem {problem!r}: one of {', '.join(PROBLEM_NAMES)}")
    if task == "token" and problem != "single":
        raise ValueError("words → tags takes one tag per word; multi-label and score need texts or pairs")
    return task, problem


def join_kind(task: str, problem: str | None = "single") -> str:
    """(task, problem) as the kind choice's value.

    >>> join_kind("sequence", "multilabel")
    'sequence:multilabel'
    """
    return task if (problem or "single") == "single" else f"{task}:{problem}"


def problem_of(obj) -> str:
    """A dataset's, predictor's or config's problem; "single" for those made before issue 24."""
    if isinstance(obj, dict):
        return obj.get("problem") or "single"
    return getattr(obj, "problem", None) or "single"


def label_list(stored) -> list[str] | None:
    """A stored multi-label value as a list of names (None: unlabeled); storage's own reading of it.

    >>> label_list('["politics", "sports"]'), label_list("[]"), label_list(None)
    (['politics', 'sports'], [], None)
    """
    try:
        return coerce_label("multilabel", stored)
    except ValueError:  # not a label list (a broken JSON list): shown as it is, not hidden as unlabeled
        return [str(stored)]


def score_value(stored) -> float | None:
    """A stored regression label as a number (None: unlabeled or not a finite number)."""
    try:
        return None if stored is None else parse_score(stored)
    except ValueError:
        return None


def fmt_score(value) -> str:
    """A score as people write it: 3 not 3.0, 3.25 not 3.2500001."""
    v = score_value(value)
    return "–" if v is None else f"{v:g}" if abs(v) < 1e6 else f"{v:.4g}"


def label_text(stored, problem: str) -> str:
    """A stored label as the card and tables show it."""
    if stored is None:
        return ""
    if problem == "multilabel":
        names = label_list(stored)
        return ", ".join(names) if names else "(none apply)"
    if problem == "regression":
        return fmt_score(stored)
    return str(stored)


def integer_scale(summary: dict | None) -> list[int] | None:
    """The scores keys can give directly: the labeled range when it is whole numbers within 0-9, at most 9 values.

    >>> integer_scale({"count": 4, "min": 1.0, "max": 5.0})
    [1, 2, 3, 4, 5]
    >>> integer_scale({"count": 4, "min": 0.0, "max": 1.5}) is None
    True
    """
    if not summary or not summary.get("count"):
        return None
    low, high = summary.get("min"), summary.get("max")
    if low is None or high is None or not (float(low).is_integer() and float(high).is_integer()):
        return None
    low, high = int(low), int(high)
    if low < 0 or high > 9 or not 1 < high - low + 1 <= SCALE_MAX_VALUES:
        return None
    return list(range(low, high + 1))


def metrics_problem(metrics: dict | None, problem: str | None = None) -> str:
    """The problem a metrics dict belongs to: as given, else told by its keys (old jobs have no problem field)."""
    if problem and problem != "single":
        return problem
    m = metrics or {}
    if "pearson" in m or "rmse" in m:
        return "regression"
    if "micro_f1" in m or "subset_accuracy" in m:
        return "multilabel"
    return "single"


# The figures shown per problem, best first (the first is the headline); names as the tables show them
METRIC_KEYS = {
    "multilabel": ("macro_f1", "micro_f1", "subset_accuracy"),
    "regression": ("pearson", "spearman", "rmse"),
}
METRIC_NAMES = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "subset_accuracy": "subset accuracy",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "rmse": "RMSE",
    "loss": "loss",
}


def metric_keys(metrics: dict | None, problem: str | None = None) -> tuple[str, ...] | None:
    """The keys to show for a multi-label or score model's metrics; None for single-label and token ones."""
    return METRIC_KEYS.get(metrics_problem(metrics, problem))


def scores_line(metrics: dict | None, problem: str | None = None, bold: bool = True) -> str:
    """``"macro-F1 **0.512**, micro-F1 **0.601**, subset accuracy **0.210**"``; "" for other problems."""
    keys = metric_keys(metrics, problem) or ()
    m = metrics or {}
    mark = "**" if bold else ""
    return ", ".join(f"{METRIC_NAMES[k]} {mark}{fmt_metric(m.get(k))}{mark}" for k in keys if k in m)


def fmt_metric(value, digits: int = 3) -> str:
    """A metric value; a correlation of constant predictions is undefined (None or NaN): "–"."""
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "–"
