"""Try tab, "Predict a file": upload a file (or pick a dataset) for the chosen model, watch, download the result.

The prediction runs in the worker as a ``predict`` job (`worker_predict`), never in this process: a large file
takes minutes of CPU. The section polls the job with a `gr.Timer` like the Train tab, so a reload or a closed
tab loses nothing.
"""

from __future__ import annotations

import secrets

import gradio as gr
from sqlalchemy.exc import SQLAlchemyError

from storage import repo
from storage.conll import DataError
from storage.job_requests import queue_predict_job
from storage.writers import write_examples
from ui.common import TERMINAL, Ctx, dataset_choices, esc, user_message


def start_prediction(
    ctx: Ctx,
    model_job_id: int | None,
    path: str | None = None,
    dataset_id: int | None = None,
    text_col: str | None = None,
    text_pair_col: str | None = None,
) -> dict:
    """Queue a ``predict`` job for an uploaded file, or for every example of a dataset.

    Returns:
        ``{"ok", "message", "job_id"}``.
    """
    fail = {"ok": False, "job_id": None}
    if not model_job_id:
        return {**fail, "message": "Choose a trained model first."}
    if not path and not dataset_id:
        return {**fail, "message": "Upload a file (CSV, TSV, JSONL, XLSX or CoNLL) or choose a dataset."}
    try:
        if not path:
            path = _dataset_file(ctx, int(dataset_id))
        job_id = queue_predict_job(
            ctx.sessions,
            ctx.settings.data_dir,
            int(model_job_id),
            path,
            text_col or None,
            text_pair_col or None,
        )
    except (DataError, ValueError, KeyError, OSError) as err:
        return {**fail, "message": f"**Cannot predict this file.** {esc(err)}"}
    except SQLAlchemyError as err:
        return {**fail, "message": esc(user_message(err))}
    return {"ok": True, "job_id": job_id, "message": f"Prediction job **#{job_id}** queued."}


def _dataset_file(ctx: Ctx, dataset_id: int) -> str:
    """The dataset written to a file the job can read (JSONL: token lists stay lists)."""
    with ctx.sessions() as s:
        ds = repo.get_dataset(s, dataset_id)
        rows = repo.examples_for_export(s, dataset_id)
        task, name = ds.task, "".join(c if c.isalnum() else "-" for c in ds.name)[:60] or "dataset"
    out = ctx.settings.data_dir / "uploads" / secrets.token_urlsafe(16) / f"{name}.jsonl"
    out.parent.mkdir(parents=True)
    write_examples(rows, out, "jsonl", task)
    return str(out)


def prediction_status(ctx: Ctx, job_id: int | None) -> dict:
    """Where a predict job stands, as plain values.

    Returns:
        ``{"status", "progress", "message", "file"}``; ``file`` is the output's path once completed, else None.
    """
    if not job_id:
        return {"status": None, "progress": 0.0, "message": "", "file": None}
    with ctx.sessions() as s:
        v = repo.job_view(s, int(job_id))
    if v["kind"] != "predict":
        raise ValueError(f"job #{job_id} is not a prediction job")
    out = (v["metrics"] or {}).get("output") if v["status"] == "completed" else None
    done, total = v["step"] or 0, v["total_steps"]
    if v["status"] == "completed":
        message = f"Done: {v['metrics']['rows']:,} rows predicted."
    elif v["status"] == "failed":
        message = f"Failed: {v['error']}"
    elif v["status"] == "queued":
        message = "Queued: the worker starts it after the job it is running."
    else:
        message = f"{v['message'] or v['status']}" + (f": {done:,} / {total:,} rows" if total else "")
    progress = 1.0 if v["status"] == "completed" else float(v["progress"] or 0.0)
    return {"status": v["status"], "progress": progress, "message": message, "file": out}


def progress_html(state: dict) -> str:
    """The progress bar, in the Train tab's style (classes from app.CSS)."""
    if not state["status"]:
        return ""
    return (
        f'<div class="ft-progress ft-{esc(state["status"])}"><div class="ft-bar" '
        f'style="width:{state["progress"] * 100:.1f}%"></div></div>'
        f'<div class="ft-progress-text">{esc(state["message"])}</div>'
    )


def build_predict_file_section(ctx: Ctx, model: gr.Dropdown) -> dict:
    """The section, below the Try tab's single-text form; `model` is that tab's model dropdown."""
    with gr.Accordion("Predict a file", open=False, elem_id="predict-file"):
        gr.Markdown(
            "Every row of a CSV, TSV, JSONL, XLSX or CoNLL file (or every example of a dataset) through the model "
            "above. The result is the file with its columns plus `label`, `score` and one `p_<class>` column per "
            "class (token models: `tags` and `entities` as JSON). It runs in the background worker."
        )
        with gr.Row():
            upload = gr.File(
                label="File to predict", file_types=None, type="filepath", elem_id="predict-upload"
            )
            with gr.Column():
                dataset = gr.Dropdown(
                    label="…or a dataset", choices=[], value=None, elem_id="predict-dataset"
                )
                text_col = gr.Textbox(label="Text column (guessed when empty)", elem_id="predict-text-col")
                pair_col = gr.Textbox(label="Second text column (pair models)")
        go = gr.Button("Predict the file", variant="primary", elem_id="predict-file-go")
        note = gr.Markdown(elem_id="predict-file-note")
        bar = gr.HTML(elem_id="predict-file-progress")
        result = gr.File(label="Predictions", interactive=False, elem_id="predict-file-result")
        job = gr.State(None)
        timer = gr.Timer(ctx.settings.poll_s, active=False)

    def on_go(model_id, path, dataset_id, text, pair):
        r = start_prediction(ctx, model_id, path, dataset_id, text, pair)
        return r["message"], r["job_id"], gr.Timer(active=r["ok"]), None, ""

    def on_tick(job_id):
        st = prediction_status(ctx, job_id)
        return progress_html(st), st["file"], gr.Timer(active=st["status"] not in TERMINAL)

    go.click(on_go, [model, upload, dataset, text_col, pair_col], [note, job, timer, result, bar])
    timer.tick(on_tick, [job], [bar, result, timer], show_progress="hidden")
    return {
        "refresh": {"fn": lambda: gr.update(choices=dataset_choices(ctx, counts=False)), "outputs": [dataset]}
    }
