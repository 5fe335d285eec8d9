"""The explain view: one real input through the head, step by step, as the reference text works its examples.

single:     representation h -> logits h W -> softmax -> loss -log p(gold)
multilabel: representation h -> logits h W -> sigmoid per label -> binary cross-entropy per label, and their mean
regression: representation h -> score h w (W is d x 1) -> squared error (score - gold)^2
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from finetuner import modeling
from finetuner.tasks import first_subwords


@torch.inference_mode()
def explain(predictor, text, label=None, text_pair: str | None = None, word: int = 0) -> dict:
    """Explain one prediction of a loaded ``Predictor`` (see Predictor.explain for the arguments).

    Returns:
        every problem: ``{"representation_size", "representation_head" (first 8 values), "weight_shape"}``, plus
        single ``{"logits", "probabilities", "label", "loss", "predicted"}`` with loss = -log p(label);
        multilabel ``{"logits", "probabilities" (sigmoid), "thresholds", "label" (gold list), "loss" (mean BCE over
        labels), "per_label_loss", "predicted" (labels at or above their thresholds)}``;
        regression ``{"score", "label" (gold or None), "loss" ((score - gold)^2 or None), "predicted" (the score)}``.
    """
    rep = _representation(predictor, text, text_pair, word)
    logits = modeling.head_of(predictor.model)(rep).float()
    labels = predictor.labels
    out = {
        "representation_size": int(rep.shape[-1]),
        "representation_head": [round(v, 4) for v in rep[:8].tolist()],
        # W is d x K (2d x K for concat pairs, d x 1 for regression)
        "weight_shape": [int(rep.shape[-1]), len(labels)],
    }
    steps = {"multilabel": _multilabel, "regression": _regression}.get(predictor.problem, _single)
    return {**out, **steps(predictor, logits, label)}


def _representation(predictor, text, text_pair, word: int) -> torch.Tensor:
    """h: the vector the head reads for this input (for token models, the chosen word's first sub-word)."""
    from finetuner.predict import _words

    if predictor.task == "token":
        spans = _words(text) if isinstance(text, str) else [(w, 0, 0) for w in text]
        enc = predictor._tokenize([[w for w, _, _ in spans]], is_split_into_words=True)
        with predictor._lock:
            hidden = modeling.represent(predictor.model, dict(enc))
        positions, word_index = first_subwords(enc.word_ids(0))
        if word not in word_index:
            raise ValueError(f"word {word} is out of range (the sentence has {len(spans)} words)")
        return hidden[0, positions[word_index.index(word)]]
    if predictor.task == "pair" and predictor.meta.get("pair_encoding") == "concat":
        a, b = predictor._tokenize([text]), predictor._tokenize([text_pair])
        batch = {**a, "pair_input_ids": b["input_ids"], "pair_attention_mask": b["attention_mask"]}
    else:
        batch = dict(predictor._tokenize([text], [text_pair] if predictor.task == "pair" else None))
    with predictor._lock:
        return modeling.represent(predictor.model, batch)[0]


def _single(predictor, logits: torch.Tensor, label) -> dict:
    labels = predictor.labels
    probs = F.softmax(logits, dim=-1)
    predicted = labels[int(probs.argmax())]
    label = predicted if label is None else str(label)
    if label not in labels:
        raise ValueError(f"label {label!r} is not one of {labels}")
    loss = -torch.log(probs[labels.index(label)])
    return {
        "logits": dict(zip(labels, logits.tolist(), strict=True)),
        "probabilities": dict(zip(labels, probs.tolist(), strict=True)),
        "label": label,
        "loss": float(loss),
        "predicted": predicted,
    }


def _multilabel(predictor, logits: torch.Tensor, label) -> dict:
    labels = predictor.labels
    thresholds = predictor.thresholds or dict.fromkeys(labels, 0.5)
    probs = torch.sigmoid(logits)
    predicted = [name for name, p in zip(labels, probs.tolist(), strict=True) if p >= thresholds[name]]
    if label is None:
        gold = predicted
    elif isinstance(label, str):
        gold = [part.strip() for part in label.split(",") if part.strip()]
    else:
        gold = [str(v) for v in label]
    unknown = [g for g in gold if g not in labels]
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not one of {labels}")
    target = torch.tensor([1.0 if name in gold else 0.0 for name in labels])
    # per label: -[y log p + (1 - y) log(1 - p)], computed from the logit so p near 0 or 1 stays finite
    per_label = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return {
        "logits": dict(zip(labels, logits.tolist(), strict=True)),
        "probabilities": dict(zip(labels, probs.tolist(), strict=True)),
        "thresholds": dict(thresholds),
        "label": [name for name in labels if name in gold],
        "loss": float(per_label.mean()),
        "per_label_loss": dict(zip(labels, per_label.tolist(), strict=True)),
        "predicted": predicted,
    }


def _regression(predictor, logits: torch.Tensor, label) -> dict:
    score = float(logits[0])
    gold = None
    if label is not None and not (isinstance(label, str) and not label.strip()):
        try:
            gold = float(label)
        except (TypeError, ValueError):
            raise ValueError(
                f"label {label!r} is not a number: a regression model scores against one"
            ) from None
    return {
        "score": score,
        "label": gold,
        "loss": None if gold is None else (score - gold) ** 2,
        "predicted": score,
    }
