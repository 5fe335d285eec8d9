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
* Cells: JSON numbers keep their spelling; JSON objects, lists (in a text column) and booleans are
  refused, and so are texts, tokens and labels with no visible character (`storage.validate`).
* Problems (``problem=``): ``single`` takes one name per label cell; ``multilabel`` a JSON list or names
  split on ``label_sep`` (default ``,``), ``[]`` meaning no label applies; ``regression`` a finite number.
  A single-label import reports label cells that look like lists in `Loaded.list_labels` (the rule is in
  `storage.label_values`) and still imports; JSON-list cells among them are kept as lists, which
  `refuse_list_labels` (and `import_examples`) refuse unless imported as multi-label.
* Formula neutralisation (CSV only): on export, a cell that a spreadsheet would run as a formula -- it
  starts with ``=``, ``+``, ``-``, ``@``, TAB or CR, possibly after apostrophes -- gets one leading
  apostrophe (``=SUM(A1)`` is written ``'=SUM(A1)``); plain numbers such as ``-1`` are left alone. On CSV
  import, one leading apostrophe is stripped when what follows is (apostrophes then) one of those starters.
  Export then import therefore gives back the exact text, including text that itself began with ``'=``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from storage.conll import MAX_REPORTED, DataError, Problem
from storage.label_values import check_problem, describe_list_labels, spelling_variants
from storage.models import TASKS
from storage.readers import (
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    Table,
    detect_format,
    read_table,
)
from storage.roles import guess_roles
from storage.sniff import FALLBACK_NAMES
from storage.splits import guess_split_column
from storage.table_rows import add_splits, check_mapping, labels_in, load_conll
from storage.table_rows import rows_from_table as _rows_from_table  # a seam: tests swap in a lossy reader
from storage.validate import LIST_LABEL_NOTE, drop_duplicates
from storage.writers import write_examples

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
    "refuse_list_labels",
    "write_examples",
]


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
    problem: str = "single"
    score_range: tuple[float, float] | None = None  # regression: the labeled scores' min and max
    # single: a one-line note on label cells that look like lists ("rows 2, 5, 9 (41 in all) hold lists like
    # 'sports,politics'"), for the UI to ask whether this is a multi-label file
    list_labels: str | None = None

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


def preview_file(
    path: str | Path,
    task: str = "sequence",
    n: int = 10,
    max_bytes: int = MAX_FILE_BYTES,
    problem: str = "single",
) -> Preview:
    """Read a file and show its first rows, columns and guessed roles, writing nothing.

    Args:
        path: CSV, TSV, JSONL, Excel or CoNLL file.
        task: ``sequence``, ``pair`` or ``token`` (guessing depends on it).
        n: how many rows to show.
        problem: ``regression`` guesses a score column as the label (`guess_roles`).
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
        guess_roles(columns, task, problem), list(table.notes), table.delimiter, guess_split_column(columns),
    )  # fmt: skip


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
    problem: str = "single",
    label_sep: str = ",",
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
        problem: ``single``, ``multilabel`` (label cells are lists) or ``regression`` (numbers); the last
            two for sequence and pair tasks.
        label_sep: what separates the names of a multi-label cell that is not a JSON list.

    Returns:
        `Loaded`, whose examples carry ``source_row`` and, when unlabeled, label/tags None; labels are
        names, lists of names (multi-label) or floats (regression).

    Raises:
        DataError: with file, row and column for each problem.

    >>> load_examples("sst2/train.tsv", "sequence").columns  # doctest: +SKIP
    {'text': 'sentence', 'label': 'label'}
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    check_problem(task, problem)
    if not label_sep:
        raise ValueError("label_sep is empty")
    if duplicates not in ("keep", "skip"):
        raise ValueError("duplicates must be 'keep' or 'skip'")
    path = Path(path)
    ctx = {
        "problems": [],
        "warnings": [],
        "require": require_labels,
        "allowed": set(labels) if labels else None,
        "problem": problem,
        "label_sep": label_sep,
    }
    if detect_format(path, task) == "conll":
        if task != "token":
            raise DataError("CoNLL files hold token examples; choose the token task", path.name)
        if split_col is not None:
            raise DataError("CoNLL files have no columns; import each split's file with its split", path.name)
        examples, encoding, fallback = load_conll(path, ctx, max_bytes)
        fmt, mapping, delimiter, notes = "conll", {"tokens": None, "tags": None}, None, []
        if len(examples) > max_rows:
            raise DataError(f"more than {max_rows:,} sentences; split the file", path.name)
    else:
        table = read_table(path, task, max_bytes, max_rows, max_columns)
        guessed = guess_roles(list(table.df.columns), task, problem)
        if task == "token":
            mapping = {"tokens": text_col or guessed["tokens"], "tags": label_col or guessed["tags"]}
            required = ["tokens", "tags"] if require_labels else ["tokens"]
        else:
            mapping = {"text": text_col or guessed["text"], "label": label_col or guessed["label"]}
            if task == "pair":
                mapping["text_pair"] = text_pair_col or guessed["text_pair"]
            required = ["text", "text_pair"] + (["label"] if require_labels else [])
        check_mapping(list(table.df.columns), mapping, table.file, required)
        if split_col is not None:
            check_mapping(list(table.df.columns), {"split": split_col}, table.file, [])
        examples = _rows_from_table(table, task, mapping, ctx)
        if split_col is not None:
            add_splits(table, split_col, examples, ctx["problems"])
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
    labels = labels_in(examples, task, problem)
    warnings[:0] = [  # first: the UI shows five, and a duplicate row matters less than a class split in two
        f"{path.name}: labels {' and '.join(map(repr, group))} differ only in case or spaces, so they are "
        f"{len(group)} classes; if they mean one, make the file's cells agree"
        for group in spelling_variants(labels)
    ]
    scores = [ex["label"] for ex in examples if problem == "regression" and ex["label"] is not None]
    listed = None
    if problem == "single" and task != "token":
        listed = describe_list_labels(
            [(ex["source_row"], ex["label"]) for ex in examples if ex["label"] is not None], label_sep
        )
    return Loaded(
        path.name, examples, warnings, fmt, encoding, fallback, mapping, labels, delimiter, problem,
        (min(scores), max(scores)) if scores else None, listed,
    )  # fmt: skip


def refuse_list_labels(loaded: Loaded) -> None:
    """Raise DataError naming file, row and column of each JSON-list label kept by a single-label load.

    A single-label import calls this once the user chose not to import the file as multi-label.
    """
    if loaded.problem != "single":
        return
    rows = [ex["source_row"] for ex in loaded.examples if isinstance(ex.get("label"), list)]
    if rows:
        column = loaded.columns.get("label")
        raise DataError([Problem(loaded.file, LIST_LABEL_NOTE, row, column) for row in rows])


def check_trainable(examples: list[dict], task: str, file: str = "dataset", problem: str = "single") -> None:
    """Raise DataError unless labeled examples cover at least two classes (tag classes for token tasks).

    Multi-label: two labeled examples and one label in use; regression: two different scores.
    """
    labeled = [ex["label"] for ex in examples if ex.get("label") is not None]
    if problem == "multilabel":
        if len(labeled) < 2 or not any(labeled):
            raise DataError(
                f"training needs two labeled examples and one label in use; found {len(labeled)} labeled, "
                f"labels used: {sorted({n for names in labeled for n in names})}",
                file,
            )
        return
    if problem == "regression":
        if len(set(labeled)) < 2:
            raise DataError(
                f"training needs at least two different scores; found {sorted(set(labeled))}", file
            )
        return
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
    problem: str = "single",
    label_sep: str = ",",
) -> list[dict]:
    """Read a labeled file into the engine's example dicts (the engine CLI's one entry point).

    Args:
        path: CSV, TSV, JSONL, Excel or CoNLL file.
        task: ``sequence``, ``pair`` or ``token``.
        text_col, text_pair_col, label_col: column mapping, guessed when None.
        problem: ``single``, ``multilabel`` or ``regression`` (see `load_examples`).
        label_sep: the separator of multi-label cells that are not JSON lists.

    Returns:
        ``{"text", "label"}``, ``{"text", "text_pair", "label"}`` or ``{"tokens", "tags"}`` dicts; the
        label is a name, a list of names (multi-label) or a float (regression).

    Raises:
        DataError: missing column (existing ones listed), empty file, empty text, missing label,
            tag/token count mismatch -- each naming file, row and column.

    >>> read_examples("sst2/dev.tsv", "sequence")[0]  # doctest: +SKIP
    {'text': "it 's a charming and often affecting journey . ", 'label': '1'}
    """
    loaded = load_examples(
        path,
        task,
        text_col,
        text_pair_col,
        label_col,
        require_labels=True,
        problem=problem,
        label_sep=label_sep,
    )
    refuse_list_labels(loaded)
    return [{k: v for k, v in ex.items() if k != "source_row"} for ex in loaded.examples]
