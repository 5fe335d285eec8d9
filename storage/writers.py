"""Writers for CSV, JSONL and CoNLL, with spreadsheet formula neutralisation (documented in `storage.io`).

Label values per problem: a multi-label list is one CSV cell joined with "," (a JSON list when joining would not
read back the same, `storage.label_values.label_text`) and a JSON list in JSONL; a score is the number.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from storage.conll import DataError, write_conll
from storage.label_values import label_text

# OWASP's list: a spreadsheet runs a cell starting with one of these (TAB and CR as well: some programs
# strip them and then see the "=" behind)
FORMULA_STARTERS = "=+-@\t\r"
FORMULA_RE = re.compile(f"^'*[{re.escape(FORMULA_STARTERS)}]")
NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _neutralise(cell: str) -> str:
    """Prefix an apostrophe to a cell a spreadsheet would run as a formula (see module docstring)."""
    if FORMULA_RE.match(cell) and not NUMBER_RE.match(cell):
        return "'" + cell
    return cell


def _fields(task: str) -> list[str]:
    """Export field names per task; they are also what import guesses, so no mapping is needed."""
    return {
        "sequence": ["text", "label"],
        "pair": ["text", "text_pair", "label"],
        "token": ["tokens", "tags"],
    }[task]


def _label_cell(value) -> str:
    """A label value as CSV text: a name, a multi-label list, or a score (repr: exact, and reads back)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return label_text([str(v) for v in value])
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_examples(examples: list[dict], path: str | Path, fmt: str, task: str) -> int:
    """Write example dicts to CSV, JSONL or CoNLL.

    Args:
        examples: engine-format dicts; label/tags None for unlabeled examples; a label may be a name, a
            list of names (multi-label) or a float (regression).
        path: output file (overwritten).
        fmt: ``csv``, ``jsonl`` or ``conll`` (token tasks only).
        task: ``sequence``, ``pair`` or ``token``.

    Returns:
        The number of examples written. CSV cells are formula-neutralised (module docstring); token
        lists become JSON arrays in CSV cells; unlabeled examples get an empty label (CSV), null (JSONL)
        or a word-only sentence (CoNLL).

    >>> write_examples([{"text": "=1+1", "label": "a"}], "out.csv", "csv", "sequence")  # doctest: +SKIP
    1
    """
    path = Path(path)
    names = _fields(task)
    if fmt == "conll":
        if task != "token":
            raise DataError("CoNLL export is for token datasets", path.name)
        text = write_conll(examples, path.name)
        path.write_text(text + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            for ex in examples:
                fh.write(json.dumps({k: ex.get(k) for k in names}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            # "\r\n" (RFC 4180) also makes the writer quote cells holding a bare "\r", which "\n" would not
            writer = csv.writer(fh, lineterminator="\r\n")
            writer.writerow(names)
            for ex in examples:
                cells = [
                    _label_cell(ex.get(k))
                    if k == "label"
                    else json.dumps(ex.get(k), ensure_ascii=False)
                    if isinstance(ex.get(k), list)
                    else (ex.get(k) or "")
                    for k in names
                ]
                writer.writerow([_neutralise(c) for c in cells])
    else:
        raise ValueError(f"format must be csv, jsonl or conll, not {fmt!r}")
    return len(examples)
