"""Runs shared by the data-parallel test: the same trainings in one process (in the test) and under torchrun.

``python -m torch.distributed.run --nproc_per_node=2 tests/finetuner/ddp_support.py OUT`` trains every run of RUNS on
2 gloo ranks and has each rank write OUT/rankN.json; ``train_runs(out)`` trains them in the calling process.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # engine_toys, when started as a script by torchrun

from engine_toys import make_examples  # noqa: E402

from finetuner import Callbacks, TrainConfig, train  # noqa: E402
from finetuner.batches import EncoderBatches, FeatureBatches  # noqa: E402
from finetuner.tasks import IGNORE  # noqa: E402

# No dropout anywhere: the ranks draw different dropout masks than one process does, and the test wants equality.
NO_DROPOUT = {"num_hidden_layers": 1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# 17 examples at batch 8: batches of 8, 8 and 1, so rank 1 meets a global batch that has no row for it.
RUNS = {
    "sequence-full": dict(
        task="sequence", n=17, mode="full", epochs=2, lr=5e-4, class_weight=True, label_smoothing=0.1
    ),
    "token-full": dict(task="token", n=12, mode="full", epochs=1, lr=5e-4, batch_size=4),
    "pair-frozen": dict(task="pair", n=17, mode="frozen", epochs=3, lr=2e-2),
    # 3 steps an epoch: cancelled at step 4 (rank 0 reads should_stop, both ranks stop), resumed from epoch 1
    "sequence-cancel-resume": dict(task="sequence", n=17, mode="top-1", epochs=2, lr=5e-4, cancel_at=4),
}


def _counting(original, seen: list[int]):
    """A train_batches that adds up the labeled rows (or tags) this process trained on."""

    def train_batches(self, epoch):
        for n, batch in original(self, epoch):
            seen[0] += int((batch["labels"] != IGNORE).sum())
            yield n, batch

    return train_batches


def train_runs(out: Path) -> dict:
    """Train every run into out/NAME; per run the per-step losses, labeled rows trained on here, and model folder.

    A run with ``cancel_at`` is cancelled (should_stop) after that many steps and then resumed from its checkpoint.
    """
    seen = [0]
    originals = EncoderBatches.train_batches, FeatureBatches.train_batches
    EncoderBatches.train_batches = _counting(originals[0], seen)
    FeatureBatches.train_batches = _counting(originals[1], seen)
    try:
        results = {}
        for name, spec in RUNS.items():
            seen[0] = 0
            results[name] = {**_train_run(out / name, dict(spec)), "labeled": seen[0]}
        return results
    finally:
        EncoderBatches.train_batches, FeatureBatches.train_batches = originals


def _train_run(folder: Path, spec: dict) -> dict:
    task, n, cancel_at = spec.pop("task"), spec.pop("n"), spec.pop("cancel_at", None)
    settings = dict(batch_size=8, eval_split=0.0, log_every=1, seed=0, classifier_dropout=0.0)
    settings.update(spec)
    config = TrainConfig(
        task=task, output_dir=str(folder), model_overrides=NO_DROPOUT, pooling="mean", **settings
    )
    losses: dict[int, float] = {}  # by step: a resumed run reports the steps after its checkpoint again
    data, eval_data = make_examples(task, n=n), make_examples(task, n=8, seed=1)
    record = Callbacks(on_step=lambda s: losses.__setitem__(s.step, s.loss))
    cancelled = False
    if cancel_at:
        stop = Callbacks(on_step=record.on_step, should_stop=lambda: len(losses) >= cancel_at)
        cancelled = train(config, data, eval_data, stop).cancelled
        config = dataclasses.replace(config, resume=True)
    result = train(config, data, eval_data, record)
    return {
        "losses": [losses[k] for k in sorted(losses)],
        "folder": result.output_dir,
        "metrics": result.metrics,
        "cancelled": cancelled,
    }


if __name__ == "__main__":
    import torch.distributed as dist

    from finetuner import distributed

    out = Path(sys.argv[1])
    results = train_runs(out)
    record = {"world_size": distributed.world_size(), "runs": results}
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps(record))
    assert (
        dist.is_initialized() and dist.get_backend() == "gloo"
    )  # train() joined torchrun's group on the CPU
