"""Train tab: the form (sensible defaults: a first-time user only presses Start), the live view, job history."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import gradio as gr
import pandas as pd

from storage import repo
from ui.common import Ctx, dataset_choices, esc, fmt_duration, fmt_num, job_choices

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # = finetuner.DEFAULT_MODEL, repeated so this module does not import torch
MODES = ["full", "frozen", "top-1", "top-2", "top-3"]
FORM_DEFAULTS = {  # what TrainConfig would choose; 0 means "the mode's default" for lr and epochs
    "model": DEFAULT_MODEL, "mode": "full", "pair_encoding": "cross", "pooling": "auto", "optimizer": "adamw",
    "lr": 0.0, "schedule": "linear", "warmup": 0.06, "epochs": 0, "batch_size": 32, "max_length": 128,
    "eval_split": 0.1, "early_stopping_patience": 0, "seed": 42,
}  # fmt: skip
FORM_FIELDS = list(FORM_DEFAULTS)
PLOT_POINTS = 300  # loss points sent per curve: enough for a smooth line, small enough to keep polls fast


# --- handlers ----------------------------------------------------------------------------------------------------


def start_job(ctx: Ctx, dataset_id: int | None, *values) -> dict:
    """Validate the form into a TrainConfig and queue a job.

    Args:
        ctx: app context.
        dataset_id: the dataset to train on.
        values: the form values in `FORM_FIELDS` order (missing ones take `FORM_DEFAULTS`).

    Returns:
        ``{"ok", "message", "job_id"}``.
    """
    form = {**FORM_DEFAULTS, **dict(zip(FORM_FIELDS, values, strict=False))}
    if not dataset_id:
        return {"ok": False, "job_id": None, "message": "Choose a dataset (import one in the **Data** tab)."}
    with ctx.sessions() as s:
        try:
            ds = repo.get_dataset(s, int(dataset_id))
        except KeyError:
            return {"ok": False, "job_id": None, "message": "That dataset no longer exists."}
        task = ds.task
        problems = repo.training_problems(s, ds.id)
        n_labeled = repo.count_examples(s, ds.id, status="labeled")
    if problems:
        return {"ok": False, "job_id": None, "message": "\n\n".join(esc(p) for p in problems)}
    settings = {
        "task": task, "output_dir": "", "model": (form["model"] or DEFAULT_MODEL).strip(), "mode": form["mode"],
        "pair_encoding": form["pair_encoding"], "pooling": None if form["pooling"] == "auto" else form["pooling"],
        "optimizer": form["optimizer"], "lr": float(form["lr"]) or None, "schedule": form["schedule"],
        "warmup": float(form["warmup"]), "epochs": int(form["epochs"] or 0) or None,
        "batch_size": int(form["batch_size"]), "max_length": int(form["max_length"]),
        "eval_split": float(form["eval_split"]), "early_stopping_patience": int(form["early_stopping_patience"]),
        "seed": int(form["seed"]), "model_overrides": dict(ctx.settings.model_overrides),
    }  # fmt: skip
    try:
        from finetuner import TrainConfig  # imports torch: only now, not when the app starts

        config = TrainConfig.from_dict(settings)
    except (ValueError, TypeError) as err:
        return {"ok": False, "job_id": None, "message": f"**Check the settings:** {esc(err)}"}
    steps = math.ceil(n_labeled * (1 - config.eval_split) / config.batch_size) * config.epochs
    config.log_every = max(1, steps // 500)  # the live plot wants points; more than ~500 only cost writes
    with ctx.sessions() as s:
        job = repo.create_job(s, ds.id, config.to_dict())
        queued_before = len(repo.list_jobs(s, status="queued")) - 1 + len(repo.list_jobs(s, status="running"))
    wait = f" ({queued_before} job(s) ahead in the queue)" if queued_before else ""
    return {"ok": True, "job_id": job.id, "message": f"Job **#{job.id}** queued{wait}."}


def poll(ctx: Ctx, job_id: int | None) -> dict:
    """Everything the live view draws for one job, from the database (a reload shows the same).

    Returns:
        ``{"status", "active", "signature", "status_md", "progress_html", "loss": DataFrame(step, loss, series),
        "epochs": DataFrame, "per_class": DataFrame, "confusion_html", "can_cancel", "can_resume"}``.
    """
    if not job_id:
        return _empty_view("No job yet: choose a dataset and press **Start**.")
    with ctx.sessions() as s:
        try:
            v = repo.job_view(s, int(job_id))
        except KeyError:
            return _empty_view(f"Job #{int(job_id)} no longer exists.")
    train_n, eval_n = len(v["loss"]["train"]["step"]), len(v["loss"]["eval"]["step"])
    final = v["metrics"] or (v["evals"][-1]["metrics"] if v["evals"] else {})
    return {
        "status": v["status"],
        "active": v["active"],
        "signature": f"{v['id']}:{v['status']}:{v['step']}:{train_n}:{eval_n}:{v['message']}",
        "status_md": _status_md(v),
        "progress_html": progress_html(v),
        "loss": loss_frame(v),
        "epochs": epochs_frame(v),
        "per_class": per_class_frame(final),
        "confusion_html": confusion_html(final),
        "can_cancel": v["status"] in ("queued", "running"),
        "can_resume": v["status"] == "interrupted",
    }


def loss_frame(view: dict, prefix: str = "") -> pd.DataFrame:
    """Train and eval loss against step as one long table (`series` picks the line), thinned to PLOT_POINTS."""
    parts = []
    for split in ("train", "eval"):
        curve = view["loss"].get(split) or {"step": [], "loss": []}
        steps, losses = curve["step"], curve["loss"]
        keep = max(1, math.ceil(len(steps) / PLOT_POINTS))
        idx = list(range(0, len(steps), keep))
        if steps and idx[-1] != len(steps) - 1:
            idx.append(len(steps) - 1)  # always show the newest point
        if idx:
            parts.append(
                _loss_df([steps[i] for i in idx], [losses[i] for i in idx], [f"{prefix}{split}"] * len(idx))
            )
    return pd.concat(parts, ignore_index=True) if parts else _loss_df([], [], [])


def _loss_df(steps: list, losses: list, series: list) -> pd.DataFrame:
    """Typed columns: the plot reads dtypes, and an empty object column would turn the loss axis nominal."""
    return pd.DataFrame(
        {
            "step": pd.Series(steps, dtype="int64"),
            "loss": pd.Series(losses, dtype="float64"),
            "series": pd.Series(series, dtype="str"),
        }
    )


def epochs_frame(view: dict) -> pd.DataFrame:
    rows, keys = [], ["loss", "accuracy", "macro_f1"]
    for e in view["evals"]:
        m = e["metrics"]
        keys = ["loss", "f1", "precision", "recall"] if "f1" in m else ["loss", "accuracy", "macro_f1"]
        rows.append(
            {
                "epoch": int(e["epoch"]),
                "step": e["step"],
                **{k: round(m.get(k, float("nan")), 4) for k in keys},
                "best": "★" if m.get("is_best") else "",
            }
        )
    return pd.DataFrame(rows, columns=["epoch", "step", *keys, "best"])


def per_class_frame(metrics: dict | None) -> pd.DataFrame:
    per_class = (metrics or {}).get("per_class") or {}
    rows = [
        {"class": name, **{k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()}}
        for name, m in per_class.items()
    ]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def confusion_html(metrics: dict | None) -> str:
    """The confusion matrix as a heat-map table (rows: true label, columns: predicted); labels escaped."""
    metrics = metrics or {}
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if not matrix or not labels:
        return ""
    top = max(max(row) for row in matrix) or 1
    head = "".join(f"<th>{esc(label)}</th>" for label in labels)
    body = []
    for label, row in zip(labels, matrix, strict=False):
        cells = []
        for i, n in enumerate(row):
            alpha = 0.08 + 0.85 * n / top
            color = "255,255,255" if alpha > 0.5 else "17,24,39"
            diag = " ft-diag" if labels.index(label) == i else ""
            cells.append(
                f'<td class="ft-cell{diag}" style="background:rgba(37,99,235,{alpha:.2f});'
                f'color:rgb({color})">{n}</td>'
            )
        body.append(f"<tr><th>{esc(label)}</th>{''.join(cells)}</tr>")
    return (
        '<div class="ft-confusion"><div class="ft-caption">Confusion matrix (rows: true, columns: predicted)'
        f"</div><table><tr><th></th>{head}</tr>{''.join(body)}</table></div>"
    )


def progress_html(view: dict) -> str:
    pct = 100.0 * (view["progress"] or 0.0)
    status = view["status"]
    bits = []
    if view["total_steps"]:
        bits.append(f"step {view['step'] or 0}/{view['total_steps']}")
    bits.append(f"{pct:.0f}%")
    if status in ("running", "cancelling") and view["eta_s"] is not None:
        bits.append(f"ETA {fmt_duration(view['eta_s'])}")
    if view["examples_per_s"]:
        bits.append(f"{view['examples_per_s']:.1f} examples/s")
    return (
        f'<div class="ft-progress ft-{status}" data-progress="{pct:.1f}"><div class="ft-bar" '
        f'style="width:{pct:.1f}%"></div></div><div class="ft-progress-text">{esc(" · ".join(bits))}</div>'
    )


def _status_md(v: dict) -> str:
    head = f"**Job #{v['id']}** · {esc(v['dataset_name'] or '?')} · status **{v['status']}**"
    lines = [head]
    if v["message"] and v["status"] in ("running", "cancelling", "interrupted", "queued"):
        lines.append(esc(v["message"]))
    if v["status"] == "failed" and v["error"]:
        lines.append(f"❌ **Failed:** {esc(v['error'][-1500:])}")
    if v["status"] == "interrupted":
        lines.append(
            "The worker stopped before this job ended. **Resume** continues from the last checkpoint; "
            "**Discard** drops it."
        )
    if v["status"] == "completed" and v["metrics"]:
        m = v["metrics"]
        score = ", ".join(f"{k} {fmt_num(m[k])}" for k in ("accuracy", "macro_f1", "f1", "loss") if k in m)
        lines.append(f"✔ Done. Best epoch {m.get('epoch', '?')}: {score}. Try it in the **Try** tab.")
    return "\n\n".join(lines)


def _empty_view(message: str) -> dict:
    return {
        "status": None,
        "active": False,
        "signature": message,
        "status_md": message,
        "progress_html": "",
        "loss": _loss_df([], [], []),
        "epochs": epochs_frame({"evals": []}),
        "per_class": per_class_frame({}),
        "confusion_html": "",
        "can_cancel": False,
        "can_resume": False,
    }


def cancel_job(ctx: Ctx, job_id: int | None) -> str:
    if not job_id:
        return ""
    with ctx.sessions() as s:
        status = repo.request_cancel(s, int(job_id))
    return f"Job #{int(job_id)}: {status}."


def resume_job(ctx: Ctx, job_id: int | None) -> str:
    if not job_id:
        return ""
    with ctx.sessions() as s:
        try:
            job = repo.requeue_for_resume(s, int(job_id))
        except ValueError as err:
            return esc(err)
    return f"Job #{job.id} queued to resume."


def discard_job(ctx: Ctx, job_id: int | None) -> str:
    """Drop an interrupted job: it becomes cancelled and its checkpoint folder is removed."""
    if not job_id:
        return ""
    with ctx.sessions() as s:
        status = repo.request_cancel(s, int(job_id))
        job = repo.get_job(s, int(job_id))
    if (
        status == "cancelled"
        and job.checkpoint_dir
        and Path(job.checkpoint_dir).is_relative_to(ctx.settings.models_dir)
    ):
        shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    return f"Job #{int(job_id)} discarded."


def jobs_table(ctx: Ctx) -> pd.DataFrame:
    """Job history, newest first (the queue included)."""
    with ctx.sessions() as s:
        jobs = repo.list_jobs(s)
        rows = []
        for j in jobs:
            m = j.metrics or {}
            took = (j.finished_at - j.started_at).total_seconds() if j.finished_at and j.started_at else None
            rows.append(
                {
                    "job": j.id,
                    "status": j.status,
                    "dataset": j.dataset.name if j.dataset else "",
                    "model": j.config.get("model", ""),
                    "mode": j.config.get("mode", ""),
                    "epochs": j.config.get("epochs"),
                    "score": fmt_num(m.get("accuracy", m.get("f1"))),
                    "progress": f"{100 * (j.progress or 0):.0f}%",
                    "took": fmt_duration(took) if took else "",
                    "created (UTC)": j.created_at.strftime("%Y-%m-%d %H:%M"),
                }
            )
    return pd.DataFrame(rows)


def overlay(ctx: Ctx, job_a: int | None, job_b: int | None) -> pd.DataFrame:
    """Two jobs' train and eval curves in one table, series named by job, to compare them on one plot."""
    frames = []
    for job_id in (job_a, job_b):
        if job_id:
            with ctx.sessions() as s:
                frames.append(loss_frame(repo.job_view(s, int(job_id)), prefix=f"#{int(job_id)} "))
    return pd.concat(frames, ignore_index=True) if frames else _loss_df([], [], [])


def latest_job_id(ctx: Ctx) -> int | None:
    """The job to show on page load: the running one, else the newest."""
    with ctx.sessions() as s:
        jobs = repo.list_jobs(s)
    active = [j for j in jobs if j.status in ("running", "cancelling")]
    pick = active or jobs
    return pick[0].id if pick else None


# --- the tab -------------------------------------------------------------------------------------------------------


def build_train_tab(ctx: Ctx) -> dict:
    """The form on the left, the live view on the right, history and comparison below.

    Returns:
        Components other tabs refresh: ``{"dataset": Dropdown, "refresh_datasets": {"fn", "outputs"}}``.
    """
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            dataset = gr.Dropdown(label="Dataset", choices=dataset_choices(ctx), elem_id="train-dataset")
            model = gr.Textbox(value=DEFAULT_MODEL, label="Model", info="bundled default, a Hugging Face hub id, "
                               "or a local folder")  # fmt: skip
            mode = gr.Dropdown(
                MODES,
                value="full",
                label="Mode",
                allow_custom_value=True,
                info="frozen: train the head only (fast) · full: fine-tune all · top-N: last N layers",
            )
            with gr.Accordion("More settings", open=False):
                with gr.Row():
                    epochs = gr.Number(value=0, label="Epochs (0 = auto)", precision=0, minimum=0)
                    lr = gr.Number(value=0.0, label="Learning rate (0 = auto)", minimum=0)
                with gr.Row():
                    batch_size = gr.Number(value=32, label="Batch size", precision=0, minimum=1)
                    max_length = gr.Number(value=128, label="Max length (tokens)", precision=0, minimum=8)
                with gr.Row():
                    optimizer = gr.Dropdown(["adamw", "adam", "sgd"], value="adamw", label="Optimiser")
                    schedule = gr.Dropdown(["linear", "cosine", "constant"], value="linear", label="Schedule")
                with gr.Row():
                    warmup = gr.Slider(0, 0.5, value=0.06, step=0.01, label="Warmup (fraction of steps)")
                    eval_split = gr.Slider(0, 0.5, value=0.1, step=0.05, label="Eval split")
                with gr.Row():
                    pair_encoding = gr.Dropdown(["cross", "concat"], value="cross", label="Pair encoding")
                    pooling = gr.Dropdown(["auto", "mean", "cls"], value="auto", label="Pooling")
                with gr.Row():
                    patience = gr.Number(
                        value=0, label="Early stopping patience (0 = off)", precision=0, minimum=0
                    )
                    seed = gr.Number(value=42, label="Seed", precision=0)
            start = gr.Button("Start training", variant="primary", elem_id="start")
            start_msg = gr.Markdown(elem_id="start-msg")
        with gr.Column(scale=3):
            with gr.Row():
                job = gr.Dropdown(label="Job", choices=job_choices(ctx), elem_id="job", scale=4)
                cancel = gr.Button("Cancel", visible=False, scale=1, variant="stop", elem_id="cancel")
                resume = gr.Button("Resume", visible=False, scale=1, elem_id="resume")
                discard = gr.Button("Discard", visible=False, scale=1, elem_id="discard")
            status_md = gr.Markdown(elem_id="job-status")
            progress = gr.HTML(elem_id="job-progress")
            loss_plot = gr.LinePlot(
                x="step",
                y="loss",
                color="series",
                title="Loss",
                height=300,
                color_map={"train": "#2563eb", "eval": "#f97316"},
                elem_id="loss-plot",
            )
            epochs_table = gr.Dataframe(label="Metrics per epoch", interactive=False, elem_id="epochs")
            with gr.Row():
                per_class = gr.Dataframe(label="Per-class report", interactive=False)
                confusion = gr.HTML(elem_id="confusion")
    with gr.Accordion("Job history and comparison", open=False):
        history = gr.Dataframe(value=lambda: jobs_table(ctx), interactive=False, max_height=300)
        with gr.Row():
            job_a = gr.Dropdown(label="Compare job", choices=job_choices(ctx))
            job_b = gr.Dropdown(label="with job", choices=job_choices(ctx))
        compare_plot = gr.LinePlot(
            x="step", y="loss", color="series", title="Loss curves compared", height=280
        )

    timer = gr.Timer(ctx.settings.poll_s)
    seen = gr.State("")  # signature of what is drawn: an unchanged job is not redrawn every tick

    view_outputs = [
        status_md,
        progress,
        loss_plot,
        epochs_table,
        per_class,
        confusion,
        cancel,
        resume,
        discard,
        seen,
    ]

    def render(job_id, last):
        v = poll(ctx, job_id)
        if v["signature"] == last:
            return [gr.skip()] * len(view_outputs)
        return [
            v["status_md"],
            v["progress_html"],
            v["loss"],
            v["epochs"],
            v["per_class"],
            v["confusion_html"],
            gr.update(visible=v["can_cancel"]),
            gr.update(visible=v["can_resume"]),
            gr.update(visible=v["can_resume"]),
            v["signature"],
        ]

    def refresh_jobs(selected=None):
        choices = job_choices(ctx)
        return (
            gr.update(choices=choices, value=selected) if selected else gr.update(choices=choices),
            gr.update(choices=choices),
            gr.update(choices=choices),
            jobs_table(ctx),
        )

    timer.tick(render, [job, seen], view_outputs, show_progress="hidden")
    job.change(lambda j: render(j, None), [job], view_outputs, show_progress="hidden")

    def on_start(dataset_id, *values):
        r = start_job(ctx, dataset_id, *values)
        return (r["message"], *refresh_jobs(r["job_id"]))

    form = [
        model,
        mode,
        pair_encoding,
        pooling,
        optimizer,
        lr,
        schedule,
        warmup,
        epochs,
        batch_size,
        max_length,
        eval_split,
        patience,
        seed,
    ]
    assert len(form) == len(FORM_FIELDS)
    start.click(on_start, [dataset, *form], [start_msg, job, job_a, job_b, history])
    for button, fn in ((cancel, cancel_job), (resume, resume_job), (discard, discard_job)):
        button.click(lambda j, fn=fn: fn(ctx, j), [job], start_msg).then(
            lambda j: refresh_jobs(j), [job], [job, job_a, job_b, history]
        ).then(lambda j: render(j, None), [job], view_outputs)
    for dd in (job_a, job_b):
        dd.change(lambda a, b: overlay(ctx, a, b), [job_a, job_b], compare_plot)
    history_seen = gr.State("")

    def render_history(last):
        table = jobs_table(ctx)
        signature = table.to_json()
        return (gr.skip(), last) if signature == last else (table, signature)

    timer.tick(render_history, [history_seen], [history, history_seen], show_progress="hidden")

    def refresh_datasets(current):
        """New choices; with none chosen yet, the newest dataset (what a first-time user just imported)."""
        choices = dataset_choices(ctx)
        ids = [i for _, i in choices]
        value = current if current in ids else (max(ids) if ids else None)
        return gr.update(choices=choices, value=value)

    return {
        "dataset": dataset,
        "on_load": {"fn": lambda: refresh_jobs(latest_job_id(ctx)), "outputs": [job, job_a, job_b, history]},
        "refresh_datasets": {"fn": refresh_datasets, "inputs": [dataset], "outputs": [dataset]},
    }
