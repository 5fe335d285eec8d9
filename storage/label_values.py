"""A label value per problem, in one place: validate it, store it as text, give it back to the engine.

The ``examples.label`` column holds text for every problem (NULL: unlabeled):

* ``single``: the label's name.
* ``multilabel``: a JSON list of names in label-set order, ``["politics", "sports"]``; ``[]`` is labeled
  with no label applying, which is not the same as unlabeled.
* ``regression``: the number as ``repr(float(v))``, e.g. ``"3.5"``.

List labels in a single-label file (`describe_list_labels`): a cell reads as a list when it is a JSON list,
or when it splits on the separator into two or more non-empty parts and at least one part is also found in
a *different* cell (alone or in another list). So ``sports,politics`` beside ``sports`` is a list, and so
are ``a,b`` beside ``b,c``; ``Washington, D.C.``, only ever seen whole, is one label with a comma in it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

from storage.models import PROBLEMS, TASKS

PROBLEM_TASKS = {"single": TASKS, "multilabel": ("sequence", "pair"), "regression": ("sequence", "pair")}
CLI_TASKS = (*TASKS, "multilabel", "regression")  # the task names the command lines take
LIST_EXAMPLE_ROWS = 3  # rows named in the list-label description; the rest are counted


def check_problem(task: str, problem: str) -> None:
    """ValueError unless `problem` is known and fits the input shape `task` (token is always single)."""
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {PROBLEMS}, not {problem!r}")
    if task not in PROBLEM_TASKS[problem]:
        raise ValueError(f"{problem} datasets take sequence or pair inputs, not {task}")


def task_and_problem(name: str, has_pair: bool) -> tuple[str, str]:
    """A command-line task name -> (input shape, problem); multilabel/regression are pair inputs with a pair column.

    >>> task_and_problem("regression", has_pair=True)
    ('pair', 'regression')
    """
    if name in TASKS:
        return name, "single"
    if name in ("multilabel", "regression"):
        return ("pair" if has_pair else "sequence"), name
    raise ValueError(f"task must be one of {CLI_TASKS}, not {name!r}")


def split_labels(text: str, sep: str = ",") -> list[str]:
    """A multi-label cell written as text -> its names: a JSON list, else parts split on `sep` (stripped,
    empties dropped). ValueError for a JSON list that does not parse or holds other than text."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text, parse_int=str, parse_float=str)
        except (json.JSONDecodeError, RecursionError, ValueError) as err:
            raise ValueError("not a valid JSON list of labels") from err
        return list_of_names(value)
    return [part.strip() for part in text.split(sep) if part.strip()]


def list_of_names(value) -> list[str]:
    """A parsed JSON list -> names; ValueError naming the first item that is not a label name."""
    if not isinstance(value, list):
        raise ValueError("not a JSON list of labels")
    out = []
    for i, item in enumerate(value, 1):
        if isinstance(item, (bool, list, dict)) or item is None:
            raise ValueError(f"item {i} of the label list is not a label name")
        name = str(item).strip()
        if not name:
            raise ValueError(f"item {i} of the label list is empty")
        out.append(name)
    return out


def parse_score(value) -> float:
    """A regression label -> a finite float; ValueError saying why not."""
    if isinstance(value, bool):
        raise ValueError(f"label {value!r} is not a number")
    try:
        score = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"label {value!r} is not a number") from None
    if not math.isfinite(score):
        raise ValueError(f"label {value!r} is not a finite number")
    return score


def spelling_variants(labels: list[str]) -> list[list[str]]:
    """Groups of label names that differ only in case or surrounding spaces, each sorted: a spreadsheet's
    "Positive", "positive" and "positive " are three classes (a name is what the file says, and comes back out
    the same), which the import reports rather than merges.

    >>> spelling_variants(["Positive", "negative", "positive ", "neutral"])
    [['Positive', 'positive ']]
    """
    groups: dict[str, set[str]] = {}
    for name in labels:
        groups.setdefault(name.strip().casefold(), set()).add(name)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def coerce_label(problem: str, value):
    """What a caller gives (a list, a numeric string, the stored text) -> the engine's value for `problem`.

    Multi-label also takes the stored JSON text or a ","-separated string; regression a number or its text.
    """
    if value is None:
        return None
    if problem == "multilabel":
        if isinstance(value, str):
            return split_labels(value)
        if isinstance(value, (list, tuple)):
            return list_of_names(list(value))
        raise ValueError(f"a multi-label label is a list of names, not {value!r}")
    if problem == "regression":
        return parse_score(value)
    if isinstance(value, (list, tuple)):
        raise ValueError(f"label {list(value)!r} is a list of labels: import the file as multi-label")
    if not isinstance(value, str):
        raise ValueError(f"a label is one name, not {value!r}")
    return value


def encode_label(
    problem: str, value, label_set: Iterable[str] | Mapping[str, int] | None = None
) -> str | None:
    """An engine value -> the text stored in ``examples.label``, checked against the label set.

    Args:
        problem: ``single``, ``multilabel`` or ``regression``.
        value: a name, a list of names, a number (or what `coerce_label` takes); None: unlabeled.
        label_set: the dataset's names in order, or ``{name: position}`` (what a bulk insert builds once);
            None: any name, kept in the order given.

    Returns:
        The stored text, or None.

    >>> encode_label("multilabel", ["sports", "politics"], ["politics", "sports"])
    '["politics", "sports"]'
    >>> encode_label("regression", "3")
    '3.0'
    """
    value = coerce_label(problem, value)
    if value is None:
        return None
    if problem == "regression":
        return repr(value)
    if label_set is None:
        positions = None
    elif isinstance(label_set, Mapping):
        positions = label_set
    else:
        positions = {name: i for i, name in enumerate(label_set)}
    names = [value] if problem == "single" else value
    unknown = next((n for n in names if positions is not None and n not in positions), None)
    if unknown is not None:
        raise ValueError(f"label {unknown!r} is not in the label set {sorted(positions or [])}")
    if problem == "single":
        return value
    ordered = list(dict.fromkeys(value))
    if positions is not None:
        ordered.sort(key=positions.__getitem__)
    return json.dumps(ordered, ensure_ascii=False)


def decode_label(problem: str, stored: str | None):
    """Stored text -> the engine's value: the name, a list of names, or a float (None: unlabeled)."""
    if stored is None:
        return None
    if problem == "multilabel":
        return json.loads(stored)
    if problem == "regression":
        return float(stored)
    return stored


def label_text(names: list[str], sep: str = ",") -> str:
    """A multi-label value for a CSV cell: joined with `sep`, or a JSON list when joining would not read back
    the same (no labels, a name holding the separator or edge spaces, a text that starts like a JSON list)."""
    joined = sep.join(names)
    if not names or any(sep in n or n != n.strip() for n in names) or joined.lstrip().startswith("["):
        return json.dumps(names, ensure_ascii=False)
    return joined


def _rows_text(rows: list[int]) -> str:
    """'row 2' / 'rows 2, 5, 9' / 'rows 2, 5, 9 (41 in all)'."""
    shown = ", ".join(str(r) for r in rows[:LIST_EXAMPLE_ROWS])
    if len(rows) == 1:
        return f"row {shown}"
    return f"rows {shown}" + (f" ({len(rows):,} in all)" if len(rows) > LIST_EXAMPLE_ROWS else "")


def describe_list_labels(cells: list[tuple[int, object]], sep: str = ",") -> str | None:
    """Which rows of a single-label column hold lists (module docstring), in one line; None when none do.

    Args:
        cells: (row, label cell) pairs; a cell is a string or a parsed JSON list.
        sep: the separator a multi-label import would split on.

    >>> describe_list_labels([(1, "sports"), (2, "sports,politics"), (3, "news")])
    "row 2 holds a list like 'sports,politics'"
    """
    parts_of: dict[str, list[str]] = {}
    for _, cell in cells:
        if isinstance(cell, str) and cell not in parts_of:
            parts_of[cell] = [p.strip() for p in cell.split(sep) if p.strip()]
    cells_with: dict[str, int] = {}  # part -> how many distinct cells hold it
    for parts in parts_of.values():
        for part in set(parts):
            cells_with[part] = cells_with.get(part, 0) + 1
    rows, first = [], None
    for row, cell in cells:
        if isinstance(cell, list):
            listed = True
        elif isinstance(cell, str):
            parts = parts_of[cell]
            listed = len(parts) >= 2 and any(cells_with[p] > 1 for p in parts)
        else:
            listed = False
        if listed:
            rows.append(row)
            if first is None:
                first = cell if isinstance(cell, str) else json.dumps(cell, ensure_ascii=False)
    if not rows:
        return None
    verb = "holds a list" if len(rows) == 1 else "hold lists"
    return f"{_rows_text(rows)} {verb} like {first!r}"
