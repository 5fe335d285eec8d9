"""Job comparison (the Train tab's history accordion): two jobs' loss curves on one axis, by step or by epoch,
and their settings and metrics side by side."""

from __future__ import annotations

import contextlib

import pandas as pd

from storage import repo
from ui.common import Ctx, fmt_duration, fmt_num, headline_text
from ui.live import loss_frame
from ui.problems import PROBLEM_NAMES, fmt_metric, metric_keys, problem_of

X_AXES = [("step", "step"), ("epoch", "epoch")]  # a 51-step and a 510-step job only line up by epoch
SETTINGS = ["model", "mode", "epochs", "lr", "batch_size", "max_length", "eval_split", "seed"]


def _view(ctx: Ctx, job_id: int | None) -> dict | None:
    if not job_id:
        return None
    with ctx.sessions() as s, contextlib.suppress(KeyError, ValueError, TypeError):
        return repo.job_view(s, int(job_id))
    return None


def steps_per_epoch(view: dict) -> float | None:
    """Optimiser steps in one epoch: from the job's total and its epochs, else from an evaluation's position."""
    epochs = (view.get("config") or {}).get("epochs")
    if view.get("total_steps") and epochs:
        return view["total_steps"] / epochs
    for e in view.get("evals") or []:
        if e["epoch"] and e["step"]:
            return e["step"] / e["epoch"]
    return None


def curve_frame(view: dict | None, prefix: str) -> pd.DataFrame:
    """`live.loss_frame` plus an ``epoch`` column: the step as a fraction of the job's epochs.

    The train points carry their whole epoch number only (1, 1, ..., 2), which would draw steps; the fraction
    puts each point where it is in training.
    """
    frame = loss_frame(view or {"loss": {}}, prefix=prefix)
    per_epoch = steps_per_epoch(view) if view else None
    frame["epoch"] = (frame["step"] / per_epoch).round(4) if per_epoch else frame["step"].astype("float64")
    return frame[["step", "epoch", "loss", "series"]]


def overlay(ctx: Ctx, job_a: int | None, job_b: int | None) -> pd.DataFrame:
    """Two jobs' train and eval curves in one table, series "A train", "A eval", "B train", "B eval".

    The names are fixed (not job ids) so the plot's colour domain never changes (see `live.loss_frame`).
    """
    frames = [curve_frame(_view(ctx, job_id), f"{name} ") for name, job_id in (("A", job_a), ("B", job_b))]
    return pd.concat(frames, ignore_index=True)


def _setting(value) -> str:
    """A setting as the form shows it: None is the engine's choice, floats in short form (1e-04, not 0.000)."""
    return "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _epochs_run(view: dict) -> float | None:
    return max((e["epoch"] for e in view.get("evals") or []), default=None)


def _took(view: dict) -> str:
    if not (view.get("started_at") and view.get("finished_at")):
        return ""
    start, end = (pd.Timestamp(view[k]) for k in ("started_at", "finished_at"))
    return fmt_duration((end - start).total_seconds())


def _column(view: dict) -> dict[str, str]:
    config, m = view.get("config") or {}, view.get("metrics") or {}
    task, problem = config.get("task"), problem_of(config)
    keys = metric_keys(m, problem)
    figures = keys or (["f1", "precision", "recall"] if task == "token" else ["accuracy", "macro_f1"])
    show = fmt_metric if keys else fmt_num  # a correlation may be undefined (None): "–"
    return {
        "dataset": view.get("dataset_name") or "",
        "problem": PROBLEM_NAMES[problem],
        "status": view.get("status") or "",
        **{k: _setting(config.get(k)) for k in SETTINGS},
        "epochs run": f"{ran:g}" if (ran := _epochs_run(view)) is not None else "–",  # what "auto" came to
        "steps": fmt_num(view.get("total_steps")),
        "took": _took(view),
        "score": headline_text(m, task, problem=problem) or "–",
        # the held-out test split, when it has one
        "test score": headline_text(m.get("test"), task, problem=problem) or "–",
        "kept epoch": fmt_num(m.get("epoch")),
        "eval loss": fmt_num(m.get("loss")),
        **{k: show(m.get(k)) for k in figures},
    }


def compare_table(ctx: Ctx, job_a: int | None, job_b: int | None) -> pd.DataFrame:
    """The two jobs' settings and metrics side by side: one row per field, one column per job."""
    columns = {}
    for name, job_id in (("A", job_a), ("B", job_b)):
        view = _view(ctx, job_id)
        if view is not None:
            columns[f"{name}: job #{view['id']}"] = _column(view)
    if not columns:
        return pd.DataFrame(columns=["field", "A", "B"])
    fields = list(dict.fromkeys(k for col in columns.values() for k in col))
    rows = [{"field": f, **{name: col.get(f, "") for name, col in columns.items()}} for f in fields]
    return pd.DataFrame(rows)
