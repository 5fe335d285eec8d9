"""Models tab: trained models with their metrics; download as a zip (Hugging Face format, ready when the model is
chosen: the worker zipped it when it saved it); evaluate on a labeled dataset or file (`ui.evaluate`); push to the
Hugging Face Hub; delete."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import gradio as gr
import pandas as pd

from finetuner import hub
from storage import repo
from ui.common import Ctx, esc, fmt_num, headline_text, model_choices, no_models_hint
from ui.evaluate import build_evaluate_section
from ui.problems import PROBLEM_NAMES, problem_of, scores_line

MODEL_COLUMNS = ["job", "dataset", "task", "problem", "model", "mode", "score", "test score", "metrics", "eval loss",
                 "epoch", "size", "trained (UTC)"]  # fmt: skip


def models_table(ctx: Ctx) -> pd.DataFrame:
    """Completed jobs whose model folder exists, with their metrics."""
    rows = []
    with ctx.sessions() as s:
        for j in repo.list_jobs(s, status="completed", kind="train"):
            if not (j.model_dir and Path(j.model_dir, "finetuner.json").exists()):
                continue
            m, problem = j.metrics or {}, problem_of(j.config)
            size = sum(f.stat().st_size for f in Path(j.model_dir).rglob("*") if f.is_file())
            rows.append(
                {
                    "job": j.id,
                    "dataset": j.dataset.name if j.dataset else "",
                    "task": j.config.get("task"),
                    "problem": PROBLEM_NAMES[problem],
                    "model": j.config.get("model"),
                    "mode": j.config.get("mode"),
                    # entity F1 for token models, macro-F1 for multi-label ones, Pearson for score models
                    "score": headline_text(m, j.config.get("task"), problem=problem),
                    # the held-out test split's score ("" when the dataset had none)
                    "test score": headline_text(m.get("test"), j.config.get("task"), problem=problem),
                    # a multi-label or score model's own figures; accuracy and macro-F1 (or F1) otherwise
                    "metrics": scores_line(m, problem, bold=False)
                    or f"accuracy {fmt_num(m.get('accuracy'))}, macro_f1 / f1 "
                    f"{fmt_num(m.get('macro_f1', m.get('f1')))}",
                    "eval loss": fmt_num(m.get("loss")),
                    "epoch": m.get("epoch"),
                    "size": f"{size / 1e6:.0f} MB",
                    "trained (UTC)": j.finished_at.strftime("%Y-%m-%d %H:%M") if j.finished_at else "",
                }
            )
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)  # the columns even when empty: Gradio would show "1 2 3"


def download_model(ctx: Ctx, job_id: int | None) -> str | None:
    """The model folder's zip (config.json, weights, tokenizer, card, finetuner.json), ready to serve.

    The worker zips a folder as it saves it, so this only links that zip into a fresh unguessable folder under
    exports (the folder Gradio may serve); a folder without an up-to-date zip (saved before) is zipped now, once.
    """
    if not job_id:
        return None
    with ctx.sessions() as s:
        job = repo.get_job(s, int(job_id))
    if not job.model_dir or not Path(job.model_dir).is_dir():
        raise gr.Error(f"job #{job.id} has no model folder")
    source = hub.ready_zip(job.model_dir)
    # a random folder, as for data exports: files there are served by path
    out = ctx.settings.exports_dir / secrets.token_urlsafe(16) / f"finetuner-model-{job.id}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, out)  # no copy: the same bytes under a second name
    except OSError:  # exports on another file system (or links refused): copy
        shutil.copyfile(source, out)
    return str(out)


def on_choose(ctx: Ctx, job_id: int | None):
    """The download button for the chosen model: its zip and size on the label, enabled at once."""
    if not job_id:
        return gr.update(value=None, label="Download zip", interactive=False)
    path = Path(download_model(ctx, job_id))
    return gr.update(
        value=str(path), label=f"Download {path.name} ({path.stat().st_size / 1e6:.0f} MB)", interactive=True
    )


def push_model(ctx: Ctx, job_id: int | None, repo_id: str, token: str, public: bool) -> str:
    """Push the chosen model folder to the Hub: the user's token, else the server's HF_TOKEN; private unless asked."""
    if not job_id:
        return "Choose a model."
    if not (repo_id or "").strip():
        return "Give the Hub repository as **user/name**."
    with ctx.sessions() as s:
        job = repo.get_job(s, int(job_id))
    if not job.model_dir or not Path(job.model_dir).is_dir():
        return f"Job #{job.id} has no model folder."
    try:
        url = hub.push(
            job.model_dir, repo_id.strip(), token=(token or "").strip() or None, private=not public
        )
    except hub.PushError as exc:
        return f"Not pushed: {esc(exc)}"
    return f"Pushed the model of job #{job.id} to [{esc(repo_id.strip())}]({url}) ({'public' if public else 'private'})."


def delete_model(ctx: Ctx, job_id: int | None, confirmed: bool) -> str:
    """Remove a model folder (the job stays in the history with its curves and metrics)."""
    if not job_id:
        return "Choose a model."
    if not confirmed:
        return "Tick **I am sure** to delete."
    with ctx.sessions() as s:
        job = repo.get_job(s, int(job_id))
    folder = Path(job.model_dir or "")
    if not job.model_dir or not folder.resolve().is_relative_to(ctx.settings.models_dir.resolve()):
        return "This model is not in the app's models folder; not deleted."
    shutil.rmtree(folder, ignore_errors=True)
    hub.zip_path(folder).unlink(missing_ok=True)
    return f"Deleted the model of job #{job.id} ({esc(folder.name)})."


def build_models_tab(ctx: Ctx) -> dict:
    hint = gr.Markdown(value=lambda: no_models_hint(model_choices(ctx)), elem_id="models-hint")
    table = gr.Dataframe(value=lambda: models_table(ctx), interactive=False, elem_id="models-table")
    with gr.Row():
        chosen = gr.Dropdown(label="Model", choices=model_choices(ctx), scale=2)
        download = gr.DownloadButton("Download zip", interactive=False, scale=1, elem_id="model-download")
    evaluate = build_evaluate_section(ctx, chosen)
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            repo_id = gr.Textbox(label="Repository", placeholder="user/name", scale=2)
            token = gr.Textbox(
                label="Token (write access)",
                type="password",
                placeholder="empty: the server's HF_TOKEN",
                scale=2,
            )
            public = gr.Checkbox(label="Public (default: private)", scale=1)
        push_btn = gr.Button("Push")
        push_msg = gr.Markdown()
    with gr.Accordion("Delete model", open=False):
        sure = gr.Checkbox(label="I am sure: delete this model's folder")
        delete_btn = gr.Button("Delete", variant="stop")
        msg = gr.Markdown()
    chosen.change(lambda j: on_choose(ctx, j), [chosen], download, api_visibility="undocumented")
    push_btn.click(
        lambda j, r, t, p: push_model(ctx, j, r, t, p),
        [chosen, repo_id, token, public],
        push_msg,
        api_visibility="undocumented",
    )

    def on_delete(job_id, confirmed):
        said = delete_model(ctx, job_id, confirmed)
        choices = model_choices(ctx)
        return said, no_models_hint(choices), models_table(ctx), gr.update(choices=choices, value=None), False

    delete_btn.click(on_delete, [chosen, sure], [msg, hint, table, chosen, sure])

    def refresh():
        choices = model_choices(ctx)
        update = gr.update(choices=choices)
        return no_models_hint(choices), models_table(ctx), update, evaluate["refresh"]["fn"]()

    return {"refresh": {"fn": refresh, "outputs": [hint, table, chosen, *evaluate["refresh"]["outputs"]]}}
