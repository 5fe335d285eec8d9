"""The Train tab's handlers: the form's values into a queued job, and the controls of a job (cancel, resume,
discard). Plain values in, plain values out; the tab's layout and wiring are ui/train.py."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from storage import repo
from ui.common import Ctx, esc
from ui.model_choice import ModelChoiceError, model_policy
from ui.problems import problem_of

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # = finetuner.DEFAULT_MODEL, repeated so this module does not import torch
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


def job_dataset(ctx: Ctx, job_id: int | None) -> int | None:
    """The dataset a job trains on (a reloaded page shows the running job's, not the newest dataset)."""
    if not job_id:
        return None
    with ctx.sessions() as s:
        try:
            return repo.get_job(s, int(job_id)).dataset_id
        except KeyError:
            return None
