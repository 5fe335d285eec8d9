"""Models tab: trained models with their metrics; download as a zip (Hugging Face format); delete."""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pandas as pd

from storage import repo
from ui.common import Ctx, esc, fmt_num, model_choices


def models_table(ctx: Ctx) -> pd.DataFrame:
    """Completed jobs whose model folder exists, with their metrics."""
    rows = []
    with ctx.sessions() as s:
        for j in repo.list_jobs(s, status="completed", kind="train"):
            if not (j.model_dir and Path(j.model_dir, "finetuner.json").exists()):
                continue
            m = j.metrics or {}
            size = sum(f.stat().st_size for f in Path(j.model_dir).rglob("*") if f.is_file())
            rows.append(
                {
                    "job": j.id,
                    "dataset": j.dataset.name if j.dataset else "",
                    "task": j.config.get("task"),
                    "model": j.config.get("model"),
                    "mode": j.config.get("mode"),
                    "accuracy": fmt_num(m.get("accuracy")),
                    "macro_f1 / f1": fmt_num(m.get("macro_f1", m.get("f1"))),
                    "eval loss": fmt_num(m.get("loss")),
                    "epoch": m.get("epoch"),
                    "size": f"{size / 1e6:.0f} MB",
                    "trained (UTC)": j.finished_at.strftime("%Y-%m-%d %H:%M") if j.finished_at else "",
                }
            )
    return pd.DataFrame(rows)


def download_model(ctx: Ctx, job_id: int | None) -> str | None:
    """Zip the model folder (config.json, weights, tokenizer, finetuner.json) and return the zip's path."""
    if not job_id:
        return None
    with ctx.sessions() as s:
        job = repo.get_job(s, int(job_id))
    if not job.model_dir or not Path(job.model_dir).is_dir():
        raise gr.Error(f"job #{job.id} has no model folder")
    out = ctx.settings.exports_dir / f"finetuner-model-{job.id}"
    out.parent.mkdir(parents=True, exist_ok=True)
    return shutil.make_archive(str(out), "zip", root_dir=job.model_dir)


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
    return f"Deleted the model of job #{job.id} ({esc(folder.name)})."


def build_models_tab(ctx: Ctx) -> dict:
    table = gr.Dataframe(value=lambda: models_table(ctx), interactive=False, elem_id="models-table")
    with gr.Row():
        chosen = gr.Dropdown(label="Model", choices=model_choices(ctx), scale=2)
        download_btn = gr.Button("Download zip", scale=1)
        file = gr.File(label="Download", interactive=False, scale=2)
    with gr.Accordion("Delete model", open=False):
        sure = gr.Checkbox(label="I am sure: delete this model's folder")
        delete_btn = gr.Button("Delete", variant="stop")
        msg = gr.Markdown()
    download_btn.click(lambda j: download_model(ctx, j), [chosen], file)

    def on_delete(job_id, confirmed):
        return (
            delete_model(ctx, job_id, confirmed),
            models_table(ctx),
            gr.update(choices=model_choices(ctx)),
            False,
        )

    delete_btn.click(on_delete, [chosen, sure], [msg, table, chosen, sure])
    refresh = lambda: (models_table(ctx), gr.update(choices=model_choices(ctx)))  # noqa: E731
    return {"refresh": {"fn": refresh, "outputs": [table, chosen]}}
