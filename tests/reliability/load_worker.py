"""`worker.py` with a two-step stand-in for ``finetuner.train``: the load test's worker (tests/reliability/test_pg_load.py).

Everything else is the real worker: it claims from the real queue, holds the lease, reports steps, evals and
the finish through `repo` under its attempt. The stand-in appends "<job id> <pid>" to FINETUNER_LOAD_LEDGER when a
job starts, so the test can count how often each job ran, and writes a one-file model folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import finetuner  # noqa: E402
import worker  # noqa: E402
from finetuner.training import Callbacks, EvalInfo, StepInfo, TrainResult  # noqa: E402

STEPS = 2  # as many as a 1-epoch run of 1-2 batches reports


def two_steps(config, train_data, eval_data=None, callbacks=None) -> TrainResult:
    """Report STEPS steps and one eval like a tiny run, without the model: 40 real trainings do not fit 2 cores."""
    cb = callbacks or Callbacks()
    with open(os.environ["FINETUNER_LOAD_LEDGER"], "a") as ledger:  # O_APPEND: one whole line per write
        ledger.write(f"{Path(config.output_dir).name} {os.getpid()}\n")
    for step in range(1, STEPS + 1):
        if cb.should_stop():
            return TrainResult(output_dir=None, metrics={}, cancelled=True)
        cb.on_step(StepInfo(step, STEPS, 1, 1, 1.0 / step, 1e-3, len(train_data), 0.0))
    metrics = {"loss": 0.5, "accuracy": 1.0}
    cb.on_eval(EvalInfo(1, STEPS, metrics, True))
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetuner.json").write_text(json.dumps({"task": config.task, "examples": len(train_data)}))
    return TrainResult(
        str(out), metrics, [{"epoch": 1, "step": STEPS, **metrics}], epochs_run=1, best_epoch=1
    )


finetuner.train = two_steps  # run_job imports it from the package at call time

if __name__ == "__main__":
    worker.main()
