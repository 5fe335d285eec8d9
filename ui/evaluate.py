"""Models tab, "Evaluate": any trained model against a labeled dataset (or one of its splits) or a labeled file.

The evaluation runs in the worker as an ``evaluate`` job (`worker_evaluate`), never in this process: scoring a
large set takes minutes of CPU. The section polls the job with a `gr.Timer` (as the Train tab does) and shows
the headline metrics, a per-class report and a confusion matrix (multi-label: micro-/macro-F1, subset accuracy and
a per-label report with thresholds; score models: Pearson, Spearman, RMSE).
"""

from __future__ import annotations

import gradio as gr
from sqlalchemy.exc import SQLAlchemyError

from storage import repo
from storage.conll import DataError
from storage.job_requests import queue_evaluate_job
from storage.splits import SPLIT_LABELS
from ui.common import TERMINAL, Ctx, dataset_choices, esc, fmt_num, user_message
from ui.live import confusion_html, per_class_frame
from ui.problems import problem_of, scores_line

# "" = every labeled example; the others are the stored split names
SPLIT_CHOICES = [("all labeled", ""), (SPLIT_LABELS["test"], "test"), (SPLIT_LABELS["eval"], "eval"),
                 (SPLIT_LABELS["train"], "train")]  # fmt: skip


def start_evaluation(
    ctx: Ctx,
    model_job_id: int | None,
    dataset_id: int | None = None,
    split: str | None = None,
    path: str | None = None,
) -> dict:
    """Queue an ``evaluate`` job: the file when one is uploaded, else the dataset (``split`` "" or None: all).

    Returns:
        ``{"ok", "message", "job_id"}``; a wrong task, unknown labels or a bad file are told at once.
    """
    fail = {"ok": False, "job_id": None}
    if not model_job_id:
        return {**fail, "message": "Choose a trained model first."}
    if not path and not dataset_id:
        return {**fail, "message": "Choose a labeled dataset or upload a labeled file."}
    try:
        job_id = queue_evaluate_job(
            ctx.sessions,
            int(model_job_id),
            dataset_id=None if path else int(dataset_id),
            split=split or None,
            upload=path or None,
            data_dir=ctx.settings.data_dir,
        )
    except (DataError, ValueError, KeyError, OSError) as err:
        lines = str(err).splitlines() or [type(err).__name__]
        return {**fail, "message": "**Cannot evaluate.**\n\n" + "\n".join(f"- {esc(x)}" for x in lines[:10])}
    except SQLAlchemyError as err:
        return {**fail, "message": esc(user_message(err))}
    return {"ok": True, "job_id": job_id, "message": f"Evaluation job **#{job_id}** queued."}


def evaluation_view(ctx: Ctx, job_id: int | None) -> dict:
    """Where an evaluate job stands and, once done, its results.

    Returns:
        ``{"status", "message", "per_class": DataFrame, "confusion_html"}``.
    """
    empty = {"status": None, "message": "", "per_class": per_class_frame({}), "confusion_html": ""}
    if not job_id:
        return empty
    with ctx.sessions() as s:
        v = repo.job_view(s, int(job_id))
    if v["kind"] != "evaluate":
        raise ValueError(f"job #{job_id} is not an evaluation job")
    config, m = v.get("config") or {}, v["metrics"] or {}
    source = config.get("source") or "?"
    if v["status"] == "completed":
        keys = (
            ("accuracy", "macro_f1", "loss") if "macro_f1" in m else ("f1", "precision", "recall", "accuracy")
        )
        # a multi-label model's F1s and subset accuracy, a score model's correlations and RMSE
        own = scores_line(m, problem_of(config))
        loss = f", loss **{fmt_num(m['loss'])}**" if own and "loss" in m else ""
        scores = own + loss if own else ", ".join(f"{k} **{fmt_num(m[k])}**" for k in keys if k in m)
        message = f"Model of job #{config.get('model_job_id')} on {esc(source)} ({m.get('n', 0):,} examples): {scores}"
        return {**empty, "status": v["status"], "message": message, "per_class": per_class_frame(m),
                "confusion_html": confusion_html(m)}  # fmt: skip
    if v["status"] == "failed":
        return {**empty, "status": v["status"], "message": f"❌ **Failed:** {esc(v['error'] or '')}"}
    waiting = (
        "queued: the worker starts it after the job it is running" if v["status"] == "queued" else v["status"]
    )
    return {**empty, "status": v["status"], "message": f"Evaluating on {esc(source)}: {esc(waiting)}…"}


def build_evaluate_section(ctx: Ctx, model: gr.Dropdown) -> dict:
    """The section, in the Models tab below the download; `model` is that tab's model dropdown."""
    with gr.Accordion("Evaluate on a labeled dataset or file", open=False, elem_id="evaluate"):
        gr.Markdown(
            "Metrics of the model above on any labeled dataset of its task (all of it, or one split: the test "
            "split is the one never trained on) or on an uploaded labeled file. It runs in the background worker."
        )
        with gr.Row():
            dataset = gr.Dropdown(label="Dataset", choices=[], value=None, elem_id="evaluate-dataset")
            split = gr.Radio(SPLIT_CHOICES, value="test", label="Examples", elem_id="evaluate-split")
        upload = gr.File(
            label="…or a labeled file (used when given)", type="filepath", elem_id="evaluate-upload"
        )
        go = gr.Button("Evaluate", variant="primary", elem_id="evaluate-go")
        note = gr.Markdown(elem_id="evaluate-result")
        with gr.Row():
            per_class = gr.Dataframe(value=per_class_frame({}), label="Per-class report", interactive=False)
            confusion = gr.HTML(elem_id="evaluate-confusion")
        job = gr.State(None)
        timer = gr.Timer(ctx.settings.poll_s, active=False)

    def on_go(model_id, dataset_id, split_, path):
        r = start_evaluation(ctx, model_id, dataset_id, split_, path)
        return r["message"], r["job_id"], gr.Timer(active=r["ok"]), per_class_frame({}), ""

    def on_tick(job_id):
        v = evaluation_view(ctx, job_id)
        done = v["status"] in (*TERMINAL, "interrupted", None)
        return v["message"], v["per_class"], v["confusion_html"], gr.Timer(active=not done)

    go.click(
        on_go,
        [model, dataset, split, upload],
        [note, job, timer, per_class, confusion],
        api_visibility="undocumented",
    )
    timer.tick(
        on_tick,
        [job],
        [note, per_class, confusion, timer],
        show_progress="hidden",
        api_visibility="undocumented",
    )
    return {
        "refresh": {"fn": lambda: gr.update(choices=dataset_choices(ctx, counts=False)), "outputs": [dataset]}
    }
