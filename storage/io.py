"""Read and write example files: CSV, TSV, JSONL, Excel and CoNLL, validated before anything is written.

Conventions used in every message:

* **row N** is the N-th *data* row, counting from 1 and not counting the header (in a CSV without
  multi-line cells, row N is on line N + 1). In JSONL, row N is line N. In CoNLL, problems name the
  1-based **line** of the file.
* Quotes: CSV follows the CSV rules; in TSV a quote is a literal character (SST-2 has them).
* Encodings (`storage.sniff`): a BOM says UTF-32, UTF-8 or UTF-16; then UTF-16/32 without a BOM (NUL
  bytes), UTF-8, and a single-byte fallback: cp1252, or Latin-1 where cp1252 has no character. The codec
  used is `encoding` on `Table`, `Preview` and `Loaded`; the fallback is reported (``latin1_fallback``).
* Delimiters: a ``.csv`` may use ``,`` ``;`` TAB or ``|`` (sniffed; quotes follow the CSV rules); the one
  used is `delimiter` on `Table`, `Preview` and `Loaded` (None for JSONL, Excel and CoNLL).
* Cells: JSON numbers keep their spelling; JSON objects, lists (in a text or label column) and booleans
  are refused, and so are texts, tokens and labels with no visible character (`storage.validate`).
* Formula neutralisation (CSV only): on export, a cell that a spreadsheet would run as a formula -- it
  starts with ``=``, ``+``, ``-``, ``@``, TAB or CR, possibly after apostrophes -- gets one leading
  apostrophe (``=SUM(A1)`` is written ``'=SUM(A1)``); plain numbers such as ``-1`` are left alone. On CSV
  import, one leading apostrophe is stripped when what follows is (apostrophes then) one of those starters.
  Export then import therefore gives back the exact text, including text that itself began with ``'=``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storage.conll import MAX_REPORTED, DataError, Problem, check_tags, invisible_note, parse_conll, visible
from storage.models import TASKS
from storage.readers import (
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    Table,
    detect_format,
    read_bytes,
    read_table,
)
from storage.sniff import FALLBACK_NAMES, decode
from storage.splits import guess_split_column, split_name
from storage.validate import drop_duplicates, label_cell, list_cell, text_cell
from storage.writers import NUMBER_RE, write_examples

__all__ = [
    "DataError",
    "Loaded",
    "Preview",
    "Table",
    "check_trainable",
    "guess_roles",
    "load_examples",
    "preview_file",
    "read_examples",
    "read_table",
    "write_examples",
]

# Column names we recognise, most specific first; compared case-insensitively.
ROLE_NAMES = {
    "text": [
        "text",
        "sentence",
        "sentence1",
        "#1 string",
        "premise",
        "question1",
        "question",
        "review",
        "content",
    ],
    "text_pair": ["text_pair", "sentence2", "#2 string", "hypothesis", "question2", "pair"],
    "label": ["label", "labels", "quality", "entailment", "class", "category", "sentiment", "target", "y"],
    "tokens": ["tokens", "words", "token"],
    "tags": ["tags", "ner_tags", "ner", "labels", "label"],
}


@dataclass
class Preview:
    """What the upload form shows before anything is written."""

    file: str
    format: str
    encoding: str | None  # the codec used; None for Excel
    latin1_fallback: bool
    columns: list[str]
    rows: list[dict]
    n_rows: int
    roles: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)
    delimiter: str | None = None  # the field separator used; None for JSONL, Excel and CoNLL
    split_col: str | None = None  # a column that looks like it names each row's split (train/dev/test)

    @property
    def read_as(self) -> str:
        """How the file was read, for the preview: "read as CSV, delimiter ';', encoding cp1252"."""
        return _read_as(self.format, self.delimiter, self.encoding)


@dataclass
class Loaded:
    """Validated examples ready for `repo.add_examples`, plus what the user should be told."""

    file: str
    examples: list[dict]
    warnings: list[str]
    format: str
    encoding: str | None
    latin1_fallback: bool
    columns: dict[str, str | None]
    labels: list[str]
    delimiter: str | None = None  # the field separator used; None for JSONL, Excel and CoNLL

    @property
    def read_as(self) -> str:
        """How the file was read: "read as CSV, delimiter ';', encoding cp1252"."""
        return _read_as(self.format, self.delimiter, self.encoding)


DELIMITER_NAMES = {"\t": "TAB"}  # a tab inside quotes would look like a space in a message


def _read_as(fmt: str, delimiter: str | None, encoding: str | None) -> str:
    """The "read as ..." line shared by `Preview` and `Loaded`."""
    parts = [f"read as {'Excel' if fmt == 'excel' else fmt.upper() if fmt != 'conll' else 'CoNLL'}"]
    if delimiter is not None:
        parts.append(f"delimiter {DELIMITER_NAMES.get(delimiter, repr(delimiter))}")
    if encoding is not None:
        parts.append(f"encoding {encoding}")
    return ", ".join(parts)


def guess_roles(columns: list[str], task: str) -> dict[str, str | None]:
    """Guess which columns hold text, text pair and label (tokens/tags for token tasks).

    Args:
        columns: the file's column names.
        task: ``sequence``, ``pair`` or ``token``.

    Returns:
        ``{"text": ..., "text_pair": ..., "label": ...}`` with column names or None; for token tasks the
        keys are ``tokens`` and ``tags``.

    >>> guess_roles(["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], "pair")
    {'text': '#1 String', 'text_pair': '#2 String', 'label': 'Quality'}
    """
    roles = ("tokens", "tags") if task == "token" else ("text", "text_pair", "label")
    lower = {c.strip().lower(): c for c in columns if c != "__row__"}
    out: dict[str, str | None] = {}
    taken: set[str] = set()
    for role in roles:
        out[role] = next((lower[n] for n in ROLE_NAMES[role] if n in lower and lower[n] not in taken), None)
        if out[role]:
            taken.add(out[role])  # type: ignore[arg-type]
    if task == "sequence":
        out.pop("text_pair")
    first = "tokens" if task == "token" else "text"
    if out[first] is None:  # fall back to the first column we have not used and that is not an id
        rest = [c for c in lower.values() if c not in taken and "id" not in c.lower().split()]
        out[first] = rest[0] if rest else None
    return out


def preview_file(
    path: str | Path, task: str = "sequence", n: int = 10, max_bytes: int = MAX_FILE_BYTES
) -> Preview:
    """Read a file and show its first rows, columns and guessed roles, writing nothing.

    Args:
        path: CSV, TSV, JSONL, Excel or CoNLL file.
        task: ``sequence``, ``pair`` or ``token`` (guessing depends on it).
        n: how many rows to show.
        max_bytes: refuse larger files.

    Returns:
        A `Preview`; ``latin1_fallback`` tells the user the file was not UTF-8.

    >>> preview_file("mrpc/train.tsv", "pair").roles  # doctest: +SKIP
    {'text': '#1 String', 'text_pair': '#2 String', 'label': 'Quality'}
    """
    path = Path(path)
    if detect_format(path, task) == "conll":
        loaded = load_examples(path, "token")
        rows = [
            {"tokens": " ".join(e["tokens"]), "tags": " ".join(e["tags"] or [])} for e in loaded.examples[:n]
        ]
        return Preview(
            loaded.file, "conll", loaded.encoding, loaded.latin1_fallback, ["tokens", "tags"], rows,
            len(loaded.examples), {"tokens": "tokens", "tags": "tags"}, loaded.warnings,
        )  # fmt: skip
    table = read_table(path, task, max_bytes=max_bytes)
    columns = [c for c in table.df.columns if c != "__row__"]
    rows = table.df[columns].head(n).to_dict(orient="records")
    return Preview(
        table.file, table.format, table.encoding, table.latin1_fallback, columns, rows, len(table.df),
        guess_roles(columns, task), list(table.notes), table.delimiter, guess_split_column(columns),
    )  # fmt: skip


def _cells(df: pd.DataFrame, col: str | None) -> list:
    """A column as a Python list ("" for missing values; all rows None when col is None)."""
    if col is None:
        return [None] * len(df)
    return [("" if v is None or (isinstance(v, float) and v != v) else v) for v in df[col].tolist()]


def _check_mapping(
    columns: list[str], mapping: dict[str, str | None], file: str, required: list[str]
) -> None:
    """Raise if a mapped or required column is missing, listing the columns that exist."""
    existing = [c for c in columns if c != "__row__"]
    for role, col in mapping.items():
        if col is None and role in required:
            raise DataError(Problem(file, f"no column for {role}; columns are {existing}"))
        if col is not None and col not in columns:
            raise DataError(Problem(file, f"column not found; columns are {existing}", None, col))


def _rows_from_table(table: Table, task: str, mapping: dict[str, str | None], ctx: dict) -> list[dict]:
    """Validate every row of a table and build example dicts (with source_row)."""
    df, file = table.df, table.file
    problems, warnings, require, allowed = ctx["problems"], ctx["warnings"], ctx["require"], ctx["allowed"]
    row_numbers = df["__row__"].tolist() if "__row__" in df.columns else range(1, len(df) + 1)
    out: list[dict] = []
    if task == "token":
        tcol, gcol = mapping["tokens"], mapping["tags"]
        for row, tok_v, tag_v in zip(row_numbers, _cells(df, tcol), _cells(df, gcol), strict=True):
            before = len(problems)
            tokens = list_cell(tok_v, (file, row, tcol), problems)
            tags = list_cell(tag_v, (file, row, gcol), problems) if gcol else None
            if len(problems) > before:
                continue
            if not tokens:
                problems.append(Problem(file, "no tokens", row, tcol))
                continue
            blank = next((i for i, t in enumerate(tokens) if not visible(t)), None)
            if blank is not None:
                problems.append(
                    Problem(file, f"token {blank + 1} {invisible_note(tokens[blank])}", row, tcol)
                )
                continue
            if tags is None:
                if require:
                    problems.append(Problem(file, "tags are missing", row, gcol))
            else:
                where = {"file": file, "row": row, "column": gcol}
                tags = check_tags(tokens, tags, where, allowed, problems, warnings)
            out.append({"tokens": tokens, "tags": tags, "source_row": row})
        return out
    xcol, pcol, lcol = mapping["text"], mapping.get("text_pair"), mapping["label"]
    for row, text, pair, label in zip(
        row_numbers, _cells(df, xcol), _cells(df, pcol), _cells(df, lcol), strict=True
    ):
        before = len(problems)
        text = text_cell(text, "text", (file, row, xcol), problems)
        label = label_cell(label, (file, row, lcol), problems)
        ex = {"text": text, "label": label, "source_row": row}
        if task == "pair":
            ex["text_pair"] = text_cell(pair, "text pair", (file, row, pcol), problems)
        if len(problems) > before:
            continue  # a refused label cell must not also read as a missing one
        if label is None:
            if require:
                problems.append(Problem(file, "label is missing", row, lcol))
        elif allowed is not None and label not in allowed:
            problems.append(
                Problem(file, f"label {label!r} is not in the label set {sorted(allowed)}", row, lcol)
            )
        out.append(ex)
    return out


def _load_conll(path: Path, ctx: dict, max_bytes: int) -> tuple[list[dict], str, bool]:
    """Read a CoNLL file into token example dicts (source_row = first line of the sentence)."""
    text, encoding, fallback = decode(read_bytes(path, max_bytes), path.name)
    sentences, problems = parse_conll(text, path.name)
    ctx["problems"].extend(problems)
    if not sentences and not problems:
        raise DataError("file has no sentences", path.name)
    out = []
    before = len(ctx["warnings"])
    for s in sentences:
        tags = s.tags
        if tags is None:
            if ctx["require"]:
                ctx["problems"].append(Problem(path.name, "sentence has no tags", s.line, "tag", True))
        else:
            where = {"file": path.name, "column": "tag", "line_based": True, "lines": s.tag_lines}
            tags = check_tags(s.tokens, tags, where, ctx["allowed"], ctx["problems"], ctx["warnings"])
        out.append({"tokens": s.tokens, "tags": tags, "source_row": s.line})
    repaired = len(ctx["warnings"]) - before
    if repaired:
        ctx["warnings"].insert(
            before, f"{path.name}: {repaired} I- tags began an entity and were changed to B- (IOB1 -> IOB2)"
        )
    return out, encoding, fallback


def load_examples(
    path: str | Path,
    task: str,
    text_col: str | None = None,
    text_pair_col: str | None = None,
    label_col: str | None = None,
    *,
    require_labels: bool = False,
    labels: list[str] | None = None,
    duplicates: str = "keep",
    split_col: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    max_rows: int = MAX_ROWS,
    max_columns: int = MAX_COLUMNS,
) -> Loaded:
    """Read and validate a file into example dicts; nothing is written, every problem is collected first.

    Args:
        path: CSV, TSV, JSONL, Excel or CoNLL file.
        task: ``sequence``, ``pair`` or ``token``.
        text_col, text_pair_col, label_col: column mapping; guessed when None. For token tasks text_col
            names the tokens column and label_col the tags column (CoNLL needs none).
        require_labels: an unlabeled row is an error (training files); otherwise it imports unlabeled.
        labels: the dataset's label set (entity types for token tasks); other labels are errors. None
            accepts any label.
        duplicates: ``keep`` or ``skip`` rows repeating an earlier row's input; both are reported, one
            line per repeated input with its row numbers.
        split_col: a column naming each row's split (train, dev/validation/eval, test; any case); rows
            with a blank cell get no ``split`` key (the importer's default applies). CoNLL files have none.
        max_bytes, max_rows, max_columns: limits, reported with a clear message.

    Returns:
        `Loaded`, whose examples carry ``source_row`` and, when unlabeled, label/tags None.

    Raises:
        DataError: with file, row and column for each problem.

    >>> load_examples("sst2/train.tsv", "sequence").columns  # doctest: +SKIP
    {'text': 'sentence', 'label': 'label'}
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if duplicates not in ("keep", "skip"):
        raise ValueError("duplicates must be 'keep' or 'skip'")
    path = Path(path)
    ctx = {
        "problems": [],
        "warnings": [],
        "require": require_labels,
        "allowed": set(labels) if labels else None,
    }
    if detect_format(path, task) == "conll":
        if task != "token":
            raise DataError("CoNLL files hold token examples; choose the token task", path.name)
        if split_col is not None:
            raise DataError("CoNLL files have no columns; import each split's file with its split", path.name)
        examples, encoding, fallback = _load_conll(path, ctx, max_bytes)
        fmt, mapping, delimiter, notes = "conll", {"tokens": None, "tags": None}, None, []
        if len(examples) > max_rows:
            raise DataError(f"more than {max_rows:,} sentences; split the file", path.name)
    else:
        table = read_table(path, task, max_bytes, max_rows, max_columns)
        guessed = guess_roles(list(table.df.columns), task)
        if task == "token":
            mapping = {"tokens": text_col or guessed["tokens"], "tags": label_col or guessed["tags"]}
            required = ["tokens", "tags"] if require_labels else ["tokens"]
        else:
            mapping = {"text": text_col or guessed["text"], "label": label_col or guessed["label"]}
            if task == "pair":
                mapping["text_pair"] = text_pair_col or guessed["text_pair"]
            required = ["text", "text_pair"] + (["label"] if require_labels else [])
        _check_mapping(list(table.df.columns), mapping, table.file, required)
        if split_col is not None:
            _check_mapping(list(table.df.columns), {"split": split_col}, table.file, [])
        examples = _rows_from_table(table, task, mapping, ctx)
        if split_col is not None:
            _add_splits(table, split_col, examples, ctx["problems"])
        fmt, encoding, fallback = table.format, table.encoding, table.latin1_fallback
        delimiter, notes = table.delimiter, table.notes
    if ctx["problems"]:
        raise DataError(ctx["problems"])
    warnings = ctx["warnings"]
    if fmt == "conll" and fallback:
        notes = [f"{path.name}: not valid UTF-8; read as {FALLBACK_NAMES[encoding]}"]
    warnings[:0] = notes
    examples = drop_duplicates(examples, fmt, path.name, duplicates, warnings)
    if len(warnings) > MAX_REPORTED * 2:
        warnings = warnings[: MAX_REPORTED * 2] + [
            f"... and {len(warnings) - MAX_REPORTED * 2} more warnings"
        ]
    labels = _labels_in(examples, task)
    return Loaded(path.name, examples, warnings, fmt, encoding, fallback, mapping, labels, delimiter)


def _add_splits(table: Table, col: str, examples: list[dict], problems: list[Problem]) -> None:
    """Set each example's ``split`` from the split column (matched by source row); bad values are problems."""
    df = table.df
    row_numbers = df["__row__"].tolist() if "__row__" in df.columns else range(1, len(df) + 1)
    by_row = {}
    for row, value in zip(row_numbers, df[col].tolist(), strict=True):
        try:
            by_row[row] = split_name(value)
        except ValueError as err:
            problems.append(Problem(table.file, str(err), row, col))
    for ex in examples:
        split = by_row.get(ex["source_row"])
        if split is not None:
            ex["split"] = split


def _labels_in(examples: list[dict], task: str) -> list[str]:
    """Labels (entity types for token tasks) present, in natural order: numbers numerically, then text."""
    found: set[str] = set()
    for ex in examples:
        if task == "token":
            found.update(t[2:] for t in ex["tags"] or () if t != "O")
        elif ex["label"] is not None:
            found.add(ex["label"])
    return sorted(found, key=lambda s: (0, float(s), s) if NUMBER_RE.match(s) else (1, 0.0, s))


def check_trainable(examples: list[dict], task: str, file: str = "dataset") -> None:
    """Raise DataError unless labeled examples cover at least two classes (tag classes for token tasks)."""
    if task == "token":
        classes = {t for ex in examples if ex.get("tags") for t in ex["tags"]}
    else:
        classes = {ex["label"] for ex in examples if ex.get("label") is not None}
    if len(classes) < 2:
        raise DataError(f"training needs at least two classes; found {sorted(classes)}", file)


def read_examples(
    path: str | Path,
    task: str,
    text_col: str | None = None,
    text_pair_col: str | None = None,
    label_col: str | None = None,
) -> list[dict]:
    """Read a labeled file into the engine's example dicts (the engine CLI's one entry point).

    Args:
        path: CSV, TSV, JSONL, Excel or CoNLL file.
        task: ``sequence``, ``pair`` or ``token``.
        text_col, text_pair_col, label_col: column mapping, guessed when None.

    Returns:
        ``{"text", "label"}``, ``{"text", "text_pair", "label"}`` or ``{"tokens", "tags"}`` dicts.

    Raises:
        DataError: missing column (existing ones listed), empty file, empty text, missing label,
            tag/token count mismatch -- each naming file, row and column.

    >>> read_examples("sst2/dev.tsv", "sequence")[0]  # doctest: +SKIP
    {'text': "it 's a charming and often affecting journey . ", 'label': '1'}
    """
    loaded = load_examples(path, task, text_col, text_pair_col, label_col, require_labels=True)
    return [{k: v for k, v in ex.items() if k != "source_row"} for ex in loaded.examples]
