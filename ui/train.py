"""Train tab: the form (sensible defaults: a first-time user only presses Start), job controls, history; the live view is ui/live.py, the handlers ui/train_jobs.py."""

from __future__ import annotations

from functools import partial

import gradio as gr

from finetuner.config import BUNDLED_MODELS
from ui.auto_hint import auto_hint
from ui.common import Ctx, dataset_choices, job_choices, pick_choice
from ui.compare import X_AXES, compare_table, overlay
from ui.language_hint import dataset_hint
from ui.live import epochs_frame, job_just_ended, jobs_table, latest_job_id, per_class_frame, poll
from ui.train_jobs import (
    DEFAULT_MODEL,
    FORM_FIELDS,
    NPROC_RANGE,
    WEIGHT_AVERAGE,
    cancel_job,
    discard_job,
    job_dataset,
    resume_job,
    start_job,
)

MODES = ["auto", "full", "frozen", "top-1", "top-2", "top-3"]
PAIR_ENCODINGS = ["auto", "cross", "concat", "siamese"]  # "auto" is None: the engine decides
PAIR_INFO = "auto: siamese, [u, v, |u-v|, u*v] of the two texts, where Auto trains a frozen head; else cross"
COMPARE_COLORS = {"A train": "#2563eb", "A eval": "#93c5fd", "B train": "#ea580c", "B eval": "#fdba74"}


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
        return gr.update(choices=choices, value=pick_choice([i for _, i in choices], current, preferred))

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
        "auto_line": {"fn": partial(auto_hint, ctx), "inputs": auto_inputs, "outputs": [auto_line]},
        "refresh_datasets": {"fn": refresh_datasets, "inputs": [dataset], "outputs": [dataset]},
    }
