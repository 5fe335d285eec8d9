"""Cell checks and duplicate reports for `storage.io`: what a cell must be to become an example, said per row.

A cell becomes text only when it is text: JSON numbers keep their spelling, but JSON objects, lists and
booleans are refused rather than stored as Python reprs (``['x', 'y']``, ``True``); texts and tokens must
show at least one visible character (not only NULs, zero-width or whitespace characters).

Label cells per problem: one name (`label_cell`); a list of names, as a JSON list or split on a separator
(`names_cell`); a finite number (`score_cell`).
"""

from __future__ import annotations

import json

from storage.conll import NUL, NUL_NOTE, Problem, invisible_note, visible
from storage.label_values import list_of_names, parse_score, split_labels

MAX_LABEL_CHARS = 200  # the label columns are String(200); a longer "label" is almost surely a text column
LIST_LABEL_NOTE = (
    "a list of labels: import the file as multi-label (task multilabel), or give each row one label"
)
MAX_DUPLICATE_GROUPS = 10  # duplicated texts listed one line each; the rest are counted
MAX_DUPLICATE_ROWS = 10  # row numbers listed per duplicated text
SNIPPET_CHARS = 60


def _at(where: tuple[str, int, str | None], message: str) -> Problem:
    file, row, column = where
    return Problem(file, message, row, column)


def _missing(value) -> bool:
    """None, NaN (a JSONL key absent from this line) or the empty string."""
    return value is None or value == "" or (isinstance(value, float) and value != value)


def _not_text(value, role: str) -> str | None:
    """Why a parsed cell is not text (None when it is): JSON objects, lists and booleans."""
    if isinstance(value, bool):
        word = "true" if value else "false"
        return f'a JSON {word}, not text; write it in quotes ("{word}") if it is meant as text'
    if isinstance(value, list):
        if role == "label":
            return LIST_LABEL_NOTE
        return "a JSON list, not text"
    if isinstance(value, dict):
        return "a JSON object, not text"
    return None


def _scalar(value, role: str, where: tuple[str, int, str | None], problems: list[Problem]) -> str | None:
    """A cell as a string ("" when missing), or None after recording why it is not text."""
    if type(value) is str:  # nearly every cell: skip the other checks
        if NUL in value:
            problems.append(_at(where, f"{role} {NUL_NOTE}"))
            return None
        return value
    if _missing(value):
        return ""
    why = _not_text(value, role)
    if why:
        problems.append(_at(where, why))
        return None
    if isinstance(value, float):  # only Excel can still give one; 1.0 there is the integer 1
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


def text_cell(value, what: str, where: tuple[str, int, str | None], problems: list[Problem]) -> str:
    """A text (or text-pair) cell: text that shows something, else one problem for this row and column."""
    text = _scalar(value, what, where, problems)
    if text is not None and not visible(text):
        problems.append(_at(where, f"{what} {invisible_note(text)}"))
    return text or ""


def label_cell(value, where: tuple[str, int, str | None], problems: list[Problem]) -> str | None:
    """A label, or None when the cell is blank (only whitespace counts as blank: the row is unlabeled)."""
    label = _scalar(value, "label", where, problems)
    if label is None or not label.strip():
        return None
    if not visible(label):
        problems.append(_at(where, f"label {invisible_note(label)}"))
    elif len(label) > MAX_LABEL_CHARS:
        message = f"label is {len(label):,} characters; a label has at most {MAX_LABEL_CHARS}"
        problems.append(_at(where, message))
    return label


def _name_problem(name: str, where: tuple[str, int, str | None], problems: list[Problem]) -> bool:
    """Record why a label name cannot be one (True when it cannot)."""
    if NUL in name:
        problems.append(_at(where, f"label {NUL_NOTE}"))
    elif not visible(name):
        problems.append(_at(where, f"label {invisible_note(name)}"))
    elif len(name) > MAX_LABEL_CHARS:
        message = f"label is {len(name):,} characters; a label has at most {MAX_LABEL_CHARS}"
        problems.append(_at(where, message))
    else:
        return False
    return True


def single_list_cell(value) -> list[str] | None:
    """In a single-label column: the names of a cell that is a JSON list (parsed, or text that parses as one),
    else None -- such a cell is what the list-label report names, not a label."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return split_labels(value)
        except ValueError:
            return None  # text such as "[draft]" that is no JSON list stays a label
    if isinstance(value, list):
        try:
            return list_of_names(value)
        except ValueError:
            return None
    return None


def names_cell(
    value, where: tuple[str, int, str | None], problems: list[Problem], sep: str = ","
) -> list[str] | None:
    """A multi-label cell -> its names (a JSON list, or text split on `sep`); blank -> None (unlabeled).

    ``[]`` is labeled with no label applying; text of separators only is refused (blank or ``[]`` say which).
    """
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (bool, dict)):
        problems.append(_at(where, _not_text(value, "labels") or "not a label list"))
        return None
    try:
        if isinstance(value, list):
            names = list_of_names(value)
        else:
            if isinstance(value, float):  # Excel: 1.0 there is the integer 1
                value = str(int(value)) if value.is_integer() else str(value)
            names = split_labels(str(value), sep)
            if not names and not str(value).lstrip().startswith("["):
                problems.append(
                    _at(where, f"no label between the separators {sep!r}: leave the cell blank (unlabeled) "
                        "or write [] (no label applies)")
                )  # fmt: skip
                return None
    except ValueError as err:
        problems.append(_at(where, str(err)))
        return None
    if any(_name_problem(name, where, problems) for name in names):
        return None
    return list(dict.fromkeys(names))  # a label named twice applies once


def score_cell(value, where: tuple[str, int, str | None], problems: list[Problem]) -> float | None:
    """A regression cell -> a finite float; blank -> None (unlabeled); anything else is a problem."""
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (list, dict)):
        problems.append(_at(where, f"{_not_text(value, 'score')}; a score is one number"))
        return None
    try:
        return parse_score(value)
    except ValueError as err:
        problems.append(_at(where, str(err)))
        return None


def list_cell(value, where: tuple[str, int, str | None], problems: list[Problem]) -> list[str] | None:
    """Token/tag cell -> list: JSON list, JSON-array string, or whitespace-separated string; "" -> None."""
    if _missing(value):
        return None
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:  # numbers as written, as in JSONL files
            value = json.loads(value, parse_int=str, parse_float=str)
        except (json.JSONDecodeError, RecursionError, ValueError):
            problems.append(_at(where, "not a valid JSON list"))
            return None
    if isinstance(value, list):
        bad = next((i for i, v in enumerate(value) if _missing(v) or _not_text(v, "token")), None)
        if bad is not None:
            what = "empty" if _missing(value[bad]) else _not_text(value[bad], "token")
            problems.append(_at(where, f"item {bad + 1} of the list is {what}"))
            return None
        items = [str(v) for v in value]
    else:
        why = _not_text(value, "token")
        if why:
            problems.append(_at(where, why))
            return None
        items = str(value).split()
    if any(NUL in item for item in items):
        problems.append(_at(where, f"a token {NUL_NOTE}"))
        return None
    return items


def _snippet(key: tuple) -> str:
    """A duplicated input, short enough for one line."""
    text = " ".join(key[0]) if isinstance(key[0], tuple) else " | ".join(k for k in key if k is not None)
    text = " ".join(text.split())
    return repr(text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…")


def _rows(numbers: list[int]) -> str:
    """'1, 4, 9' or '1, 4, ... (25 in all)'."""
    shown = ", ".join(str(n) for n in numbers[:MAX_DUPLICATE_ROWS])
    return shown if len(numbers) <= MAX_DUPLICATE_ROWS else f"{shown}, ... ({len(numbers):,} in all)"


def drop_duplicates(
    examples: list[dict], fmt: str, file: str, duplicates: str, warnings: list[str]
) -> list[dict]:
    """Report inputs that repeat, one line per repeated input with its rows; skip the repeats when asked."""
    unit = "lines" if fmt == "conll" else "rows"
    first: dict[tuple, int] = {}
    repeats: dict[tuple, list[int]] = {}  # only inputs seen twice or more: most files have few
    kept = []
    for ex in examples:
        key = (tuple(ex["tokens"]),) if "tokens" in ex else (ex["text"], ex.get("text_pair"))
        if key in first:
            repeats.setdefault(key, [first[key]]).append(ex["source_row"])
            if duplicates == "skip":
                continue
        else:
            first[key] = ex["source_row"]
        kept.append(ex)
    repeated = sorted(repeats.items(), key=lambda item: item[1][0])  # in the order the inputs first appear
    action = "all kept" if duplicates == "keep" else "the first kept, the others skipped"
    for key, rows in repeated[:MAX_DUPLICATE_GROUPS]:
        warnings.append(f"{file}: duplicate {_snippet(key)} on {unit} {_rows(rows)} ({action})")
    if len(repeated) > MAX_DUPLICATE_GROUPS:
        extra = sum(len(rows) - 1 for _, rows in repeated[MAX_DUPLICATE_GROUPS:])
        what = "sentences" if fmt == "conll" else "texts"
        warnings.append(
            f"{file}: ... and {len(repeated) - MAX_DUPLICATE_GROUPS:,} more duplicated {what} "
            f"({extra:,} repeated {unit}, {action})"
        )
    return kept
