"""The Data tab's dataset list and browser, and its dataset actions: move examples between splits, export, delete.

Re-exported by `ui.data`, where the tab and its tests find them.
"""

from __future__ import annotations

import re
import secrets
import time

import gradio as gr
import pandas as pd

from storage import io, repo
from storage.splits import SPLIT_LABELS
from ui.common import Ctx, esc
from ui.data_problems import labels_cell, problem_cell
from ui.problems import label_text, problem_of

PAGE_SIZE = 20
BROWSE_COLUMNS = {  # named even when empty: an empty Dataframe shows placeholder headers "1 2 3"
    "sequence": ["id", "text", "label", "split"],
    "pair": ["id", "text", "text_pair", "label", "split"],
    "token": ["id", "tokens", "tags", "split"],
}


def parse_ids(text: str) -> list[int]:
    """Example ids as typed: "3, 5-8 12" -> [3, 5, 6, 7, 8, 12]; ValueError naming the bad part.

    >>> parse_ids("3, 5-7 9")
    [3, 5, 6, 7, 9]
    """
    ids: list[int] = []
    for part in re.split(r"[\s,;]+", (text or "").strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m[2] and int(m[2]) < int(m[1])):
            raise ValueError(f"{part!r} is not an id or a range such as 5-9")
        ids += range(int(m[1]), int(m[2] or m[1]) + 1)
    return ids


def move_to_split(ctx: Ctx, dataset_id: int | None, ids_text: str, split: str) -> str:
    """Set the split of the examples whose ids are typed (the browser's id column); all or none."""
    if not dataset_id:
        return "Choose a dataset."
    try:
        ids = parse_ids(ids_text)
        if not ids:
            return "Type the ids of the examples to move (the browser's **id** column), e.g. `3, 5-9`."
        with ctx.sessions() as s:
            n = repo.set_split(s, int(dataset_id), ids, split)
            counts = repo.split_counts(s, int(dataset_id))
    except (ValueError, KeyError) as err:
        return f"Nothing moved: {esc(str(err).strip(chr(39)))}"
    per_split = " · ".join(f"{SPLIT_LABELS[k]} {v:,}" for k, v in counts.items())
    return f"Moved **{n:,}** examples to **{esc(SPLIT_LABELS[split])}**. Labeled per split: {esc(per_split)}"


def export_dataset(ctx: Ctx, dataset_id: int | None, fmt: str) -> str | None:
    """Write the dataset to a file under DATA_DIR/exports and return its path (for a download)."""
    if not dataset_id:
        return None
    with ctx.sessions() as s:
        ds = repo.get_dataset(s, dataset_id)
        if fmt == "conll" and ds.task != "token":
            raise gr.Error("CoNLL holds token datasets; choose CSV or JSONL")
        rows = repo.examples_for_export(s, dataset_id)
        safe = re.sub(r"[^\w\-.]+", "_", ds.name)[:80] or "dataset"
        task = ds.task
    # A random folder per export: exports are served by path, so a guessable name (dataset and time) would let
    # anyone who guesses it fetch another's export; the file name itself stays readable.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ctx.settings.exports_dir / secrets.token_urlsafe(16) / f"{safe}-{stamp}.{fmt}"
    out.parent.mkdir(parents=True, exist_ok=True)
    io.write_examples(rows, out, fmt, task)
    return str(out)


def delete_dataset(ctx: Ctx, dataset_id: int | None, confirmed: bool) -> str:
    """Delete a dataset (examples, labels, finished jobs) once the user ticked the confirmation."""
    if not dataset_id:
        return "Choose a dataset."
    if not confirmed:
        return "Tick **I am sure** to delete."
    with ctx.sessions() as s:
        name = repo.get_dataset(s, dataset_id).name
        try:
            repo.delete_dataset(s, dataset_id)
        except ValueError as err:
            return f"Not deleted: {esc(err)}"
    return f"Deleted **{esc(name)}**."


def datasets_table(ctx: Ctx) -> pd.DataFrame:
    """Every dataset with its counts and label distribution, or score summary (plain text cells)."""
    with ctx.sessions() as s:
        rows = []
        for d in repo.dataset_summaries(s):
            d = {**d, "problem": d.get("problem") or problem_of(repo.get_dataset(s, d["id"]))}
            rows.append(
                {
                    "id": d["id"],
                    "name": d["name"],
                    "task": d["task"],
                    "problem": problem_cell(d),
                    "examples": d["examples"],
                    "labeled": d["labeled"],
                    "labels": labels_cell(s, d),
                }
            )
    return pd.DataFrame(rows, columns=["id", "name", "task", "problem", "examples", "labeled", "labels"])


def browse(ctx: Ctx, dataset_id: int | None, search: str = "", status: str = "all", page: int = 1) -> tuple:
    """One page of examples (filtered, searched) and a 'rows a-b of n' line."""
    if not dataset_id:
        return pd.DataFrame(columns=BROWSE_COLUMNS["sequence"]), "Choose a dataset."
    page = max(1, int(page or 1))
    with ctx.sessions() as s:
        ds = repo.get_dataset(s, dataset_id)
        task, problem = ds.task, problem_of(ds)
        n = repo.count_examples(s, dataset_id, status=status, search=search or None)
        rows = repo.page_examples(
            s,
            dataset_id,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
            status=status,
            search=search or None,
        )
        if task == "token":
            data = [
                {
                    "id": e.id,
                    "tokens": " ".join(e.tokens or []),
                    "tags": " ".join(e.tags or []) or "",
                    "split": e.split or "",
                }
                for e in rows
            ]
        else:
            data = [
                {
                    "id": e.id,
                    "text": e.text,
                    **({"text_pair": e.text_pair} if task == "pair" else {}),
                    "label": label_text(e.label, problem),
                    "split": e.split or "",
                }
                for e in rows
            ]
    first = (page - 1) * PAGE_SIZE + 1
    info = f"{first:,}–{first + len(data) - 1:,} of {n:,}" if data else f"no examples match (of {n:,})"
    return pd.DataFrame(data, columns=BROWSE_COLUMNS[task]), info
