"""CUDA-graph training steps (finetuner/cuda_graphs.py) give the eager loop's results. GPU only; opt-in (-m gpu).

Self-contained (no conftest fixtures) so a GPU machine without pytest can run it as a script:
``python3 tests/finetuner/test_cuda_graphs.py``.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from finetuner import TrainConfig, train  # noqa: E402
from finetuner import training as training_module  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

NO_DROPOUT = {"num_hidden_layers": 2, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
WORDS = [
    "good",
    "great",
    "fine",
    "awful",
    "bad",
    "poor",
    "the",
    "a",
    "movie",
    "plot",
    "acting",
    "was",
    "is",
    "very",
    "not",
    "quite",
]


def _sentences(n: int, seed: int = 0) -> list[dict]:
    """Labeled sentences of 3-40 words (several padded lengths, so several graphs), label = more good than bad."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 40))]
        score = sum(w in ("good", "great", "fine") for w in words) - sum(
            w in ("awful", "bad", "poor") for w in words
        )
        out.append({"text": " ".join(words), "label": "pos" if score >= 0 else "neg"})
    return out


def _run(graphs: bool, data=None, eval_data=None, **overrides) -> tuple[object, list[object]]:
    """Train with or without graphs; returns the result and the GraphedStep objects the loop built."""
    built = []

    class Spy(training_module.GraphedStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    original = training_module.GraphedStep
    training_module.GraphedStep = Spy
    try:
        with tempfile.TemporaryDirectory() as out:
            settings = {
                "task": "sequence",
                "output_dir": out,
                "mode": "full",
                "epochs": 2,
                "batch_size": 8,
                "precision": "fp32",
                "classifier_dropout": 0.0,
                "model_overrides": NO_DROPOUT,
                "cuda_graphs": graphs,
                "device": "cuda",
                **overrides,
            }
            result = train(
                TrainConfig(**settings), data or _sentences(160), eval_data or _sentences(24, seed=1)
            )
        return result, built
    finally:
        training_module.GraphedStep = original


def test_graphed_steps_match_eager_steps():
    eager, none_built = _run(graphs=False)
    graphed, built = _run(graphs=True)
    assert not none_built and len(built) == 1
    step = built[0]
    assert len(step.graphs) >= 3  # several padded lengths were captured and replayed
    assert step.eager_steps <= 2 * 160 // 8 // 2  # most of the 40 steps were replays, not eager runs
    for a, b in zip(eager.history, graphed.history, strict=True):
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-3, abs_tol=1e-4), (a["loss"], b["loss"])


def test_graphs_with_bf16_dropout_and_pairs_train():
    pairs = [{"text": s["text"], "text_pair": s["text"][::-1], "label": s["label"]} for s in _sentences(64)]
    for pair_encoding in ("cross", "concat"):
        result, built = _run(
            graphs=True,
            task="pair",
            pair_encoding=pair_encoding,
            precision="bf16",
            classifier_dropout=0.1,
            model_overrides={"num_hidden_layers": 2},
            data=pairs[:48],
            eval_data=pairs[48:],
        )
        assert built and built[0].graphs
        assert all(math.isfinite(h["loss"]) for h in result.history)


def test_graphs_train_a_frozen_head_on_cached_features():
    result, built = _run(graphs=True, mode="frozen", epochs=3, precision="bf16", classifier_dropout=0.1)
    assert built and built[0].graphs
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print(f"PASSED {name}", flush=True)
