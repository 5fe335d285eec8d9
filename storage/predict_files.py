"""Files for batch predictions: read any importable file with all its columns, write it back with predictions.

Unlike `storage.io.load_examples`, nothing is dropped or validated as training data: labels may be absent,
duplicates stay, and every column the user had comes back in the output, in its order, with the prediction
columns after it (a column that would clash with one of them, e.g. a gold ``label``, keeps its name and the
prediction's is prefixed ``predicted_``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from storage.conll import DataError, Problem, parse_conll
from storage.readers import MAX_FILE_BYTES, MAX_ROWS, detect_format, read_bytes, read_table
from storage.roles import guess_roles
from storage.sniff import decode
from storage.validate import list_cell
from storage.writers import _neutralise

OUTPUT_SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "excel": ".xlsx", "conll": ".conll"}
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".xlsx": "excel", ".conll": "conll"}


@dataclass
class PredictInput:
    """A file read for prediction: its table (every column), the model inputs, and how it was read."""

    df: pd.DataFrame
    inputs: list  # texts, or for token models sentences / lists of words
    pairs: list[str] | None
    format: str
    file: str
    text_col: str


def read_inputs(
    path: str | Path,
    task: str,
    text_col: str | None = None,
    text_pair_col: str | None = None,
    max_rows: int = MAX_ROWS,
) -> PredictInput:
    """Read a CSV, TSV, JSONL, Excel or CoNLL file for prediction; the text columns are guessed when None.

    Token models read a CoNLL file's words, a tokens column (a JSON list) or a sentence column (split into
    words as the Try tab does, with character offsets in the entity spans).

    Raises:
        DataError: unreadable file, or a named column the file does not have (the columns it has listed).

    >>> read_inputs("reviews.csv", "sequence").text_col  # doctest: +SKIP
    'review'
    """
    path = Path(path)
    fmt = detect_format(path, task)
    if fmt == "conll":
        text, _, _ = decode(read_bytes(path, MAX_FILE_BYTES), path.name)
        sentences, problems = parse_conll(text, path.name)
        if problems:
            raise DataError(problems)
        if not sentences:
            raise DataError("file has no sentences", path.name)
        if len(sentences) > max_rows:
            raise DataError(f"more than {max_rows:,} sentences; split the file", path.name)
        df = pd.DataFrame({"tokens": [s.tokens for s in sentences]})
        if all(s.tags is not None for s in sentences):
            df["gold_tags"] = [s.tags for s in sentences]
        return PredictInput(df, list(df["tokens"]), None, fmt, path.name, "tokens")
    table = read_table(path, task, max_rows=max_rows)
    df = table.df.drop(columns=["__row__"], errors="ignore")
    columns = list(df.columns)
    guessed = guess_roles(columns, task)
    text_col = text_col or guessed["tokens" if task == "token" else "text"]
    pair_col = (text_pair_col or guessed.get("text_pair")) if task == "pair" else None
    for role, col in (("text", text_col), ("text pair", pair_col)):
        if (role == "text" or task == "pair") and (col is None or col not in columns):
            raise DataError(
                f"no {role} column {col!r}; the file has {', '.join(map(repr, columns))}"
                if col
                else f"cannot tell which column holds the {role}; name it ({', '.join(map(repr, columns))})",
                table.file,
            )
    if task == "token":
        problems: list[Problem] = []
        inputs = [
            _words(v, (table.file, row, text_col), problems) for row, v in enumerate(df[text_col], start=1)
        ]
        if problems:
            raise DataError(problems)
    else:
        inputs = [_text(v) for v in df[text_col]]
    pairs = [_text(v) for v in df[pair_col]] if pair_col else None
    return PredictInput(df, inputs, pairs, fmt, table.file, text_col)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _words(value, where, problems):
    """A JSON list of words stays a list; a plain sentence stays text (the Predictor splits it, with offsets)."""
    if isinstance(value, list) or (isinstance(value, str) and value.lstrip().startswith("[")):
        return list_cell(value, where, problems) or []
    return _text(value)


def output_path_for(file: str, fmt: str) -> str:
    """The output's file name: ``reviews.csv`` -> ``reviews-predictions.csv`` (CoNLL gives JSONL: spans need JSON)."""
    suffix = ".jsonl" if fmt == "conll" else OUTPUT_SUFFIX[fmt]
    return f"{Path(file).stem}-predictions{suffix}"


def with_predictions(df: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """The input table with the prediction columns after its own (clashing names prefixed ``predicted_``)."""
    out = df.copy()
    for name in rows[0] if rows else ():
        column = name if name not in df.columns else f"predicted_{name}"
        out[column] = [r[name] for r in rows]
    return out


def write_predictions(df: pd.DataFrame, path: str | Path) -> int:
    """Write the table to CSV, TSV, JSONL, Excel or CoNLL (by the extension); returns the rows written.

    CSV and Excel cells that a spreadsheet would run as a formula are neutralised as in exports
    (`storage.io`); list cells become JSON text in CSV, TSV and Excel. CoNLL keeps the words and the predicted tags.
    """
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot write {path.suffix!r}; use one of {', '.join(OUTPUT_FORMATS)}", path.name)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            for record in df.to_dict(orient="records"):
                fh.write(json.dumps(_decoded(record), ensure_ascii=False) + "\n")
    elif fmt == "conll":
        tags = df["predicted_tags" if "predicted_tags" in df else "tags"]
        blocks = [
            "\n".join(f"{w}\t{t}" for w, t in zip(words, json.loads(tag_json), strict=True))
            for words, tag_json in zip(df["tokens"], tags, strict=True)
        ]
        path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    else:
        # CSV as exports do (its import strips the apostrophe again); Excel too, where openpyxl would store a
        # leading "=" as a live formula; TSV keeps cells literal, as its import reads them
        cells = df.map(lambda v: _cell(v, neutralise=fmt != "tsv"))
        if fmt == "excel":
            cells.to_excel(path, index=False)
        else:
            cells.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",", lineterminator="\r\n")
    return len(df)


def _cell(value, neutralise: bool):
    """A spreadsheet cell: lists as JSON text, formulas neutralised, numbers kept as numbers."""
    if isinstance(value, list):
        value = json.dumps(value, ensure_ascii=False)
    return _neutralise(value) if neutralise and isinstance(value, str) else value


def _decoded(record: dict) -> dict:
    """A JSONL record: the JSON-text prediction cells (tags, entities) as JSON values again."""
    out = {}
    for key, value in record.items():
        if key in ("tags", "entities", "predicted_tags", "predicted_entities") and isinstance(value, str):
            value = json.loads(value) if value else None
        out[key] = value
    return out
