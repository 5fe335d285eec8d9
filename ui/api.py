"""The designed API: a few named endpoints for what a script does, and every internal UI event hidden.

    from gradio_client import Client, handle_file
    c = Client("http://127.0.0.1:7860/")
    c.predict(api_name="/list_datasets")

The endpoints call the same handlers as the tabs (`ui.data.import_upload`, `ui.train.start_job`,
`ui.predict_file.start_prediction`, ...), so the API and the UI cannot drift apart. Each is a click of a hidden
button on hidden components: unlike ``gr.api`` those components give the client real file uploads and
downloads (`handle_file` in, a downloaded path out).
"""

from __future__ import annotations

import gradio as gr

from storage import repo
from ui.common import Ctx

API_NAMES = ("list_datasets", "import_file", "start_job", "job_status", "predict", "predict_file")
STATUS_FIELDS = ("id", "kind", "status", "active", "progress", "step", "total_steps", "message", "error")


def list_datasets(ctx: Ctx) -> list[dict]:
    """Every dataset: ``[{"id", "name", "task", "examples", "labeled", ...}]``, newest last."""
    with ctx.sessions() as s:
        return [
            {k: v for k, v in d.items() if isinstance(v, str | int | float | None)}
            for d in repo.dataset_summaries(s)
        ]


def import_file(
    ctx: Ctx,
    path: str | None,
    task: str,
    name: str,
    text_col: str = "",
    text_pair_col: str = "",
    label_col: str = "",
) -> dict:
    """Import a CSV/TSV/JSONL/XLSX/CoNLL file as a new dataset: ``{"ok", "message", "dataset_id"}``.

    ``task`` as on the command lines: sequence, pair, token, multilabel or regression (the last two on pairs when
    ``text_pair_col`` is given; multi-label cells split on ","). A script says what it means, so a one-label
    import is not asked about list-like cells: they are imported as the names they read.
    """
    from ui.data import import_upload

    task = task or "sequence"
    if task in ("multilabel", "regression"):
        task = f"{'pair' if text_pair_col else 'sequence'}:{task}"
    r = import_upload(
        ctx,
        path,
        task,
        name,
        text_col or None,
        text_pair_col or None,
        label_col or None,
        lists_as_single=True,
    )
    return {"ok": r["ok"], "message": r["message"], "dataset_id": r["dataset_id"]}


def start_job(ctx: Ctx, dataset_id: int | None, settings: dict | None = None) -> dict:
    """Queue a training job; `settings` holds any Train-form fields (``mode``, ``epochs``, ``lr``, ...)."""
    from ui.train_jobs import FORM_DEFAULTS, FORM_FIELDS
    from ui.train_jobs import start_job as start

    unknown = sorted(set(settings or {}) - set(FORM_FIELDS))
    if unknown:
        return {"ok": False, "job_id": None, "message": f"unknown settings {unknown}; use {FORM_FIELDS}"}
    form = {**FORM_DEFAULTS, **(settings or {})}
    r = start(ctx, int(dataset_id) if dataset_id else None, *(form[f] for f in FORM_FIELDS))
    return {"ok": r["ok"], "message": r["message"], "job_id": r["job_id"]}


def job_status(ctx: Ctx, job_id: int) -> tuple[dict, str | None]:
    """A job's status, progress, metrics and error; for a finished ``predict`` job, the predictions file too."""
    try:
        with ctx.sessions() as s:
            v = repo.job_view(s, int(job_id))
    except KeyError:  # a script's typo: an answer it can test, not a server error
        return dict.fromkeys(STATUS_FIELDS) | {"id": job_id, "error": f"no job with id {job_id}"}, None
    status = {k: v[k] for k in STATUS_FIELDS} | {"metrics": v["metrics"]}
    out = (
        (v["metrics"] or {}).get("output") if v["kind"] == "predict" and v["status"] == "completed" else None
    )
    return status, out


def predict(ctx: Ctx, model_job_id: int, text: str, text_pair: str = "") -> dict:
    """One prediction: ``{"label", "probabilities"}``; multi-label models ``{"labels", "probabilities",
    "thresholds"}``; score models ``{"score"}``; token models ``{"words", "tags", "entities"}``."""
    from ui.try_it import _predictor

    return _predictor(ctx, int(model_job_id)).predict(text, text_pair or None)


def predict_file(ctx: Ctx, model_job_id: int, path: str, text_col: str = "", text_pair_col: str = "") -> dict:
    """Queue a batch prediction of a file: ``{"ok", "message", "job_id"}``; poll `job_status` for the result."""
    from ui.predict_file import start_prediction

    return start_prediction(ctx, int(model_job_id), path, None, text_col or None, text_pair_col or None)


def build_api(ctx: Ctx) -> None:
    """The named endpoints, inside the Blocks being built (call it last, then `hide_internal_events`)."""
    with gr.Column(visible=False):
        number = lambda label: gr.Number(label=label, precision=0)  # noqa: E731
        text = lambda label, value="": gr.Textbox(label=label, value=value)  # noqa: E731
        endpoints = {
            "list_datasets": (lambda: list_datasets(ctx), [], [gr.JSON(label="datasets")]),
            "import_file": (
                lambda *a: import_file(ctx, *a),
                [gr.File(label="file", type="filepath"), text("task", "sequence"), text("name"),
                 text("text_col"), text("text_pair_col"), text("label_col")],
                [gr.JSON(label="result")],
            ),
            "start_job": (
                lambda d, st: start_job(ctx, d, st),
                [number("dataset_id"), gr.JSON(label="settings", value={})],
                [gr.JSON(label="result")],
            ),
            "job_status": (
                lambda j: job_status(ctx, j),
                [number("job_id")],
                [gr.JSON(label="status"), gr.File(label="predictions")],
            ),
            "predict": (
                lambda *a: predict(ctx, *a),
                [number("model_job_id"), text("text"), text("text_pair")],
                [gr.JSON(label="prediction")],
            ),
            "predict_file": (
                lambda *a: predict_file(ctx, *a),
                [number("model_job_id"), gr.File(label="file", type="filepath"), text("text_col"),
                 text("text_pair_col")],
                [gr.JSON(label="result")],
            ),
        }  # fmt: skip
        for name, (fn, inputs, outputs) in endpoints.items():
            doc = globals()[name].__doc__
            gr.Button(visible=False).click(fn, inputs, outputs, api_name=name, api_description=doc)


def hide_internal_events(demo: gr.Blocks) -> None:
    """Mark every event without a designed name private: hidden from the API page and the clients.

    One pass after building, rather than a flag on each of the ~60 events where the tabs create them: a new
    event is hidden by default, and only `API_NAMES` make up the public surface. The browser still calls
    the private events (it addresses them by index, not by name).
    """
    for fn in demo.fns.values():
        if fn.api_name not in API_NAMES:
            fn.api_visibility = "private"
