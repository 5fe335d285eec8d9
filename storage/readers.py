"""Low-level readers: file type, encoding, size limits, and CSV/TSV/JSONL/Excel parsing into DataFrames.

The conventions (row numbering, quoting, encodings, formula neutralisation) are documented in `storage.io`,
the public face of reading and writing; this module is its parsing half.
"""

from __future__ import annotations

import csv
import io as _io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from storage.conll import DataError, Problem

UNNEUTRALISE_RE = r"^'(?='*[=+\-@])"  # see storage.io: one apostrophe before a formula starter is ours

MAX_FILE_BYTES = 512 * 1024 * 1024  # beyond this pandas needs several GB of RAM; ask for a split instead
MAX_ROWS = 1_000_000  # a labeling UI gains nothing from more; keeps one import transaction bounded
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".xlsx": "excel",
    ".xls": "excel",
    ".conll": "conll",
    ".conllu": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".txt": "conll",
}


@dataclass
class Table:
    """A file read into a DataFrame of strings (lists for JSONL token columns), with how it was read."""

    df: pd.DataFrame
    file: str
    format: str
    encoding: str | None
    latin1_fallback: bool = False


def detect_format(path: str | Path, task: str | None = None) -> str:
    """The file format from the extension: csv, tsv, jsonl, excel or conll."""
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise DataError(f"unknown file type {ext!r}; use one of {', '.join(sorted(EXTENSIONS))}", str(path))
    fmt = EXTENSIONS[ext]
    if fmt == "conll" and ext == ".txt" and task != "token":
        return "tsv"  # a .txt of sentences is far more often tab-separated than CoNLL
    return fmt


def decode(data: bytes, file: str) -> tuple[str, str, bool]:
    """Decode bytes: BOMs first, then UTF-8, else Latin-1 (reported). Returns text, encoding, fallback flag."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig", False
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16", False
    try:
        return data.decode("utf-8"), "utf-8", False
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1", True  # every byte is valid Latin-1, so this cannot fail


def _human(n: int) -> str:
    """A byte count for people: 91 bytes, 2.0 KB, 512 MB."""
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KB" if n < 2**20 else f"{n / 2**20:.0f} MB"


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """File bytes, refusing files over the size limit."""
    if not path.exists():
        raise DataError("file not found", str(path.name))
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"file is {_human(size)}, over the {_human(max_bytes)} limit; split it into smaller files",
            path.name,
        )
    if size == 0:
        raise DataError("file is empty", path.name)
    return path.read_bytes()


def _parse_delimited(text: str, file: str, fmt: str, max_rows: int) -> pd.DataFrame:
    """pandas read_csv as strings: no NA guessing ("NA" and "None" are text), TSV quotes literal.

    The header is read as a data row (header=None) so that a row with more fields than the header is an
    error; with a header, pandas would silently turn the first column into the index. A row with fewer
    fields reads as empty trailing cells.
    """
    kwargs = {"sep": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    try:
        raw = pd.read_csv(
            _io.StringIO(text),
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            nrows=max_rows + 2,  # header + one row over the limit, so the limit check can fire
            **kwargs,
        )
    except pd.errors.EmptyDataError as err:
        raise DataError("file is empty", file) from err
    except pd.errors.ParserError as err:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m:
            expected, line, saw = m.groups()
            msg = f"{saw} fields where the header has {expected}"
            raise DataError(Problem(file, msg, int(line) - 1)) from err
        raise DataError(f"cannot parse as {fmt.upper()}: {err}", file) from err
    raw = raw.fillna("")
    names = [str(v) if str(v).strip() else f"column {i + 1}" for i, v in enumerate(raw.iloc[0].tolist())]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(Problem(file, f"the header repeats column names {repeated}; rename them"))
    df = raw.iloc[1:].reset_index(drop=True)
    df.columns = names
    if fmt == "csv":
        for col in df.columns:
            df[col] = df[col].str.replace(UNNEUTRALISE_RE, "", regex=True)
    return df


def _parse_jsonl(text: str, file: str, max_rows: int) -> pd.DataFrame:
    """One JSON object per line; blank lines are skipped but still counted."""
    records: list[dict] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(Problem(file, f"invalid JSON: {err.msg}", number)) from err
        if not isinstance(obj, dict):
            raise DataError(Problem(file, "each line must be a JSON object", number))
        obj["__row__"] = number
        records.append(obj)
        if len(records) > max_rows:
            break
    return pd.DataFrame.from_records(records)


def read_table(
    path: str | Path, task: str | None = None, max_bytes: int = MAX_FILE_BYTES, max_rows: int = MAX_ROWS
) -> Table:
    """Read a CSV, TSV, JSONL or Excel file into a DataFrame of strings, checking size and row limits.

    Args:
        path: the file; its extension picks the format.
        task: the task kind, only to tell a CoNLL ``.txt`` from a TSV one.
        max_bytes: refuse larger files.
        max_rows: refuse files with more data rows.

    Returns:
        A `Table`; JSONL rows keep their line number in a ``__row__`` column.

    >>> read_table("train.tsv").df.columns.tolist()  # doctest: +SKIP
    ['sentence', 'label']
    """
    path = Path(path)
    fmt = detect_format(path, task)
    data = read_bytes(path, max_bytes)
    encoding, fallback = None, False
    if fmt == "excel":
        df = pd.read_excel(
            path, dtype=str, keep_default_na=False, na_filter=False, nrows=max_rows + 1
        ).fillna("")
    elif fmt == "conll":
        raise DataError("CoNLL files hold token examples; use load_examples(..., task='token')", path.name)
    else:
        text, encoding, fallback = decode(data, path.name)
        if not text.strip():
            raise DataError("file is empty", path.name)
        df = (
            _parse_jsonl(text, path.name, max_rows)
            if fmt == "jsonl"
            else _parse_delimited(text, path.name, fmt, max_rows)
        )
    if len(df) > max_rows:
        raise DataError(f"more than {max_rows:,} rows; split the file", path.name)
    if len(df) == 0:
        raise DataError("file has a header but no data rows", path.name)
    return Table(df, path.name, fmt, encoding, fallback)
