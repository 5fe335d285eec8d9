"""The Train tab's live view: everything drawn for a job (status, progress, loss curves, metrics), from the DB."""

from __future__ import annotations

import math
import re

import pandas as pd

from storage import repo
from ui.common import Ctx, esc, fmt_duration, fmt_num, headline_text
from ui.problems import METRIC_NAMES, fmt_metric, metric_keys, problem_of, scores_line

JOB_COLUMNS = [
    "job",
    "status",
    "dataset",
    "model",
    "mode",
    "epochs",
    "score",
    "progress",
    "took",
    "created (UTC)",
]
PLOT_POINTS = 300  # loss points sent per curve: enough for a smooth line, small enough to keep polls fast


def poll(ctx: Ctx, job_id: int | None, last_signature: str | None = None) -> dict:
    """Everything the live view draws for one job, from the database (a reload shows the same).

    Returns:
        ``{"status", "active", "signature", "status_md", "progress_html", "loss": DataFrame(step, loss, series),
        "epochs": DataFrame, "per_class": DataFrame, "problem", "confusion_html", the `test_view` keys, "can_cancel",
        "can_resume"}``; only
        ``{"status", "active", "signature", "unchanged": True}`` when the signature equals ``last_signature``.
    """
    if not job_id:
        return _empty_view("No job yet: choose a dataset and press **Start**.")
    with ctx.sessions() as s:
        try:
            v = repo.job_view(s, int(job_id))
        except (KeyError, ValueError, TypeError):
            return _empty_view(f"Job #{int(job_id)} no longer exists.")
    train_n, eval_n = len(v["loss"]["train"]["step"]), len(v["loss"]["eval"]["step"])
    signature = f"{v['id']}:{v['status']}:{v['step']}:{train_n}:{eval_n}:{v['message']}"
    if signature == last_signature:  # the timer's common case: skip building frames nobody will draw
        return {"status": v["status"], "active": v["active"], "signature": signature, "unchanged": True}
    final = v["metrics"] or (v["evals"][-1]["metrics"] if v["evals"] else {})
    return {
        "status": v["status"],
        "active": v["active"],
        "signature": signature,
        "status_md": _status_md(v),
        "progress_html": progress_html(v),
        # Nothing to draw yet: an empty plot, not placeholder rows only. A first draw with no real point leaves
        # Gradio's LinePlot without a colour domain, and a fast job's full curves then never showed (seen in the
        # browser: a frozen job done within a poll tick drew axes, no lines, until re-selected).
        "loss": loss_frame(v)
        if any((v["loss"].get(s) or {}).get("step") for s in ("train", "eval"))
        else None,
        "epochs": epochs_frame(v),
        "per_class": per_class_frame(final),
        "problem": problem_of(v.get("config") or {}),  # a score model has no per-class report to show
        "confusion_html": confusion_html(final),
        **test_view(v["metrics"]),
        "can_cancel": v["status"] in ("queued", "running"),
        "can_resume": v["status"] == "interrupted",
    }


def job_just_ended(job_id, last_signature: str | None, view: dict) -> bool:
    """True when the job drawn at last_signature has since finished (completed, failed, cancelled, interrupted).

    The Start button's message ("Job #3 queued.") is stale from then on; the status line says the rest. Only a change
    seen by the timer counts: a redraw after a button press (no last signature) keeps that button's message.
    """
    if not last_signature or view.get("active", True):
        return False
    last_id, last_status = last_signature.split(":")[:2]
    return last_id == str(job_id) and last_status != view["status"]


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
        else:
            # Gradio's LinePlot fixes its colour domain at the first draw: a series that appears later (eval,
            # after epoch 1) would never be drawn. An invisible (NaN) point puts it in the domain from the start.
            parts.append(_loss_df([0], [math.nan], [f"{prefix}{split}"]))
    return pd.concat(parts, ignore_index=True)


def _loss_df(steps: list, losses: list, series: list) -> pd.DataFrame:
    """Typed columns: the plot reads dtypes, and an empty object column would turn the loss axis nominal."""
    return pd.DataFrame(
        {
            "step": pd.Series(steps, dtype="int64"),
            "loss": pd.Series(losses, dtype="float64"),
            "series": pd.Series(series, dtype="str"),
        }
    )


def kept_eval(view: dict) -> int | None:
    """Index in ``view["evals"]`` of the evaluation whose weights are kept: the final metrics' epoch once the job
    is done, else the newest that was best at its time (each one that improved was flagged ``is_best``)."""
    evals = view.get("evals") or []
    final = (view.get("metrics") or {}).get("epoch")
    for i in reversed(range(len(evals))):
        if evals[i]["epoch"] == final if final is not None else evals[i]["metrics"].get("is_best"):
            return i
    return None


def epochs_frame(view: dict) -> pd.DataFrame:
    rows, keys = [], ["loss", "accuracy", "macro_f1"]
    kept = kept_eval(view)
    for i, e in enumerate(view["evals"]):
        m = e["metrics"]
        keys = eval_keys(m)
        rows.append(
            {
                "epoch": f"{e['epoch']:g}",  # 1.5: evaluated half-way through epoch 2
                "step": e["step"],
                **{k: _rounded(m.get(k)) for k in keys},
                "best": "★" if i == kept else "",
            }
        )
    return pd.DataFrame(rows, columns=["epoch", "step", *keys, "best"])


def eval_keys(metrics: dict) -> list[str]:
    """The columns of one evaluation's row: per problem (multi-label, score), entity F1, or accuracy."""
    keys = metric_keys(metrics)
    if keys:
        return ["loss", *keys]
    return ["loss", "f1", "precision", "recall"] if "f1" in metrics else ["loss", "accuracy", "macro_f1"]


def _rounded(value) -> float:
    """A metric cell: NaN where it is missing or undefined (a correlation of constant predictions is None)."""
    return round(value, 4) if isinstance(value, int | float) else float("nan")


def per_class_frame(metrics: dict | None) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (multi-label: per label, with its tuned threshold)."""
    per_class = (metrics or {}).get("per_class") or {}
    rows = [
        {"class": name, **{k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()}}
        for name, m in per_class.items()
    ]
    columns = ["class", "precision", "recall", "f1", "support"]
    if any("threshold" in m for m in per_class.values()):
        columns.append("threshold")
    return pd.DataFrame(rows, columns=columns)


def confusion_html(metrics: dict | None, title: str = "Confusion matrix") -> str:
    """The confusion matrix as a heat-map table (rows: true label, columns: predicted); labels escaped."""
    metrics = metrics or {}
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if not matrix or not labels:
        return ""
    top = max(max(row) for row in matrix) or 1
    # long names are cut (the full name is the title): a wide matrix overflowed its column
    name = lambda label: f'<span class="ft-name" title="{esc(label)}">{esc(label)}</span>'  # noqa: E731
    head = "".join(f"<th>{name(label)}</th>" for label in labels)
    body = []
    for r, (label, row) in enumerate(zip(labels, matrix, strict=False)):
        cells = []
        for i, n in enumerate(row):
            alpha = 0.08 + 0.85 * n / top
            # light cells take the theme's text colour: a fixed dark one vanished on dark mode's background
            color = "#fff" if alpha > 0.5 else "var(--body-text-color)"
            diag = " ft-diag" if r == i else ""
            cells.append(
                f'<td class="ft-cell{diag}" style="background:rgba(37,99,235,{alpha:.2f});'
                f'color:{color}">{n}</td>'
            )
        body.append(f"<tr><th>{name(label)}</th>{''.join(cells)}</tr>")
    return (
        '<div class="ft-confusion"><div class="ft-caption">'
        f"{esc(title)} (rows: true, columns: predicted)"
        f'</div><div class="ft-scroll"><table><tr><th></th>{head}</tr>{"".join(body)}</table></div></div>'
    )


def test_view(metrics: dict | None) -> dict:
    """The held-out test split's results beside the dev ones: a headline, per-class report, confusion matrix.

    Returns:
        ``{"test_md", "test_per_class": DataFrame, "test_confusion_html", "has_test"}``; empty when the job
        has no test metrics (its dataset has no test split, or it has not finished).
    """
    test = (metrics or {}).get("test")
    none = {
        "test_md": "",
        "test_per_class": per_class_frame({}),
        "test_confusion_html": "",
        "has_test": False,
    }
    if not test:
        return none
    if test.get("error"):  # the model was kept; its test scoring failed (e.g. a label it never saw)
        return {**none, "test_md": f"⚠ **Test split** not scored: {esc(test['error'])}"}
    scores = scores_line(test) or _single_scores(test)
    n = f" ({test['n']:,} examples)" if test.get("n") else ""
    return {
        "test_md": f"**Test split**{n}, scored once with the kept weights: {scores}",
        "test_per_class": per_class_frame(test),
        "test_confusion_html": confusion_html(test, "Test split: confusion matrix"),
        "has_test": True,
    }


def _single_scores(test: dict) -> str:
    """Single-label (accuracy, macro-F1) or token (entity F1, precision, recall, token accuracy) test figures."""
    keys = ("f1", "precision", "recall", "accuracy") if "macro_f1" not in test else ("accuracy", "macro_f1")
    names = {"accuracy": "token accuracy"} if "f1" in test and "macro_f1" not in test else {}
    return ", ".join(f"{names.get(k, k)} **{fmt_num(test[k])}**" for k in keys if k in test)


# A phase before the first training step (tokenizing, contrastive tuning, encoding features) reports itself as
# "<phase> <N>%" in the job's message (worker.JobReporter.on_phase), which the status line shows; until steps
# start, the bar follows that N.
PHASE_MESSAGE = re.compile(r"^[a-z][a-z /-]* (?P<pct>\d{1,3})%$")


def _phase_percent(view: dict) -> float | None:
    """The percent done of a running job's unfinished phase before its first step; None otherwise (a finished
    phase, "tokenizing 100%", is not the job's progress: its steps have not begun)."""
    if view["status"] not in ("running", "cancelling") or view["step"] or not view["message"]:
        return None
    m = PHASE_MESSAGE.match(view["message"])
    return float(m["pct"]) if m and int(m["pct"]) < 100 else None


def progress_html(view: dict) -> str:
    pct = 100.0 * (view["progress"] or 0.0)
    status = view["status"]
    bits = []
    phase = _phase_percent(view)
    if phase is not None:
        pct = phase
    elif view["total_steps"]:
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
        task, problem = (v.get("config") or {}).get("task"), problem_of(v.get("config") or {})
        keys = metric_keys(m, problem)
        if keys:  # multi-label and score models: their own figures, the headline first
            score = ", ".join(
                [f"**{headline_text(m, task, problem=problem)}**"]
                + [f"{METRIC_NAMES[k]} {fmt_metric(m.get(k))}" for k in (*keys[1:], "loss") if k in m]
            )
        else:
            others = ("precision", "recall", "accuracy", "loss") if task == "token" else ("macro_f1", "loss")
            names = {"accuracy": "token accuracy"} if task == "token" else {}
            score = ", ".join(
                [f"**{headline_text(m, task)}**"]
                + [f"{names.get(k, k)} {fmt_num(m[k])}" for k in others if k in m]
            )
        if m.get("refit_examples"):  # the eval examples were too few to select: they trained the head too
            lines.append(
                f"✔ Done. Held-out score at epoch {m.get('epoch', '?')}: {score}; then the head trained again on all "
                f"{m['refit_examples']:,} examples, the held-out ones included. Try it in the **Try** tab."
            )
        else:
            lines.append(f"✔ Done. Kept epoch {m.get('epoch', '?')}: {score}. Try it in the **Try** tab.")
        if m.get("ran_as") and (v.get("config") or {}).get("mode", "auto") == "auto":
            lines.append(f"Auto ran it as **{esc(m['ran_as'])}**.")
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
        "problem": "single",
        "confusion_html": "",
        **test_view(None),
        "can_cancel": False,
        "can_resume": False,
    }


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
                    "score": headline_text(m, j.config.get("task"), problem=problem_of(j.config)),
                    "progress": f"{100 * (j.progress or 0):.0f}%",
                    "took": fmt_duration(took) if took else "",
                    "created (UTC)": j.created_at.strftime("%Y-%m-%d %H:%M"),
                }
            )
    return pd.DataFrame(rows, columns=JOB_COLUMNS)  # named even when empty (else headers "1 2 3")


def latest_job_id(ctx: Ctx) -> int | None:
    """The training job to show on page load: the running one, else the newest (score jobs have no curves)."""
    with ctx.sessions() as s:
        jobs = repo.list_jobs(s, kind="train")
    active = [j for j in jobs if j.status in ("running", "cancelling")]
    pick = active or jobs
    return pick[0].id if pick else None
