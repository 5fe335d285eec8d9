"""The Train tab's Auto line: what Auto will pick for the chosen dataset and why, and the estimated time, before
Start. Plain functions of plain values; imports neither torch nor gradio (finetuner.auto is torch-free)."""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from pathlib import Path

from finetuner import auto, token_counts
from finetuner.languages import looks_non_english
from storage import repo
from ui.common import Ctx, esc


def measured_speeds(jobs: list, model: str, tokens_of: Callable[[int, int], float]) -> dict[str, float]:
    """Tokens/s of this machine's finished fine-tuning jobs on this model, by kind ("full", "top"), medians.

    A job records examples/s; `tokens_of(dataset_id, batch_size)` (an example's tokens, padded, in that job's
    dataset) turns it into tokens/s, which carries over to a dataset of longer or shorter texts.
    A frozen job's examples/s is the head's on cached features, which says nothing of an encoder pass: not used.
    An auto job counts as what it ran as (its metrics' "ran_as"; jobs from before that was recorded: not used).
    """
    by_kind: dict[str, list[float]] = {}
    for job in jobs:
        config = job.config or {}
        mode = str(config.get("mode") or "")
        if mode == "auto":
            mode = str((job.metrics or {}).get("ran_as") or "")
        kind = "top" if mode.startswith("top-") else mode
        ours = (config.get("model") or "") == model
        if job.status == "completed" and job.examples_per_s and kind in ("full", "top") and ours:
            tokens = tokens_of(job.dataset_id, int(config.get("batch_size") or 32))
            by_kind.setdefault(kind, []).append(float(job.examples_per_s) * tokens)
    return {k: statistics.median(v) for k, v in by_kind.items()}


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(10, round(seconds / 10) * 10)} s"
    return f"about {math.ceil(seconds / 60)} min"


def plan_line(*args, **kwargs) -> str:
    """One line: Auto's pick and reason (auto mode), then the estimated time of the run; `plan_seconds`' arguments.

    >>> plan_line("sequence", 100, {"a": 50, "b": 50}, "auto", None, 32, 0.1).startswith("**Auto: frozen**")
    True
    """
    head, seconds, source, tokens = plan_seconds(*args, **kwargs)
    return f"{head} Estimated time: **{format_seconds(seconds)}** ({tokens:.0f} tokens an example, speed from {source})."


def plan_seconds(
    task: str,
    n_labeled: int,
    counts: dict[str, int],
    mode: str,
    epochs: int | None,
    batch_size: int,
    eval_split: float,
    device: str = "cpu",
    measured: dict[str, float] | None = None,
    problem: str = "single",
    pair_encoding: str | None = None,
    tokens: float = auto.TYPICAL_TOKENS,
    english: bool = False,
) -> tuple[str, float, str, float]:
    """(what runs and why, its estimated seconds, where the speed came from, `tokens` an example).

    english: the texts look English (finetuner.languages), which Auto's contrastive step depends on."""
    n_eval = round(n_labeled * eval_split) if eval_split else 0
    n_train = max(1, n_labeled - n_eval)
    contrastive_steps = 0
    if mode == "auto":
        # the run counts its training examples' labels, after the eval split: scale the dataset's counts to it
        train_counts = {k: max(1, round(v * n_train / n_labeled)) if v else 0 for k, v in counts.items()}
        choice = auto.choose(
            task, n_train, train_counts, device, batch_size, n_eval, problem=problem, pair_encoding=pair_encoding,
            english=english, tokens=tokens,
        )  # fmt: skip
        run_mode, run_epochs = choice.mode, epochs or choice.epochs
        contrastive_steps = choice.contrastive_steps or 0
        head = f"**Auto: {choice.mode}**, because {esc(choice.reason)}."
    else:
        run_mode = mode
        run_epochs = epochs or (auto.FROZEN_EPOCHS if mode == "frozen" else auto.FULL_EPOCHS)
        head = f"Mode {esc(mode)}, set by hand."
    seconds, source = auto.estimate_seconds(
        run_mode, run_epochs, n_train, n_eval, device, measured, tokens, contrastive_steps
    )
    return head, seconds, source, tokens


def _plan_args(
    ctx: Ctx, dataset_id, mode, epochs, batch_size, eval_split, model, pair_encoding
) -> tuple | None:
    """`plan_seconds`' arguments for a dataset and form (or job) values, read from the database; None when no
    job could start on it yet."""
    if not dataset_id:
        return None
    try:
        with ctx.sessions() as s:
            ds = repo.get_dataset(s, int(dataset_id))
            plan = repo.training_plan(s, ds.id, float(eval_split or 0))
            jobs = repo.list_jobs(s, kind="train")
            inputs_of = functools.cache(lambda i: repo.sample_inputs(s, i))
            tokens_of = functools.cache(
                lambda i, batch: (
                    token_counts.mean_tokens(inputs_of(i), batch_size=batch) or auto.TYPICAL_TOKENS
                )
            )
            measured = measured_speeds(jobs, model, tokens_of)
            task, problem, tokens = ds.task, ds.problem, tokens_of(ds.id, int(batch_size or 32))
            english = task == "sequence" and not looks_non_english(inputs_of(ds.id))[0]
    except (KeyError, ValueError):
        return None
    if plan["problems"] or not plan["labeled"]:
        return None
    return (
        task,
        plan["labeled"],
        plan.get("counts", {}),
        mode or "auto",
        int(epochs or 0) or None,
        int(batch_size or 32),
        float(eval_split or 0),
        _device(),
        measured,
        problem,
        None if pair_encoding in (None, "auto") else pair_encoding,
        tokens,
        english,
    )


def auto_hint(
    ctx: Ctx,
    dataset_id: int | None,
    mode: str,
    epochs,
    batch_size,
    eval_split,
    model: str,
    pair_encoding="auto",
) -> str:
    """The Train tab's line for the current form values (a pair encoding other than "auto" is hand-set); what is
    missing when the dataset cannot be trained on yet; empty without a dataset."""
    args = _plan_args(ctx, dataset_id, mode, epochs, batch_size, eval_split, model, pair_encoding)
    return plan_line(*args) if args else not_ready(ctx, dataset_id, eval_split)


def not_ready(ctx: Ctx, dataset_id: int | None, eval_split) -> str:
    """Why no job could start on the dataset yet (too few labels, one class...), before Start is pressed."""
    if not dataset_id:
        return ""
    try:
        with ctx.sessions() as s:
            problems = repo.training_plan(s, int(dataset_id), float(eval_split or 0))["problems"]
    except (KeyError, ValueError):
        return ""
    if not problems:
        return ""
    return f"**Not ready to train:** {esc('; '.join(problems))}. Label examples in the **Label** tab, then Start."


def job_time(ctx: Ctx, dataset_id: int, config: dict) -> str:
    """ "about 2 min" for a train job of this config on the dataset as it is now (the Label tab's Retrain says it);
    empty when it cannot be told."""
    args = _plan_args(
        ctx,
        dataset_id,
        config.get("mode", "auto"),
        config.get("epochs"),
        config.get("batch_size", 32),
        config.get("eval_split", 0.1),
        config.get("model") or "",
        config.get("pair_encoding", "auto"),
    )
    return format_seconds(plan_seconds(*args)[1]) if args else ""


def _device() -> str:
    """cuda when this machine has an NVIDIA driver loaded: the web process does not import torch to ask."""
    return "cuda" if Path("/proc/driver/nvidia/version").exists() else "cpu"
