"""Fixtures for the engine tests: tiny separable data sets and a 1-layer copy of the bundled model."""

from __future__ import annotations

import pytest
from engine_toys import make_examples

from finetuner import TrainConfig


@pytest.fixture(name="make_examples")
def make_examples_fixture():
    """The toy-set factory, make_examples(task, n=24, seed=0)."""
    return make_examples


@pytest.fixture
def tiny_config(tmp_path):
    """Factory for a TrainConfig on a 1-layer copy of the bundled MiniLM (real weights, ~0.1 s a step)."""

    def make(task: str = "sequence", folder: str = "model", **overrides) -> TrainConfig:
        """folder: the output folder's name under the test's tmp_path (one per run when a test trains several)."""
        settings = dict(
            task=task,
            output_dir=str(tmp_path / folder),
            mode="full",  # the loop's tests exercise fine-tuning; Auto has its own (test_auto.py)
            model_overrides={"num_hidden_layers": 1},
            batch_size=8,
            eval_split=0.0,
            log_every=1,
            seed=0,
        )
        settings.update(overrides)
        return TrainConfig(**settings)

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A local model folder holding a 1-layer copy of the bundled MiniLM (for the CLI, which takes --model DIR)."""
    from transformers import AutoModel

    from finetuner.modeling import load_tokenizer, resolve_model

    path = tmp_path_factory.mktemp("minilm-1layer")
    AutoModel.from_pretrained(resolve_model(""), num_hidden_layers=1).save_pretrained(path)
    load_tokenizer(resolve_model("")).save_pretrained(path)
    return str(path)
