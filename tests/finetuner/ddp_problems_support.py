"""Multi-label and regression runs for the data-parallel test: in one process, or as a torchrun script.

``python -m torch.distributed.run --nproc_per_node=2 tests/finetuner/ddp_problems_support.py OUT`` trains every run of
RUNS on 2 gloo ranks and has rank 0 write OUT/rank0.json; ``train_runs(out)`` trains them in the calling process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the toy sets, when started as a script by torchrun

from test_engine_problems import multilabel_examples, regression_examples  # noqa: E402

from finetuner import Callbacks, TrainConfig, train  # noqa: E402

NO_DROPOUT = {"num_hidden_layers": 1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# 17 examples at batch 8: batches of 8, 8 and 1, so rank 1 meets a global batch with no row for it (a NaN row)
RUNS = {
    "multilabel-full": dict(problem="multilabel", task="sequence", mode="full", epochs=2, lr=5e-4),
    "regression-frozen": dict(problem="regression", task="pair", mode="frozen", epochs=3, lr=2e-2),
}


def train_runs(out: Path) -> dict:
    results = {}
    for name, spec in RUNS.items():
        spec = dict(spec)
        make = multilabel_examples if spec["problem"] == "multilabel" else regression_examples
        config = TrainConfig(
            output_dir=str(out / name),
            batch_size=8,
            eval_split=0.0,
            log_every=1,
            seed=0,
            classifier_dropout=0.0,
            model_overrides=NO_DROPOUT,
            pooling="mean",
            **spec,
        )
        losses: dict[int, float] = {}
        data, eval_data = make(spec["task"], 17), make(spec["task"], 8, seed=1)
        result = train(
            config,
            data,
            eval_data,
            Callbacks(on_step=lambda s, seen=losses: seen.__setitem__(s.step, s.loss)),
        )
        results[name] = {"losses": [losses[k] for k in sorted(losses)], "folder": result.output_dir}
    return results


if __name__ == "__main__":
    from finetuner import distributed

    out = Path(sys.argv[1])
    results = train_runs(out)
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps({"runs": results}))
