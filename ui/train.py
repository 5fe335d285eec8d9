"""Train tab: the form (sensible defaults: a first-time user only presses Start), job controls, history; the live view is ui/live.py."""

from __future__ import annotations

import math
import shutil
from functools import partial
from pathlib import Path

import gradio as gr

from finetuner.config import BUNDLED_MODELS
from storage import repo
from ui.auto_hint import auto_hint
from ui.common import Ctx, dataset_choices, esc, job_choices
from ui.compare import X_AXES, compare_table, overlay
from ui.language_hint import dataset_hint
from ui.live import epochs_frame, job_just_ended, jobs_table, latest_job_id, per_class_frame, poll
from ui.model_choice import ModelChoiceError, model_policy
from ui.problems import problem_of

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # = finetuner.DEFAULT_MODEL, repeated so this module does not import torch
MODES = ["auto", "full", "frozen", "top-1", "top-2", "top-3"]
PAIR_ENCODINGS = ["auto", "cross", "concat", "siamese"]  # "auto" is None: the engine decides
PAIR_INFO = "auto: siamese, [u, v, |u-v|, u*v] of the two texts, where Auto trains a frozen head; else cross"
FORM_DEFAULTS = {  # what TrainConfig would choose; 0 means "the mode's default" for lr and epochs
    "model": DEFAULT_MODEL, "mode": "auto", "pair_encoding": "auto", "pooling": "auto", "optimizer": "adamw",
    "lr": 0.0, "schedule": "linear", "warmup": 0.06, "epochs": 0, "batch_size": 32, "max_length": 128,
    "eval_split": 0.1, "early_stopping_patience": 0, "seed": 42, "weight_average": "auto", "evals_per_epoch": 0,
    "nproc": 1,
}  # fmt: skip
FORM_FIELDS = list(FORM_DEFAULTS)
# processes (one GPU each) a job may ask for: the app cannot see the workers' devices, so only a sane range here;
# a worker with fewer fails the job saying so (worker_devices.py)
NPROC_RANGE = (1, 16)
WEIGHT_AVERAGE = {"auto": None, "on": 0.9999, "off": 0.0}  # the form's choice -> TrainConfig.ema_decay
COMPARE_COLORS = {"A train": "#2563eb", "A eval": "#93c5fd", "B train": "#ea580c", "B eval": "#fdba74"}


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
        task, problem = ds.task, problem_of(ds)
        plan = repo.training_plan(s, ds.id, float(form["eval_split"]))
        n_labeled = plan["labeled"]
    if plan["problems"]:
        return {"ok": False, "job_id": None, "message": "\n\n".join(esc(p) for p in plan["problems"])}
    try:
        asked = 1.0 if form["nproc"] in (None, "") else float(form["nproc"])  # an emptied box: the default
    except (TypeError, ValueError):
        asked = 0.0
    nproc = int(asked) if asked.is_integer() else 0  # 2.5 processes: refused, not rounded
    if not NPROC_RANGE[0] <= nproc <= NPROC_RANGE[1]:
        return {
            "ok": False, "job_id": None,
            "message": f"**Processes (GPUs):** give a whole number from {NPROC_RANGE[0]} to {NPROC_RANGE[1]} "
            f"(got {esc(form['nproc'])}).",
        }  # fmt: skip
    try:  # the model rule (bundled, hub id, data-dir folder) and, offline, the HF cache: refused before queuing
        model = model_policy(ctx.settings).check(form["model"])
    except ModelChoiceError as err:
        return {"ok": False, "job_id": None, "message": f"**Model:** {esc(err)}"}
    settings = {
        "task": task, "problem": problem, "output_dir": "", "model": model, "mode": form["mode"],
        "pair_encoding": None if form["pair_encoding"] in ("auto", None) else form["pair_encoding"],  # None: Auto
        "pooling": None if form["pooling"] == "auto" else form["pooling"],
        "optimizer": form["optimizer"], "lr": float(form["lr"]) or None, "schedule": form["schedule"],
        "warmup": float(form["warmup"]), "epochs": int(form["epochs"] or 0) or None,
        "batch_size": int(form["batch_size"]), "max_length": int(form["max_length"]),
        "eval_split": float(form["eval_split"]), "early_stopping_patience": int(form["early_stopping_patience"]),
        "seed": int(form["seed"]), "ema_decay": WEIGHT_AVERAGE.get(form["weight_average"], form["weight_average"]),
        "evals_per_epoch": int(form["evals_per_epoch"] or 0) or None,
        "model_overrides": dict(ctx.settings.model_overrides),
        # the classes that have examples: an empty class is dropped, and one whose only example lands in the
        # eval split is still known (the engine's default, the training part's labels, failed on it)
        # a score model has one output, named "score" (the engine's name for it)
        "labels": ["score"] if problem == "regression" else plan["labels"],
    }  # fmt: skip
    try:
        from finetuner import TrainConfig  # imports torch: only now, not when the app starts

        config = TrainConfig.from_dict(settings)
    except (ValueError, TypeError) as err:
        return {"ok": False, "job_id": None, "message": f"**Check the settings:** {esc(err)}"}
    n_train = math.ceil(n_labeled * (1 - config.eval_split))
    steps = (
        math.ceil(n_train / config.batch_size) * config.resolved(n_train).epochs
    )  # auto: epochs by data size
    config.log_every = max(1, steps // 500)  # the live plot wants points; more than ~500 only cost writes
    with ctx.sessions() as s:
        # nproc is the worker's setting (how many processes to launch), not the engine's
        # problem named as well: the worker reads it from the job (an engine that drops unknown keys keeps it)
        job = repo.create_job(s, ds.id, {**config.to_dict(), "problem": problem, "nproc": nproc})
        ahead = jobs_ahead(repo.list_jobs(s), job.id)
    wait = f" ({ahead} job(s) ahead in the queue)" if ahead else ""
    notes = "".join(f"\n\n{esc(n)}" for n in plan["notes"])
    return {"ok": True, "job_id": job.id, "message": f"Job **#{job.id}** queued{wait}.{notes}"}


def jobs_ahead(jobs: list, job_id: int) -> int:
    """Jobs the worker runs before `job_id`: those running and those queued before it (0 once it runs).

    One listing, not a count per status: the worker may claim the new job between two queries, which then
    counted it once as queued (minus itself) and again as running, "1 job(s) ahead" with an empty queue.
    """
    mine = next((j for j in jobs if j.id == job_id), None)
    if mine is None or mine.status != "queued":
        return 0
    order = lambda j: (-j.priority, j.created_at, j.id)  # noqa: E731  (claim_next_job's order)
    return sum(
        j.id != job_id
        and (j.status in ("running", "cancelling") or (j.status == "queued" and order(j) < order(mine)))
        for j in jobs
    )


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


# --- the tab -------------------------------------------------------------------------------------------------------


def build_train_tab(ctx: Ctx) -> dict:
    """The form on the left, the live view on the right, history and comparison below.

    Returns:
        Components other tabs refresh: ``{"dataset": Dropdown, "refresh_datasets": {"fn", "outputs"}}``; ``on_load``
        and ``after_load`` (the hints, once the loaded values are in) for a (re)loaded page.
    """
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            dataset = gr.Dropdown(label="Dataset", choices=dataset_choices(ctx), elem_id="train-dataset")
            # the bundled models (offline) with what each is for; any other value is typed in: hub id or folder
            model = gr.Dropdown(
                [(f"{name} · {about}", name) for name, about in BUNDLED_MODELS.items()],
                value=DEFAULT_MODEL,
                label="Model",
                allow_custom_value=True,
                elem_id="train-model",
                info="a bundled model (works offline), or type a Hugging Face hub id (owner/name) or a folder under "
                "the data dir's models/ or base_models/",
            )
            language_hint = gr.Markdown(elem_id="language-hint")
            mode = gr.Dropdown(
                MODES,
                value="auto",
                label="Mode",
                elem_id="mode",
                allow_custom_value=True,
                info="auto: picked from the data (below) · frozen: train the head only (fast) · full: fine-tune all "
                "· top-N: last N layers",
            )
            auto_line = gr.Markdown(elem_id="auto-line")  # what Auto picks and why, and the ETA, before Start
            with gr.Accordion("More settings", open=False):
                with gr.Row():
                    epochs = gr.Number(value=0, label="Epochs (0 = auto)", precision=0, minimum=0)
                    lr = gr.Number(
                        value=0.0,
                        label="Learning rate (0 = auto)",
                        minimum=0,
                        info="auto: 1e-4, or 5e-5 from 20,000 examples; frozen 3e-3",
                    )
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
                    pair_encoding = gr.Dropdown(
                        PAIR_ENCODINGS, value="auto", label="Pair encoding", info=PAIR_INFO
                    )
                    pooling = gr.Dropdown(["auto", "mean", "cls"], value="auto", label="Pooling")
                with gr.Row():
                    patience = gr.Number(
                        value=0,
                        label="Early stopping patience (0 = off)",
                        precision=0,
                        minimum=0,
                        info="epochs in which no evaluation improved",
                    )
                    evals_per_epoch = gr.Number(
                        value=0,
                        label="Evaluations per epoch (0 = auto)",
                        precision=0,
                        minimum=0,
                        info="the best is kept; auto: 4 from 20,000 examples, else 1",
                    )
                    seed = gr.Number(value=42, label="Seed", precision=0)
                    nproc = gr.Number(
                        value=1,
                        label="Processes (GPUs)",
                        precision=0,
                        minimum=NPROC_RANGE[0],
                        maximum=NPROC_RANGE[1],
                        info="data-parallel, one GPU each; a worker with fewer devices fails the job saying so",
                    )
                weight_average = gr.Radio(
                    list(WEIGHT_AVERAGE),
                    value="auto",
                    label="Weight averaging",
                    info="evaluate and keep a moving average of the weights, in which the last fifth of the steps holds half "
                    "the weight; auto: on from 20,000 examples",
                )
            start = gr.Button("Start training", variant="primary", elem_id="start")
            start_msg = gr.Markdown(elem_id="start-msg")
        with gr.Column(scale=3):
            with gr.Row():
                # custom values: the choices are refreshed per page load, an API client may name a newer job
                job = gr.Dropdown(
                    label="Job", choices=job_choices(ctx), elem_id="job", scale=4, allow_custom_value=True
                )
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
            epochs_table = gr.Dataframe(
                value=epochs_frame({"evals": []}),  # named columns: an empty one shows headers "1 2 3"
                label="Metrics at each evaluation",
                interactive=False,
                elem_id="epochs",
                max_height=260,
            )
            with gr.Row():
                per_class = gr.Dataframe(
                    value=per_class_frame({}), label="Per-class report", interactive=False
                )
                confusion = gr.HTML(elem_id="confusion")
            # the test split's own results: scored once at the end, never used to pick the kept weights
            test_md = gr.Markdown(elem_id="test-metrics")
            with gr.Row():
                test_per_class = gr.Dataframe(
                    value=per_class_frame({}), label="Test split: per-class report", interactive=False,
                    visible=False, elem_id="test-per-class",
                )  # fmt: skip
                test_confusion = gr.HTML(elem_id="test-confusion")
    with gr.Accordion("Job history and comparison", open=False):
        history = gr.Dataframe(value=lambda: jobs_table(ctx), interactive=False, max_height=300)
        with gr.Row():
            job_a = gr.Dropdown(label="Compare job", choices=job_choices(ctx), elem_id="compare-a", scale=3)
            job_b = gr.Dropdown(label="with job", choices=job_choices(ctx), elem_id="compare-b", scale=3)
            x_axis = gr.Radio(X_AXES, value="step", label="x axis", elem_id="compare-x", scale=1)
        with gr.Row():
            with gr.Column(scale=3):
                compare_plot = gr.LinePlot(
                    x="step",
                    y="loss",
                    color="series",
                    title="Loss curves compared (A: first job, B: second)",
                    height=280,
                    color_map=COMPARE_COLORS,
                    elem_id="compare-plot",
                )
            compare_fields = gr.Dataframe(
                value=compare_table(ctx, None, None),
                label="Settings and metrics",
                interactive=False,
                elem_id="compare-table",
                scale=2,
            )

    # Ticks only while this tab is shown (app.py switches it): polls on a hidden tab would cost the web process
    # CPU that the Label tab's key presses need.
    timer = gr.Timer(ctx.settings.poll_s, active=False)
    seen = gr.State("")  # signature of what is drawn: an unchanged job is not redrawn every tick

    view_outputs = [
        status_md,
        progress,
        loss_plot,
        epochs_table,
        per_class,
        confusion,
        test_md,
        test_per_class,
        test_confusion,
        cancel,
        resume,
        discard,
        seen,
        start_msg,
    ]

    def render(job_id, last):
        v = poll(ctx, job_id, last)
        if v.get("unchanged"):
            return [gr.skip()] * len(view_outputs)
        return [
            v["status_md"],
            v["progress_html"],
            v["loss"],
            v["epochs"],
            gr.update(value=v["per_class"], visible=v["problem"] != "regression"),
            v["confusion_html"],
            v["test_md"],
            gr.update(value=v["test_per_class"], visible=v["has_test"]),
            v["test_confusion_html"],
            gr.update(visible=v["can_cancel"]),
            gr.update(visible=v["can_resume"]),
            gr.update(visible=v["can_resume"]),
            v["signature"],
            "" if job_just_ended(job_id, last, v) else gr.skip(),
        ]

    def refresh_jobs(selected=None):
        choices = job_choices(ctx)
        return (
            gr.update(choices=choices, value=selected) if selected else gr.update(choices=choices),
            gr.update(choices=choices),
            gr.update(choices=choices),
            jobs_table(ctx),
        )

    # Timer events are not "public": Gradio's page keeps every public event's outputs in a localStorage run history,
    # and re-writing it each tick (plots included) slows the page over a long run (see ui/label.py).
    timer.tick(render, [job, seen], view_outputs, show_progress="hidden", api_visibility="undocumented")
    job.change(lambda j: render(j, None), [job], view_outputs, show_progress="hidden", api_name="poll")

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
        weight_average,
        evals_per_epoch,
        nproc,
    ]
    assert len(form) == len(FORM_FIELDS)
    start.click(on_start, [dataset, *form], [start_msg, job, job_a, job_b, history])
    for button, fn in ((cancel, cancel_job), (resume, resume_job), (discard, discard_job)):
        button.click(lambda j, fn=fn: fn(ctx, j), [job], start_msg).then(
            lambda j: refresh_jobs(j), [job], [job, job_a, job_b, history]
        ).then(lambda j: render(j, None), [job], view_outputs)

    def on_compare(a, b, x):
        return gr.update(value=overlay(ctx, a, b), x=x), compare_table(ctx, a, b)

    for control in (job_a, job_b, x_axis):
        control.change(on_compare, [job_a, job_b, x_axis], [compare_plot, compare_fields])
    history_seen = gr.State("")

    def render_history(last):
        table = jobs_table(ctx)
        signature = table.to_json()
        return (gr.skip(), last) if signature == last else (table, signature)

    timer.tick(
        render_history,
        [history_seen],
        [history, history_seen],
        show_progress="hidden",
        api_visibility="undocumented",
    )

    def refresh_datasets(current, preferred=None):
        """New choices, on `preferred` (a dataset just imported) if given, else the current one, else the newest."""
        choices = dataset_choices(ctx)
        return gr.update(choices=choices, value=pick_dataset([i for _, i in choices], current, preferred))

    def on_load():
        shown = latest_job_id(ctx)
        return (*refresh_jobs(shown), refresh_datasets(None, job_dataset(ctx, shown)))

    def on_language(dataset_id, model_name):  # non-English data, English model: suggest the multilingual one
        return dataset_hint(ctx, dataset_id, model_name)

    for control in (dataset, model):
        control.change(on_language, [dataset, model], language_hint, show_progress="hidden")
    auto_inputs = [dataset, mode, epochs, batch_size, eval_split, model, pair_encoding]
    for control in auto_inputs:
        control.change(partial(auto_hint, ctx), auto_inputs, auto_line, show_progress="hidden")

    def on_loaded(*values):
        """Both hints for the form as loaded: a page whose dataset is already the loaded one sees no change event."""
        dataset_id, model_name = values[0], values[5]
        return on_language(dataset_id, model_name), auto_hint(ctx, *values)

    dataset.input(
        lambda: "", None, start_msg, show_progress="hidden"
    )  # "Job #2 queued." is about the old one
    job.input(lambda: "", None, start_msg, show_progress="hidden")
    return {
        "timer": timer,
        "dataset": dataset,
        "on_load": {"fn": on_load, "outputs": [job, job_a, job_b, history, dataset]},
        "after_load": {"fn": on_loaded, "inputs": auto_inputs, "outputs": [language_hint, auto_line]},
        "refresh_datasets": {"fn": refresh_datasets, "inputs": [dataset], "outputs": [dataset]},
    }


def pick_dataset(ids: list[int], current: int | None, preferred: int | None = None) -> int | None:
    """The dataset the form shows: the one just imported, else the one chosen, else the newest."""
    for candidate in (preferred, current):
        if candidate in ids:
            return candidate
    return max(ids) if ids else None


def job_dataset(ctx: Ctx, job_id: int | None) -> int | None:
    """The dataset a job trains on (a reloaded page shows the running job's, not the newest dataset)."""
    if not job_id:
        return None
    with ctx.sessions() as s:
        try:
            return repo.get_job(s, int(job_id)).dataset_id
        except KeyError:
            return None
