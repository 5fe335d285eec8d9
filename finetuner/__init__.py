"""Finetuner's engine: fine-tune a classification head on a pretrained transformer. Knows nothing of UI or DB."""

from finetuner.config import DEFAULT_MODEL, TrainConfig
from finetuner.modeling import ModelLoadError
from finetuner.tasks import DataValidationError
from finetuner.train import Callbacks, EvalInfo, StepInfo, TrainingError, TrainResult, train

__all__ = [
    "DEFAULT_MODEL",
    "Callbacks",
    "DataValidationError",
    "EvalInfo",
    "ModelLoadError",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "train",
]
