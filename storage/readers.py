"""Low-level readers: file type, size limits, and CSV/TSV/JSONL/Excel parsing into DataFrames.

The conventions (row numbering, quoting, encodings, formula neutralisation) are documented in `storage.io`,
the public face of reading and writing; this module is its parsing half.
"""

from __future__ import annotations

import csv
import importlib.util
import io as _io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from storage.conll import DataError, Problem
from storage.sniff import FALLBACK_NAMES, decode, sniff_delimiter
from storage.writers import FORMULA_STARTERS

# see storage.io: one apostrophe before (apostrophes then) a formula starter was put there by an export
_unneutralise = re.compile(f"^'(?='*[{re.escape(FORMULA_STARTERS)}])").sub

MAX_FILE_BYTES = 512 * 1024 * 1024  # beyond this pandas needs several GB of RAM; ask for a split instead
MAX_ROWS = 1_000_000  # a labeling UI gains nothing from more; keeps one import transaction bounded
# A labeling file needs two or three columns; 1,000 leaves room for wide exports that carry a text column,
# and keeps the preview and the column-mapping lists usable
MAX_COLUMNS = 1_000
ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip archive
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (and password-protected .xlsx) is an OLE file
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
    encoding: str | None  # the codec the text was decoded with; None for Excel (a binary format)
    latin1_fallback: bool = False  # not UTF-8: read as cp1252, or Latin-1 where cp1252 has no character
    delimiter: str | None = None  # the field separator (sniffed for .csv); None for JSONL and Excel
    notes: list[str] = field(default_factory=list)  # what the user should know about how it was read


def detect_format(path: str | Path, task: str | None = None) -> str:
    """The file format from the extension: csv, tsv, jsonl, excel or conll."""
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise DataError(f"unknown file type {ext!r}; use one of {', '.join(sorted(EXTENSIONS))}", str(path))
    fmt = EXTENSIONS[ext]
    if fmt == "conll" and ext == ".txt" and task != "token":
        return "tsv"  # a .txt of sentences is far more often tab-separated than CoNLL
    return fmt


def _human(n: int) -> str:
    """A byte count for people: 91 bytes, 2.0 KB, 512 MB."""
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KB" if n < 2**20 else f"{n / 2**20:.0f} MB"


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """File bytes, refusing files over the size limit."""
    if not path.exists():
        raise DataError("file not found", str(path.name))
    if not path.is_file():
        raise DataError("not a file (a folder or a device?)", path.name)
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"file is {_human(size)}, over the {_human(max_bytes)} limit; split it into smaller files",
            path.name,
        )
    if size == 0:
        raise DataError("file is empty", path.name)
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", path.name) from err


def _parse_error(err: Exception, file: str, fmt: str) -> DataError:
    """pandas' tokenizer message -> a DataError naming the row where pandas names one."""
    text = str(err)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        expected, line, saw = m.groups()
        return DataError(Problem(file, f"{saw} fields where the header has {expected}", int(line) - 1))
    m = re.search(r"EOF inside string starting at row (\d+)", text)
    if m:  # pandas counts records from 0, the header being record 0: so its number is our data row
        msg = 'a quoted cell never ends (a " without its closing pair); the rest of the file is inside it'
        return DataError(Problem(file, msg, int(m.group(1)) or None))
    return DataError(f"cannot parse as {fmt.upper()}: {text.strip() or type(err).__name__}", file)


def _check_width(buf: _io.StringIO, file: str, max_columns: int, delimiter: str, quoting: int) -> None:
    """Refuse a header wider than the limit before pandas builds one object per column (~0.1 ms each)."""
    try:
        header = next(csv.reader(buf, delimiter=delimiter, quoting=quoting), [])
    except csv.Error:
        header = []  # a header csv cannot split (a cell over its size limit): pandas reports it
    finally:
        buf.seek(0)
    if len(header) > max_columns:
        raise DataError(
            f"{len(header):,} columns, over the limit of {max_columns:,}; keep the text and label columns",
            file,
        )


HEADERLESS_COLUMN = "text"
COLUMN_NAME_MAX_WORDS = 3  # "text", "review_text", "Review Text", "tweet text en"; a sentence has more


def headerless(grid: np.ndarray) -> bool:
    """Whether a one-column file starts with a text, not a column name: a file of one sentence a line (a .txt to
    label) would otherwise lose its first sentence to the header. A name is at most COLUMN_NAME_MAX_WORDS words
    and does not end a sentence; anything else on the first line is read as the first text.

    >>> headerless(np.array([["I loved it."], ["Awful"]], dtype=object)), headerless(np.array([["text"], ["Awful"]]))
    (True, False)
    """
    if grid.shape[1] != 1 or len(grid) < 2 or not isinstance(grid[0][0], str):
        return False
    first = grid[0][0].strip()
    return len(first.split()) > COLUMN_NAME_MAX_WORDS or first.endswith((".", "!", "?"))


def headerless_note(file: str) -> str:
    return (
        f"{file}: one column whose first line reads as a text, not a column name: read without a header, every "
        f"line a text (column '{HEADERLESS_COLUMN}')"
    )


def _parse_delimited(
    text: str, file: str, fmt: str, max_rows: int, max_columns: int, delimiter: str
) -> tuple[pd.DataFrame, bool]:
    """pandas read_csv as strings: no NA guessing ("NA" and "None" are text), TSV quotes literal; and whether the
    file was read without a header (`headerless`).

    The header is read as a data row (header=None) so that a row with more fields than the header is an
    error; with a header, pandas would silently turn the first column into the index. A row with fewer
    fields reads as empty trailing cells. Every step after the parse works on the whole grid at once, not
    column by column: a 20,000-column file costs what 20,000 cells cost.
    """
    kwargs = {"sep": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {"sep": delimiter}
    buf = _io.StringIO(text, newline="")
    _check_width(buf, file, max_columns, delimiter, kwargs.get("quoting", csv.QUOTE_MINIMAL))
    try:
        raw = pd.read_csv(
            buf,
            header=None,
            dtype=object,  # Python strings in one block: pandas' str dtype makes an Arrow array per column
            keep_default_na=False,
            na_filter=False,
            nrows=max_rows + 2,  # header + one row over the limit, so the limit check can fire
            **kwargs,
        )
    except pd.errors.EmptyDataError as err:
        raise DataError("file is empty", file) from err
    except Exception as err:  # the tokenizer on user bytes: whatever it raises, the file is at fault
        raise _parse_error(err, file, fmt) from err
    grid = raw.to_numpy(dtype=object)
    no_header = headerless(grid)
    if no_header:
        names, body = [HEADERLESS_COLUMN], grid
    else:
        names = [v if isinstance(v, str) and v.strip() else f"column {i + 1}" for i, v in enumerate(grid[0])]
        repeated = sorted(n for n, c in Counter(names).items() if c > 1)
        if repeated:
            raise DataError(Problem(file, f"the header repeats column names {repeated}; rename them"))
        body = grid[1:]
    if fmt == "csv":  # see storage.io: one apostrophe before a formula starter was put there by an export
        flat = [
            _unneutralise("", v, count=1) if isinstance(v, str) and v[:1] == "'" else v for v in body.flat
        ]
        body = np.array(flat, dtype=object).reshape(body.shape)
    return pd.DataFrame(body, columns=names, dtype=object), no_header


def _no_constant(name: str) -> None:
    """json.loads hook: NaN and Infinity are Python's extension, not JSON, and no label or text."""
    raise ValueError(f"{name} is not a JSON value; quote it if it is text")


def _loads(text: str):
    """JSON with numbers kept as written ("1.0" stays 1.0: a label is text, not a float to reformat)."""
    return json.loads(text, parse_int=str, parse_float=str, parse_constant=_no_constant)


def _surrogate(value) -> str | None:
    """The escape of the first lone UTF-16 surrogate anywhere in a parsed JSON value (keys too), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"\\u{ord(value[err.start]):04x}"
        return None
    items = (
        [*value.keys(), *value.values()]
        if isinstance(value, dict)
        else value
        if isinstance(value, list)
        else []
    )
    return next((found for v in items if (found := _surrogate(v))), None)


def _unpaired_surrogate(obj: dict) -> tuple[str, str] | None:
    """(key, escape) of the first value holding a lone surrogate, which no database or web page can carry
    (even a column left unmapped is shown in the preview)."""
    for key, value in obj.items():
        found = _surrogate(key) or _surrogate(value)
        if found:
            return key, found
    return None


def _record(obj, file: str, row: int, line: str) -> dict:
    """Check one parsed JSONL value: an object, without lone surrogates (only \\u escapes can make them)."""
    if not isinstance(obj, dict):
        raise DataError(Problem(file, f"each line must be a JSON object, not {type(obj).__name__}", row))
    if "\\u" in line and (bad := _unpaired_surrogate(obj)):
        msg = f"{bad[1]} is half of a UTF-16 surrogate pair, not a character; fix the escape"
        column = bad[0].encode("utf-8", "backslashreplace").decode("utf-8")  # the key itself may hold it
        raise DataError(Problem(file, msg, row, column))
    return obj


def _parse_jsonl(text: str, file: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    """One JSON object per line (CR, LF or CRLF; raw CRs cannot occur inside JSON strings); blank lines are
    skipped but still counted. A ``.json`` file holding one array of objects is read too, row N being item N.
    """
    records: list[dict] = []
    if text.lstrip().startswith("[") and file.lower().endswith(".json"):
        try:
            items = _loads(text)
        except json.JSONDecodeError as err:
            raise DataError(Problem(file, f"invalid JSON: {err.msg}", err.lineno, None, True)) from err
        except RecursionError as err:
            raise DataError("invalid JSON: nested too deeply", file) from err
        except ValueError as err:
            raise DataError(f"invalid JSON: {err}", file) from err
        lines = [(n, item, text) for n, item in enumerate(items, start=1)]
    else:
        lines = enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1)
        lines = ((n, None, line) for n, line in lines if line.strip())
    for number, obj, line in lines:
        if obj is None:
            try:
                obj = _loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    Problem(file, f"invalid JSON: {err.msg} (column {err.colno})", number)
                ) from err
            except RecursionError as err:
                raise DataError(Problem(file, "invalid JSON: nested too deeply", number)) from err
            except ValueError as err:
                raise DataError(Problem(file, f"invalid JSON: {err}", number)) from err
        records.append({**_record(obj, file, number, line), "__row__": number})
        if len(records) > max_rows:
            break
    columns = list(dict.fromkeys(k for r in records for k in r))
    if len(columns) > max_columns:
        raise DataError(f"{len(columns):,} keys, over the limit of {max_columns:,} columns", file)
    return pd.DataFrame(records, columns=columns, dtype=object)


def _read_excel(data: bytes, file: str, max_rows: int, max_bytes: int) -> tuple[pd.DataFrame, list[str]]:
    """The first sheet of a workbook, strings only; checks the bytes first so a fake or damaged file gets a
    message that says what it is, not a parser's exception."""
    if data.startswith(OLE_MAGIC):
        engine = "calamine"
        if importlib.util.find_spec("python_calamine") is None:
            raise DataError(
                "an Excel 97-2003 (.xls) or password-protected workbook, which this install cannot read; "
                "save it as .xlsx (without a password) or as CSV",
                file,
            )
    elif data.startswith(ZIP_MAGIC):
        engine = "openpyxl"
        try:
            with zipfile.ZipFile(_io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                unpacked = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, ValueError, OSError) as err:
            raise DataError(f"not a valid .xlsx: the zip archive is damaged ({err})", file) from err
        if "xl/workbook.xml" not in names:
            raise DataError("a zip archive, but not an Excel workbook (it has no xl/workbook.xml)", file)
        if unpacked > max_bytes:  # a zip bomb, or a sheet pandas could not hold in memory anyway
            raise DataError(
                f"the workbook unpacks to {_human(unpacked)}, over the {_human(max_bytes)} limit", file
            )
    else:
        looks_like_text = b"\x00" not in data[:1024] and data[:1024].isascii()
        hint = "; it looks like text: give it a .csv, .tsv or .jsonl extension" if looks_like_text else ""
        raise DataError(f"not an Excel workbook (an .xlsx file is a zip archive){hint}", file)
    try:
        book = pd.ExcelFile(_io.BytesIO(data), engine=engine)
        sheets = book.sheet_names
        df = book.parse(sheets[0], dtype=str, keep_default_na=False, na_filter=False, nrows=max_rows + 1)
    except Exception as err:  # the workbook parser on user bytes: whatever it raises, the file is at fault
        raise DataError(f"cannot read the workbook ({type(err).__name__}: {err})", file) from err
    notes = [f"{file}: read the first sheet {sheets[0]!r} of {len(sheets)}"] if len(sheets) > 1 else []
    df.columns = [str(c) for c in df.columns]
    df = df.astype(object).fillna("")
    if headerless(np.array([list(df.columns), *df.to_numpy()[:1]], dtype=object)):
        df = pd.DataFrame({HEADERLESS_COLUMN: [df.columns[0], *df.iloc[:, 0]]}, dtype=object)
        notes.append(headerless_note(file))
    return df, notes


def read_table(
    path: str | Path,
    task: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    max_rows: int = MAX_ROWS,
    max_columns: int = MAX_COLUMNS,
) -> Table:
    """Read a CSV, TSV, JSONL or Excel file into a DataFrame of strings, checking size and row limits.

    Args:
        path: the file; its extension picks the format.
        task: the task kind, only to tell a CoNLL ``.txt`` from a TSV one.
        max_bytes: refuse larger files.
        max_rows: refuse files with more data rows.
        max_columns: refuse wider files.

    Returns:
        A `Table` with the delimiter and encoding used; JSONL rows keep their line number in ``__row__``.

    >>> read_table("train.csv").delimiter  # doctest: +SKIP
    ';'
    """
    path = Path(path)
    fmt = detect_format(path, task)
    data = read_bytes(path, max_bytes)
    encoding, fallback, delimiter, notes = None, False, None, []
    if fmt == "excel":
        df, notes = _read_excel(data, path.name, max_rows, max_bytes)
    elif fmt == "conll":
        raise DataError("CoNLL files hold token examples; use load_examples(..., task='token')", path.name)
    else:
        text, encoding, fallback = decode(data, path.name)
        if not text.strip():
            raise DataError("file is empty", path.name)
        if fmt == "jsonl":
            df = _parse_jsonl(text, path.name, max_rows, max_columns)
        else:
            delimiter = "\t" if fmt == "tsv" else sniff_delimiter(text)
            df, no_header = _parse_delimited(text, path.name, fmt, max_rows, max_columns, delimiter)
            if no_header:
                notes.append(headerless_note(path.name))
    if len(df) > max_rows:
        raise DataError(f"more than {max_rows:,} rows; split the file", path.name)
    if len(df) == 0:
        raise DataError("file has a header but no data rows", path.name)
    if fallback:
        notes.insert(0, f"{path.name}: not valid UTF-8; read as {FALLBACK_NAMES[encoding]}")
    return Table(df, path.name, fmt, encoding, fallback, delimiter, notes)
