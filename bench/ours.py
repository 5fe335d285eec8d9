"""Run Finetuner's engine the way the app does (finetuner.training), timed the same way as bench/reference.py."""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run as a script from anywhere: the repo's finetuner/
from finetuner import Callbacks, TrainConfig, train

try:
    from reference import StepClock, pick_device
except ImportError:  # imported as bench.ours
    from bench.reference import StepClock, pick_device


def evaluate_folder(folder: str, examples: list[dict], device: str = "auto") -> dict:
    """Score a saved model folder on examples with the engine's own eval path (metrics as in training)."""
    from finetuner.training import evaluate_folder as engine_evaluate_folder

    return engine_evaluate_folder(folder, examples, device=pick_device(device).type)


def headline(metrics: dict) -> dict:
    """The figures a table shows: accuracy and F1 of class "1" (binary), or entity P/R/F1 (token)."""
    if "per_class" in metrics and "accuracy" in metrics and "macro_f1" in metrics:
        out = {"accuracy": metrics["accuracy"]}
        if "1" in metrics["per_class"] and len(metrics["per_class"]) == 2:
            out["f1"] = metrics["per_class"]["1"]["f1"]
        return out
    return {k: metrics[k] for k in ("f1", "precision", "recall") if k in metrics}


def run_ours(
    task: str,
    train_data: list[dict],
    eval_sets: dict[str, list[dict]],
    log=print,
    **config_kwargs,
) -> dict:
    """finetuner.train with TrainConfig(task=..., output_dir=tmp, **config_kwargs); the first eval set is eval_data.

    Returns the same shape as reference.run_reference, plus "kept" (the kept epoch's metrics, which the engine
    picks on the eval data), "last" (the last epoch's) and, in frozen mode, "encode_s" (the one encoder pass).
    """
    names = list(eval_sets)
    clock, history, phases = StepClock(), [], {}
    calls, evals = [0], [0]
    wall_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as out_dir:
        config = TrainConfig(task=task, output_dir=out_dir, **config_kwargs)
        # rows per epoch = examples, except frozen token mode (rows are words), which no bench row uses
        steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
        total = steps_per_epoch * config.epochs

        def should_stop() -> bool:
            # a new segment at each epoch and after each evaluation (several an epoch on large data)
            clock.mark((calls[0] // steps_per_epoch, evals[0]))
            calls[0] += 1
            return False

        def on_step(info) -> None:
            if info.step % (config.log_every * 2) == 0 or info.step == info.total_steps:
                log(
                    f"    [ours] step {info.step}/{info.total_steps} loss {info.loss:.4f} "
                    f"{info.examples_per_s:.1f} ex/s"
                )

        def on_eval(info) -> None:
            figures = headline(info.metrics)
            evals[0] += 1
            history.append(
                {
                    "epoch": info.epoch,
                    "train_s": clock.train_s_so_far(),
                    # everything since the first step: graph captures, evals and checkpoints included
                    "wall_s": time.perf_counter() - clock.starts[0][1],
                    **figures,
                    "loss": info.metrics["loss"],
                }
            )
            log(f"    [ours] epoch {info.epoch}: { ({k: round(v, 4) for k, v in history[-1].items()}) }")

        def on_phase(name: str, fraction: float) -> None:
            now = time.perf_counter()
            phases.setdefault(name, [now, now])[1] = now

        result = train(
            config,
            train_data,
            eval_sets[names[0]] if names else None,
            Callbacks(on_step=on_step, on_eval=on_eval, on_phase=on_phase, should_stop=should_stop),
        )
        metrics = {names[0]: headline(result.metrics)} if names else {}
        for name in names[1:]:
            metrics[name] = headline(evaluate_folder(result.output_dir, eval_sets[name], config.device))
        if len(names) > 1 and result.best_epoch is not None:
            log(f"    [ours] {names[1:]} scored with the kept epoch {result.best_epoch}")
    train_s, timed_steps = clock.train_time()
    encode = phases.get("encoding features")
    return {
        "metrics": metrics,  # the kept epoch (best on the first eval set), as a user gets it
        "last": {k: v for k, v in history[-1].items() if k not in ("epoch", "train_s", "wall_s", "loss")}
        if history
        else {},
        "kept_epoch": result.best_epoch,
        "history": history,
        "train_s": clock.train_s_so_far(),
        "ex_per_s": timed_steps * config.batch_size / train_s if train_s else None,
        "ex_per_s_median": config.batch_size / clock.median_step_s() if clock.median_step_s() else None,
        "load_avg": os.getloadavg(),
        "wall_s": time.perf_counter() - wall_start,
        "steps": total,
        "epochs": config.epochs,
        "encode_s": encode[1] - encode[0] if encode else None,
        "config": {k: v for k, v in config.to_dict().items() if k != "output_dir"},
        "device": str(pick_device(config.device)),
        "torch_threads": torch.get_num_threads(),
    }
