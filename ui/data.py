"""Data tab: upload -> preview and column mapping -> import; the dataset list, browser and actions are ui/data_manage.py."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from storage import io, repo
from storage.splits import SPLIT_LABELS
from ui.common import Ctx, dataset_choices, esc, user_message
from ui.data_manage import (  # noqa: F401  (re-exported)
    BROWSE_COLUMNS,
    browse,
    datasets_table,
    delete_dataset,
    export_dataset,
    move_to_split,
    parse_ids,
)
from ui.data_problems import ask_lists, import_lines, preview_scores
from ui.language_hint import examples_hint
from ui.problems import KIND_CHOICES, join_kind, split_kind

TASK_CHOICES = KIND_CHOICES  # one control: input shape and problem ("pair:multilabel"; see ui.problems)
# "Import as": the split of a whole file (or of the rows a split column leaves blank); stored names as values
IMPORT_AS = [(SPLIT_LABELS[s], s) for s in ("train", "eval", "test")]
NONE = "(none)"
DELIMITERS = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}
COLUMN_LABELS = {  # the mapping boxes' labels: (first text, second text, label) per task
    "sequence": ("Text column", "Second text column", "Label column"),
    "pair": ("First text column", "Second text column", "Label column"),
    "token": ("Words (tokens) column", "Second text column", "Tags column"),
}


# --- handlers: plain values in, plain values out ---------------------------------------------------------------


def preview_upload(path: str | None, task: str) -> dict:
    """Read an uploaded file's first rows and guess its column mapping; writes nothing.

    ``task`` is a kind choice (``"sequence"``, ``"pair:regression"``, ...; see `ui.problems.KIND_CHOICES`).

    Returns:
        ``{"ok", "message", "rows": DataFrame, "columns": [...], "roles": {"text", "text_pair", "label"},
        "name"}``; for token tasks ``text`` maps the tokens column and ``label`` the tags column.
    """
    empty = {"ok": False, "rows": pd.DataFrame(), "columns": [], "roles": {}, "name": ""}
    if not path:
        return {**empty, "message": "Upload a CSV, TSV, JSONL, XLSX or CoNLL file."}
    name = re.sub(r"[^\w\-. ]+", "_", Path(path).stem)[:100]
    kind = task
    try:
        task, problem = split_kind(kind)
        p = io.preview_file(path, task, problem=problem)
    except (io.DataError, ValueError) as err:
        return {**empty, "name": name, "message": f"**Cannot read this file**\n\n{_problems(err)}"}
    rows = pd.DataFrame(p.rows, columns=[c for c in p.columns if c != "__row__"] or None)
    rows = rows.drop(columns=["__row__"], errors="ignore").map(_cell)
    roles = {
        "text": p.roles.get("tokens", p.roles.get("text")),
        "text_pair": p.roles.get("text_pair"),
        "label": p.roles.get("tags", p.roles.get("label")),
    }
    # the mapped columns first: a long text column no longer pushes the label out of sight
    mapped = [c for c in (roles["text"], roles["text_pair"], roles["label"]) if c in rows.columns]
    rows = rows[mapped + [c for c in rows.columns if c not in mapped]]
    notes = [f"{esc(w)}" for w in p.warnings[:5]]
    read_as = [f"format {esc(p.format)}"]
    delimiter, encoding = p.delimiter, p.encoding  # the readers' warnings already say when it was not UTF-8
    if delimiter:
        read_as.append(f"delimiter {DELIMITERS.get(delimiter, esc(repr(delimiter)))}")
    if encoding:
        read_as.append(f"encoding {esc(encoding)}")
    detected = "token" if p.format == "conll" else kind  # a CoNLL file holds words and tags, nothing else
    message = f"**{p.n_rows:,} rows**, {', '.join(read_as)}. Check the column mapping, then **Import**."
    if detected != kind:
        message += " The task was set to **words → tags** for this file."
    elif problem == "regression" and (scores := preview_scores(rows, roles["label"])):
        notes.insert(0, scores)
    return {
        "ok": True,
        "message": "\n\n".join([message, *notes]),
        "rows": rows,
        "columns": [c for c in p.columns if c != "__row__"],
        "roles": roles,
        "split_col": p.split_col,
        "splittable": p.format != "conll",  # CoNLL has no columns: a whole file is one split
        "name": name,
        "task": detected,
    }


def import_upload(
    ctx: Ctx,
    path: str | None,
    task: str,
    name: str,
    text_col: str | None = None,
    pair_col: str | None = None,
    label_col: str | None = None,
    split_col: str | None = None,
    split: str | None = None,
    label_sep: str = ",",
    lists_as_single: bool = False,
) -> dict:
    """Validate the whole file, then import it in one transaction (all rows or none).

    ``task`` is a kind choice (``"sequence"``, ``"sequence:multilabel"``, ``"pair:regression"``...).
    ``split_col`` names a column of train / dev / test values per row; ``split`` is the split of the whole
    file (of the rows the column leaves blank). Into an existing dataset of the same task, rows are appended.
    Multi-label cells split on ``label_sep``. When a one-label import finds list-like label cells, nothing is
    imported and ``ask`` says what was found, unless ``lists_as_single`` (the user answered "one label each").

    Returns:
        ``{"ok", "message", "dataset_id", "distribution": DataFrame(label, count), "ask": str | None,
        "kind"}``.
    """
    fail = {"ok": False, "dataset_id": None, "distribution": pd.DataFrame({"label": [], "count": []}),
            "ask": None, "kind": task}  # fmt: skip
    name = (name or "").strip()
    if not path:
        return {**fail, "message": "Upload a file first."}
    if not name:
        return {**fail, "message": "Give the dataset a name."}
    pick = lambda c: None if c in (None, "", NONE) else c  # noqa: E731
    label_sep = label_sep or ","
    try:
        task, problem = split_kind(task)
        loaded = io.load_examples(
            path, task, pick(text_col), pick(pair_col) if task == "pair" else None, pick(label_col),
            split_col=pick(split_col), problem=problem, label_sep=label_sep,
        )  # fmt: skip
        found_lists = getattr(loaded, "list_labels", None)
        if problem == "single" and found_lists and not lists_as_single:
            question = ask_lists(found_lists, label_sep)
            return {**fail, "message": question, "ask": question}
        # "one label each": a JSON-list cell is still no label name (file, row, column)
        io.refuse_list_labels(loaded)
        with ctx.sessions() as s:
            ds = repo.import_examples(
                s, name, task, loaded.examples, loaded.labels, split=split or None, source_file=loaded.file,
                problem=problem,
            )  # fmt: skip
            dist = repo.label_distribution(s, ds.id)
            about = import_lines(s, ds.id, problem, loaded)
            splits = repo.split_counts(s, ds.id)
            total = repo.count_examples(s, ds.id)
            labeled = repo.count_examples(s, ds.id, status="labeled")
            problems = repo.training_problems(s, ds.id)
    except (io.DataError, ValueError, KeyError) as err:
        return {**fail, "message": f"**Nothing was imported.**\n\n{_problems(err)}"}
    except SQLAlchemyError as err:  # a full disk or a locked database: a sentence, never the driver's SQL
        return {**fail, "message": f"**Nothing was imported.**\n\n{esc(user_message(err))}"}
    counted = "" if problem == "regression" else f", {len(dist)} labels"
    lines = [
        f"Imported **{len(loaded.examples):,}** examples into **{esc(name)}** "
        f"({total:,} in the dataset, {labeled:,} labeled{counted}).",
        *about,
    ]
    if splits["eval"] or splits["test"]:
        lines.append(
            "Labeled per split: " + " · ".join(f"{SPLIT_LABELS[k]} {v:,}" for k, v in splits.items())
        )
    lines += [f"⚠ {esc(w)}" for w in loaded.warnings[:5]]
    lines += [f"⚠ {esc(p)}" for p in problems]
    lines += [h for h in (examples_hint(loaded.examples),) if h]  # non-English: the multilingual model
    if not problems:
        lines.append("Next: the **Train** tab.")
    distribution = pd.DataFrame({"label": list(dist), "count": list(dist.values())})
    return {"ok": True, "message": "\n\n".join(lines), "dataset_id": ds.id, "distribution": distribution,
            "ask": None, "kind": join_kind(task, problem)}  # fmt: skip


def _kind(kind: str) -> tuple[str, str]:
    """A kind choice as (task, problem); an unknown one as a one-label sequence (the handlers say what is wrong)."""
    try:
        return split_kind(kind)
    except ValueError:
        return "sequence", "single"


def _problems(err: Exception) -> str:
    lines = str(err).splitlines() or [type(err).__name__]
    text = "\n".join(f"- {esc(line)}" for line in lines[:20])
    if any(p.row is not None and not p.line_based for p in getattr(err, "problems", [])):
        # storage counts data rows (storage.io): a spreadsheet or an editor numbers the header too, one row off
        text += (
            "\n\nRow 1 is the first row under the header (a spreadsheet's row 2), or the first line of a file "
            "read without one."
        )
    return text


def _cell(value) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 200 else text[:199] + "…"


# --- the tab ---------------------------------------------------------------------------------------------------


def build_data_tab(ctx: Ctx, refresh_datasets: list) -> dict:
    """Upload/preview/import on the left, the dataset list and browser on the right.

    Returns:
        ``{"on_load": {"fn", "outputs"}}``: fresh dataset choices for a (re)loaded page.
    """
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown("### Upload")
            upload = gr.File(label="CSV, TSV, JSONL, XLSX or CoNLL", file_types=[".csv", ".tsv", ".jsonl", ".json",
                             ".txt", ".conll", ".iob", ".xlsx"], elem_id="upload")  # fmt: skip
            task = gr.Radio(TASK_CHOICES, value="sequence", label="Task", elem_id="upload-task")
            label_sep = gr.Textbox(
                ",", label="Label separator (several labels in one cell)", max_lines=1, elem_id="label-sep",
                info="multi-label cells such as sports,politics; a JSON list works too",
            )  # fmt: skip
            with gr.Row():
                text_col = gr.Dropdown([], label=COLUMN_LABELS["sequence"][0], allow_custom_value=True)
                pair_col = gr.Dropdown([], label="Second text column", visible=False, allow_custom_value=True)
                label_col = gr.Dropdown([], label=COLUMN_LABELS["sequence"][2], allow_custom_value=True)
            with gr.Row():
                split_col = gr.Dropdown(
                    [], label="Split column (train / dev / test per row)", allow_custom_value=True,
                    elem_id="split-col",
                )  # fmt: skip
                import_as = gr.Radio(
                    IMPORT_AS, value="train", label="Import as (rows without a split)", elem_id="import-as",
                    info="a test file for a dataset you have: give that dataset's name and choose test",
                )  # fmt: skip
            name = gr.Textbox(label="Dataset name", placeholder="e.g. reviews", elem_id="dataset-name")
            import_btn = gr.Button("Import", variant="primary", elem_id="import")
            status = gr.Markdown(elem_id="import-status")
            with gr.Group(
                visible=False, elem_id="ask-lists"
            ) as ask_box:  # nothing is imported until answered
                ask_md = gr.Markdown(elem_id="ask-lists-text")
                with gr.Row():
                    as_multi = gr.Button("Import as multi-label", variant="primary", elem_id="ask-multilabel")
                    as_single = gr.Button("Import as one label each", elem_id="ask-single")
            preview = gr.Dataframe(
                label="Preview (first rows)",
                interactive=False,
                wrap=True,
                max_height=320,
                visible=False,  # hidden while empty: an empty Dataframe shows placeholder headers "1 2 3"
                elem_classes="ft-wrap",
                elem_id="preview",
            )
            dist_plot = gr.BarPlot(
                x="label",
                y="count",
                title="Label distribution",
                height=220,
                y_lim=[0, None],
                visible=False,
                x_label_angle=-40,  # long label names overlapped side by side
            )
        with gr.Column(scale=3):
            gr.Markdown("### Datasets")
            table = gr.Dataframe(
                value=lambda: datasets_table(ctx),
                interactive=False,
                max_height=220,
                wrap=True,
                elem_classes="ft-wrap",  # the label counts of many labels were cut at the right edge
            )
            chosen = gr.Dropdown(label="Dataset", choices=dataset_choices(ctx), elem_id="browse-dataset")
            with gr.Row():
                search = gr.Textbox(label="Search", placeholder="words in the text", scale=3)
                status_filter = gr.Radio(["all", "labeled", "unlabeled"], value="all", label="Show", scale=2)
                page = gr.Number(value=1, label="Page", precision=0, minimum=1, scale=1)
            page_info = gr.Markdown()
            examples = gr.Dataframe(
                value=pd.DataFrame(columns=BROWSE_COLUMNS["sequence"]),
                interactive=False,
                wrap=True,
                max_height=420,
                elem_classes="ft-wrap",
                elem_id="browse-examples",
            )
            with gr.Accordion("Move examples to a split", open=False):
                with gr.Row():
                    move_ids = gr.Textbox(
                        label="Example ids", placeholder="3, 5-9", scale=2, elem_id="move-ids"
                    )
                    move_split = gr.Radio(IMPORT_AS, value="test", label="to", scale=2, elem_id="move-split")
                    move_btn = gr.Button("Move", scale=1, elem_id="move-go")
                move_msg = gr.Markdown()
            with gr.Row():
                fmt = gr.Dropdown(["csv", "jsonl", "conll"], value="csv", label="Export as", scale=1)
                export_btn = gr.Button("Export", scale=1)
                download = gr.File(label="Download", interactive=False, scale=2, height=80)
            with gr.Accordion("Delete dataset", open=False):
                sure = gr.Checkbox(label="I am sure: delete the dataset, its examples and its finished jobs")
                delete_btn = gr.Button("Delete", variant="stop")
                delete_msg = gr.Markdown()

    def on_preview(path, task_):
        r = preview_upload(path, task_)
        task_ = r.get("task", task_)
        shape, problem = _kind(task_)
        cols = [NONE, *r["columns"]]
        roles = r["roles"]
        first, second, label = COLUMN_LABELS[shape]
        return (
            r["message"],
            gr.update(value=r["rows"], visible=not r["rows"].empty),
            gr.update(choices=cols, value=roles.get("text") or NONE, label=first),
            gr.update(
                choices=cols, value=roles.get("text_pair") or NONE, visible=shape == "pair", label=second
            ),
            gr.update(choices=cols, value=roles.get("label") or NONE, label=label),
            gr.update(choices=cols, value=r.get("split_col") or NONE, visible=r.get("splittable", True)),
            gr.update(value=r["name"]) if r["name"] else gr.update(),
            task_,
            gr.update(visible=False),  # the last import's chart is not this file's
            gr.update(visible=False),  # a question about another file (or task) is void
            gr.update(visible=shape != "token" and problem != "regression"),
        )

    preview_outputs = [
        status, preview, text_col, pair_col, label_col, split_col, name, task, dist_plot, ask_box, label_sep,
    ]  # fmt: skip
    upload.change(on_preview, [upload, task], preview_outputs)
    task.input(
        on_preview, [upload, task], preview_outputs
    )  # input: the task set by a preview is no new event

    def on_import(path, task_, name_, tc, pc, lc, sc, split, sep, answer=None):
        """``answer``: None (Import pressed), "multilabel" or "single" (the list question answered)."""
        kind = join_kind(_kind(task_)[0], "multilabel") if answer == "multilabel" else task_
        r = import_upload(
            ctx, path, kind, name_, tc, pc, lc, sc, split, sep, lists_as_single=answer == "single"
        )
        choices = dataset_choices(ctx)
        chart = r["ok"] and not r["distribution"].empty  # a score dataset has no label counts to chart
        return (
            "" if r["ask"] else r["message"],  # the question is shown once, beside its two answers
            gr.update(value=r["distribution"], visible=chart),
            datasets_table(ctx),
            gr.update(choices=choices, value=r["dataset_id"]) if r["ok"] else gr.update(choices=choices),
            r["dataset_id"],
            gr.update(visible=bool(r["ask"])),
            r["ask"] or "",
            r["kind"] if r["ok"] else gr.skip(),  # answered "multi-label": the task shows it
        )

    imported_id = gr.State(None)  # the dataset just imported: the Train tab switches to it
    import_inputs = [upload, task, name, text_col, pair_col, label_col, split_col, import_as, label_sep]
    import_outputs = [status, dist_plot, table, chosen, imported_id, ask_box, ask_md, task]
    for trigger, answer in ((import_btn, None), (as_multi, "multilabel"), (as_single, "single")):
        imported = trigger.click(
            lambda *a, answer=answer: on_import(*a, answer=answer), import_inputs, import_outputs
        )
        for refresh in refresh_datasets:
            imported.then(refresh["fn"], [*refresh["inputs"], imported_id], refresh["outputs"])

    browse_inputs = [chosen, search, status_filter, page]
    for trigger in (chosen.change, search.submit, status_filter.change, page.submit):
        trigger(lambda *a: browse(ctx, *a), browse_inputs, [examples, page_info])
    export_btn.click(lambda d, f: export_dataset(ctx, d, f), [chosen, fmt], download)
    move_btn.click(
        lambda d, i, sp, *b: (move_to_split(ctx, d, i, sp), browse(ctx, d, *b)[0]),
        [chosen, move_ids, move_split, search, status_filter, page],
        [move_msg, examples],
        api_visibility="undocumented",
    )

    def on_delete(dataset_id, confirmed):
        msg = delete_dataset(ctx, dataset_id, confirmed)
        return msg, datasets_table(ctx), gr.update(choices=dataset_choices(ctx), value=None), False

    deleted = delete_btn.click(on_delete, [chosen, sure], [delete_msg, table, chosen, sure])
    for refresh in refresh_datasets:
        deleted.then(refresh["fn"], refresh["inputs"], refresh["outputs"])
    return {"on_load": {"fn": lambda: gr.update(choices=dataset_choices(ctx)), "outputs": [chosen]}}
