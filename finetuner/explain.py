"""The explain view: one real input through the head, step by step, as the reference text works its examples.

The representation h is the encoder's pooled vector (n pooled layers side by side with feature_layers n); for a pair
it is that of the cross-encoded pair, [u, v] of the two texts encoded separately (concat), or [u, v, |u-v|, u*v]
(siamese), which the "representation" line spells out.

single:     representation h -> logits h W -> softmax -> loss -log p(gold)
multilabel: representation h -> logits h W -> sigmoid per label -> binary cross-entropy per label, and their mean
regression: representation h -> score h w (W is d x 1) -> squared error (score - gold)^2
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from finetuner import modeling
from finetuner.tasks import first_subwords, two_inputs


@torch.inference_mode()
def explain(predictor, text, label=None, text_pair: str | None = None, word: int = 0) -> dict:
    """Explain one prediction of a loaded ``Predictor`` (see Predictor.explain for the arguments).

    Returns:
        every problem: ``{"representation_size", "representation_head" (first 8 values), "weight_shape",
        "representation" (one line saying what h is made of)}``, plus
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
        # W is d x K (2d x K for concat pairs, 4d x K siamese, d x 1 for regression)
        "weight_shape": [int(rep.shape[-1]), len(labels)],
        "representation": describe_representation(predictor.task, predictor.meta, int(rep.shape[-1])),
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
    if predictor.task == "pair" and two_inputs(predictor.meta.get("pair_encoding")):
        a, b = predictor._tokenize([text]), predictor._tokenize([text_pair])
        batch = {**a, "pair_input_ids": b["input_ids"], "pair_attention_mask": b["attention_mask"]}
    else:
        batch = dict(predictor._tokenize([text], [text_pair] if predictor.task == "pair" else None))
    with predictor._lock:
        return modeling.represent(predictor.model, batch)[0]


def describe_representation(task: str, meta: dict, size: int) -> str:
    """What the head's input h is, in one line, for a model folder's finetuner.json and h's size.

    >>> describe_representation("pair", {"pair_encoding": "siamese", "feature_layers": 4}, 6144)[:51]
    "[u, v, |u - v|, u * v]: u and v are each text's own"
    """
    if task == "token":
        return f"the last layer's hidden state at the word's first sub-word; {size} numbers"
    layers = meta.get("feature_layers") or 1
    pooled = f"the pooled last {layers} layers side by side" if layers > 1 else "the encoder's pooled vector"
    if meta.get("normalize_features"):
        pooled += " scaled to unit length"
    encoding = meta.get("pair_encoding") or "cross"
    if task != "pair":
        return f"{pooled}; {size} numbers"
    if encoding == "cross":
        return f"{pooled} of the pair read as one input ([CLS] a [SEP] b [SEP]); {size} numbers"
    parts = 4 if encoding == "siamese" else 2
    shape = "[u, v, |u - v|, u * v]" if encoding == "siamese" else "[u, v]"
    return (
        f"{shape}: u and v are each text's own vector ({pooled}, {size // parts} numbers), encoded separately; "
        f"{size} numbers"
    )


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
