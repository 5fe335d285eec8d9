"""What a sequence / pair task asks of its outputs: one label, several labels, or a score.

A ``Problem`` is the strategy a Task holds, so the training loop, evaluation, the Predictor and batch prediction each
make one call where they would otherwise branch on the problem:

- single:     K outputs, ``softmax``; target a class index; cross-entropy (class weights, label smoothing).
- multilabel: K outputs, one ``sigmoid`` each; target a multi-hot vector over the label set; binary cross-entropy
  averaged over all B x K cells (as transformers' ``multi_label_classification``); a threshold per label turns
  probabilities into labels (tuned on the eval data, see metrics.tune_thresholds).
- regression: one output, the score itself; target a float; mean squared error.

Token labeling is always "single" (one tag per word). Nothing here imports the rest of the engine.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from finetuner import metrics as metric_fns
from finetuner.config import PROBLEMS

IGNORE = -100  # label index cross_entropy skips: special tokens and non-first sub-words
HF_PROBLEM_TYPES = {  # config.json's problem_type, as transformers' *ForSequenceClassification reads it
    "single": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}
REGRESSION_LABELS = ["score"]  # a regression model's one output
DEFAULT_THRESHOLD = 0.5
PRIOR_FLOOR = 1e-3  # a label in no (or every) training example starts at log-odds -6.9 (6.9), not -inf
# A loss this many times a chance-level model's is no bad epoch but weights that blew up: confidently wrong at every
# example, which a working run never is (a diverged frozen head at lr 1e6 reached 1e15 at epoch 1).
DIVERGED_X_CHANCE = 100


class DataValidationError(ValueError):
    """Examples the engine cannot train on, with the example's position (1-based) and field named."""


class Problem:
    """Single-label classification (today's problem, the default) and the interface the others fill in: label
    validation, targets, collation, loss and its denominator, outputs, metrics, predictions, saved fields."""

    name = "single"

    def check_value(self, value, where: str) -> None:
        """Raise DataValidationError unless ``value`` is a usable label cell (``where``: "training example 3")."""
        if value is None or (isinstance(value, str | list) and len(value) == 0):
            raise DataValidationError(f"{where}: field 'label' is missing or empty")

    def label_names(self, value) -> list[str]:
        """The label-set names a label cell uses (checked against the model's labels)."""
        return [str(value)]

    def label_set(self, examples: list[dict]) -> list[str]:
        """The output names found in training examples (sorted), refusing data this problem cannot learn from."""
        names = sorted({str(ex["label"]) for ex in examples})
        if len(names) < 2:
            raise DataValidationError(
                "training data has only one label: a classifier needs at least two classes"
            )
        return names

    def target(self, value, labels: list[str]):
        return labels.index(str(value))

    def collate(self, targets: list) -> torch.Tensor:
        return torch.tensor(targets, dtype=torch.long)

    def labeled(self, gold: torch.Tensor) -> torch.Tensor:
        """Which flat rows carry a label: [N] booleans (IGNORE marks token positions without one)."""
        return gold != IGNORE

    def loss(
        self,
        logits: torch.Tensor,
        gold: torch.Tensor,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        return F.cross_entropy(
            logits,
            gold,
            weight=weight,
            ignore_index=IGNORE,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def loss_denominator(self, gold: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """What the mean loss divides by: labeled rows, or their class weights' sum (cross_entropy's own rule)."""
        keep = gold != IGNORE
        if weight is None:
            return keep.sum().to(torch.float32)
        return weight[gold[keep]].sum().to(torch.float32)

    def divergence_limit(self, num_outputs: int) -> float:
        """A loss above this means the run diverged: 100 x a uniform guess's cross-entropy ln K."""
        return DIVERGED_X_CHANCE * math.log(max(num_outputs, 2))

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Per flat row, what the metrics read: the predicted class index."""
        return logits.argmax(-1)

    def metrics(self, pred_rows: list, gold_rows: list, labels: list[str]) -> dict:
        return metric_fns.classification_metrics(gold_rows, pred_rows, labels)

    def predictions(self, logits: torch.Tensor, labels: list[str]) -> list[dict]:
        """What Predictor.predict returns for each row of [B, K] logits."""
        probs = F.softmax(logits.float(), dim=-1)
        return [
            {"label": labels[int(p.argmax())], "probabilities": dict(zip(labels, p.tolist(), strict=True))}
            for p in probs
        ]

    def meta_fields(self, labels: list[str], metrics: dict) -> dict:
        """What finetuner.json stores for this problem beyond the task and labels."""
        return {"problem": self.name}

    @classmethod
    def from_examples(cls, examples: list[dict]) -> Problem:
        """The problem for these training examples (what its head's start needs to know about them)."""
        return cls()

    def init_head(self, head: torch.nn.Linear, labels: list[str]) -> None:
        """Adjust a fresh head before training (single-label classifiers keep transformers' initialisation)."""


class MultiLabel(Problem):
    """Several labels per example; ``thresholds`` fixed (a saved model) or None (tuned at each evaluation)."""

    name = "multilabel"

    def __init__(
        self, thresholds: dict[str, float] | None = None, label_rates: dict[str, float] | None = None
    ):
        self.thresholds = dict(thresholds) if thresholds else None
        self.label_rates = dict(label_rates) if label_rates else None  # share of training examples per label

    @classmethod
    def from_examples(cls, examples: list[dict]) -> MultiLabel:
        counts: dict[str, int] = {}
        for ex in examples:
            for name in {str(v) for v in ex["label"] or ()}:
                counts[name] = counts.get(name, 0) + 1
        return cls(label_rates={name: n / max(len(examples), 1) for name, n in counts.items()})

    def init_head(self, head: torch.nn.Linear, labels: list[str]) -> None:
        """Start each label's bias at the log-odds of its training rate (the prior initialisation of Lin et al.,
        2017, "Focal loss"): a fresh head then predicts each label's base rate instead of 0.5 for all, so the first
        steps of a fine-tuning run go into telling examples apart, not into pulling 28 sigmoids down to ~4%. Without
        it full fine-tuning on 4,000 GoEmotions comments ended at the predict-everything floor (BENCHMARKS.md)."""
        if not self.label_rates:
            return
        rates = torch.tensor([self.label_rates.get(name, 0.0) for name in labels], dtype=torch.float32)
        rates = rates.clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR)
        with torch.no_grad():
            head.bias.copy_(torch.log(rates / (1 - rates)).to(head.bias))

    def check_value(self, value, where: str) -> None:
        if value is None:
            raise DataValidationError(f"{where}: field 'label' is missing")
        if not isinstance(value, list | tuple):
            raise DataValidationError(
                f"{where}: field 'label' must be a list of labels for a multi-label task, not {value!r}"
            )
        for v in value:
            if not isinstance(v, str) or not v.strip():
                raise DataValidationError(
                    f"{where}: field 'label' holds {v!r}; each label must be a non-empty text"
                )

    def label_names(self, value) -> list[str]:
        return [str(v) for v in value]

    def label_set(self, examples: list[dict]) -> list[str]:
        names = sorted({str(v) for ex in examples for v in ex["label"]})
        if not names:
            raise DataValidationError(
                "training data has no label on any example: a multi-label task needs some"
            )
        return names

    def target(self, value, labels: list[str]) -> list[float]:
        present = {str(v) for v in value}
        return [1.0 if name in present else 0.0 for name in labels]

    def collate(self, targets: list) -> torch.Tensor:
        return torch.tensor(targets, dtype=torch.float32)

    def labeled(self, gold: torch.Tensor) -> torch.Tensor:
        # [] is a label too (none apply); NaN marks a padding row (distributed.shard_batch)
        return ~torch.isnan(gold).any(-1)

    def loss(self, logits, gold, weight=None, label_smoothing=0.0, reduction="mean") -> torch.Tensor:
        cells = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(gold), reduction="none")
        return _reduce(cells, self.labeled(gold).unsqueeze(-1), reduction)

    def loss_denominator(self, gold, weight=None) -> torch.Tensor:
        return (self.labeled(gold).sum() * gold.shape[-1]).to(torch.float32)  # every (example, label) cell

    def divergence_limit(self, num_outputs: int) -> float:
        """100 x a coin flip's per-cell binary cross-entropy ln 2 (the loss is a mean over cells, so K drops out)."""
        return DIVERGED_X_CHANCE * math.log(2)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def metrics(self, pred_rows: list, gold_rows: list, labels: list[str]) -> dict:
        thresholds = self.thresholds or metric_fns.tune_thresholds(pred_rows, gold_rows, labels)
        return metric_fns.multilabel_metrics(gold_rows, pred_rows, labels, thresholds)

    def predictions(self, logits: torch.Tensor, labels: list[str]) -> list[dict]:
        thresholds = self.thresholds or dict.fromkeys(labels, DEFAULT_THRESHOLD)
        out = []
        for p in torch.sigmoid(logits.float()).tolist():
            probs = dict(zip(labels, p, strict=True))
            out.append(
                {
                    "labels": [name for name in labels if probs[name] >= thresholds[name]],
                    "probabilities": probs,
                    "thresholds": dict(thresholds),
                }
            )
        return out

    def meta_fields(self, labels: list[str], metrics: dict) -> dict:
        """The kept evaluation's tuned thresholds; 0.5 each without eval data."""
        thresholds = metrics.get("thresholds") or dict.fromkeys(labels, DEFAULT_THRESHOLD)
        return {"problem": self.name, "thresholds": dict(thresholds)}


class Regression(Problem):
    """One score per example; ``score_range`` and ``mean_square`` describe the training targets."""

    name = "regression"

    def __init__(
        self,
        score_range: tuple[float, float] | None = None,
        mean_square: float | None = None,
        mean: float | None = None,
    ):
        self.score_range = tuple(score_range) if score_range else None
        self.mean_square, self.mean = mean_square, mean

    @classmethod
    def from_examples(cls, examples: list[dict]) -> Regression:
        values = [float(ex["label"]) for ex in examples]
        n = len(values)
        return cls((min(values), max(values)), sum(v * v for v in values) / n, sum(values) / n)

    def init_head(self, head: torch.nn.Linear, labels: list[str]) -> None:
        """Start the bias at the training scores' mean: a fresh head then predicts the mean (MSE = the variance)
        instead of 0, so no early steps go into moving the output to the scale (a 1-5 similarity sits ~3 away)."""
        if self.mean is not None:
            with torch.no_grad():
                head.bias.fill_(self.mean)

    def check_value(self, value, where: str) -> None:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataValidationError(f"{where}: field 'label' is missing or empty")
        number = _as_number(value)
        if number is None or not math.isfinite(number):
            raise DataValidationError(
                f"{where}: field 'label' must be a finite number for regression, not {value!r}"
            )

    def label_names(self, value) -> list[str]:
        return []  # a score has no label set to belong to

    def label_set(self, examples: list[dict]) -> list[str]:
        if len({float(ex["label"]) for ex in examples}) < 2:
            raise DataValidationError("training data has only one score value: regression needs at least two")
        return list(REGRESSION_LABELS)

    def target(self, value, labels: list[str]) -> float:
        return float(value)

    def collate(self, targets: list) -> torch.Tensor:
        return torch.tensor(targets, dtype=torch.float32)

    def labeled(self, gold: torch.Tensor) -> torch.Tensor:
        return ~torch.isnan(gold)  # -100.0 is a score, not IGNORE; NaN: a padding row (distributed.py)

    def loss(self, logits, gold, weight=None, label_smoothing=0.0, reduction="mean") -> torch.Tensor:
        squares = F.mse_loss(logits.reshape(-1), torch.nan_to_num(gold), reduction="none")
        return _reduce(squares, self.labeled(gold), reduction)

    def loss_denominator(self, gold, weight=None) -> torch.Tensor:
        return self.labeled(gold).sum().to(torch.float32)

    def divergence_limit(self, num_outputs: int) -> float:
        """100 x a bound on an untrained head's MSE: the targets' mean square E[y^2] (their variance plus their
        mean squared: the MSE of predicting 0), plus 1 for the O(1) noise of the head's random weights."""
        return DIVERGED_X_CHANCE * ((self.mean_square if self.mean_square is not None else 1.0) + 1.0)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, 0]

    def metrics(self, pred_rows: list, gold_rows: list, labels: list[str]) -> dict:
        return metric_fns.regression_metrics(gold_rows, pred_rows)

    def predictions(self, logits: torch.Tensor, labels: list[str]) -> list[dict]:
        return [{"score": float(v)} for v in logits.float()[:, 0].tolist()]

    def meta_fields(self, labels: list[str], metrics: dict) -> dict:
        fields = {"problem": self.name}
        if self.score_range is not None:
            fields["score_range"] = list(self.score_range)
        return fields


def _reduce(values: torch.Tensor, keep: torch.Tensor, reduction: str) -> torch.Tensor:
    """Sum or mean over the kept entries, by masking rather than indexing: no data-dependent shapes, so a step
    stays capturable in a CUDA graph (cuda_graphs.py)."""
    keep = keep.expand_as(values)
    total = (values * keep).sum()
    return total if reduction == "sum" else total / keep.sum().clamp(min=1)


def _as_number(value) -> float | None:
    if isinstance(value, bool):  # True is an int to Python, not a score to a user
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def problem_class(name: str) -> type[Problem]:
    """The Problem class for a name in PROBLEMS."""
    classes = {"single": Problem, "multilabel": MultiLabel, "regression": Regression}
    if name not in classes:
        raise ValueError(f"problem must be one of {PROBLEMS}, not {name!r}")
    return classes[name]


def problem_from_meta(meta: dict) -> Problem:
    """A saved folder's problem (folders saved before problems existed are single-label)."""
    name = meta.get("problem") or "single"
    if name == "multilabel":
        return MultiLabel(meta.get("thresholds"))
    if name == "regression":
        return Regression(meta.get("score_range"))
    return problem_class(name)()
