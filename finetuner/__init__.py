"""Finetuner's engine: fine-tune a classification head on a pretrained transformer. Knows nothing of UI or DB.

Only the config is imported eagerly: ``from finetuner import TrainConfig`` must not pay for torch and transformers
(the web process builds configs long before it trains or predicts anything).
"""

from importlib import import_module

from finetuner.config import DEFAULT_MODEL, TrainConfig

_LAZY = {
    "Callbacks": "finetuner.training",
    "EvalInfo": "finetuner.training",
    "StepInfo": "finetuner.training",
    "TrainingError": "finetuner.errors",
    "TrainResult": "finetuner.training",
    "train": "finetuner.training",
    "ModelLoadError": "finetuner.modeling",
    "DataValidationError": "finetuner.tasks",
    "Predictor": "finetuner.predict",
}

__all__ = ["DEFAULT_MODEL", "TrainConfig", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        # Cache it, so later lookups skip this function (the loop lives in finetuner.training, so the package
        # attribute "train" is the function, never a submodule).
        globals()[name] = value
        return value
    if name in ("modeling", "tasks", "batches", "metrics", "predict", "hf_model", "training"):
        return import_module(f"finetuner.{name}")
    raise AttributeError(f"module 'finetuner' has no attribute {name!r}")
