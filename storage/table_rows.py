"""From a parsed table or CoNLL text to validated example dicts: each cell checked per task and problem.

Used by `storage.io.load_examples`; problems collect in ``ctx["problems"]`` (file, row, column each) so a file
is reported whole before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from storage.conll import DataError, Problem, check_tags, invisible_note, parse_conll, visible
from storage.readers import Table, read_bytes
from storage.sniff import decode
from storage.splits import split_name
from storage.validate import label_cell, list_cell, names_cell, score_cell, single_list_cell, text_cell
from storage.writers import NUMBER_RE


def cells(df: pd.DataFrame, col: str | None) -> list:
    """A column as a Python list ("" for missing values; all rows None when col is None)."""
    if col is None:
        return [None] * len(df)
    return [("" if v is None or (isinstance(v, float) and v != v) else v) for v in df[col].tolist()]


def check_mapping(columns: list[str], mapping: dict[str, str | None], file: str, required: list[str]) -> None:
    """Raise if a mapped or required column is missing, listing the columns that exist."""
    existing = [c for c in columns if c != "__row__"]
    for role, col in mapping.items():
        if col is None and role in required:
            raise DataError(Problem(file, f"no column for {role}; columns are {existing}"))
        if col is not None and col not in columns:
            raise DataError(Problem(file, f"column not found; columns are {existing}", None, col))


def rows_from_table(table: Table, task: str, mapping: dict[str, str | None], ctx: dict) -> list[dict]:
    """Validate every row of a table and build example dicts (with source_row)."""
    df, file = table.df, table.file
    problems, warnings, require, allowed = ctx["problems"], ctx["warnings"], ctx["require"], ctx["allowed"]
    row_numbers = df["__row__"].tolist() if "__row__" in df.columns else range(1, len(df) + 1)
    out: list[dict] = []
    if task == "token":
        tcol, gcol = mapping["tokens"], mapping["tags"]
        for row, tok_v, tag_v in zip(row_numbers, cells(df, tcol), cells(df, gcol), strict=True):
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
    problem, sep = ctx["problem"], ctx["label_sep"]
    for row, text, pair, label in zip(
        row_numbers, cells(df, xcol), cells(df, pcol), cells(df, lcol), strict=True
    ):
        before = len(problems)
        text = text_cell(text, "text", (file, row, xcol), problems)
        if problem == "multilabel":
            label = names_cell(label, (file, row, lcol), problems, sep)
        elif problem == "regression":
            label = score_cell(label, (file, row, lcol), problems)
        else:
            listed = single_list_cell(label)  # kept as a list: `Loaded.list_labels` reports it
            label = listed if listed is not None else label_cell(label, (file, row, lcol), problems)
        ex = {"text": text, "label": label, "source_row": row}
        if task == "pair":
            ex["text_pair"] = text_cell(pair, "text pair", (file, row, pcol), problems)
        if len(problems) > before:
            continue  # a refused label cell must not also read as a missing one
        if label is None:
            if require:
                problems.append(Problem(file, "label is missing", row, lcol))
        elif allowed is not None and problem != "regression":
            # a single-label load's JSON list is no label yet: `refuse_list_labels` names it
            names = label if problem == "multilabel" else [] if isinstance(label, list) else [label]
            unknown = next((n for n in names if n not in allowed), None)
            if unknown is not None:
                problems.append(
                    Problem(file, f"label {unknown!r} is not in the label set {sorted(allowed)}", row, lcol)
                )
        out.append(ex)
    return out


def load_conll(path: Path, ctx: dict, max_bytes: int) -> tuple[list[dict], str, bool]:
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


def add_splits(table: Table, col: str, examples: list[dict], problems: list[Problem]) -> None:
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


def labels_in(examples: list[dict], task: str, problem: str = "single") -> list[str]:
    """Labels (entity types for token tasks) present, in natural order: numbers numerically, then text.

    Multi-label: every name of every list. Regression: none. A single-label load's JSON lists: none.
    """
    found: set[str] = set()
    for ex in examples:
        if task == "token":
            found.update(t[2:] for t in ex["tags"] or () if t != "O")
        elif problem == "multilabel" and ex["label"] is not None:
            found.update(ex["label"])
        elif problem == "single" and isinstance(ex["label"], str):
            found.add(ex["label"])
    return sorted(found, key=lambda s: (0, float(s), s) if NUMBER_RE.match(s) else (1, 0.0, s))
