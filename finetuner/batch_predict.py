"""Batch predictions: many inputs through a `Predictor`, as output columns, with progress and a stop check.

The engine half of "predict a file": it knows rows of inputs and columns of outputs, not files (the CLI and
the worker read and write those with `storage.predict_files`) and not the database (the worker binds the
callbacks to the job's lease).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

CHUNK = 512  # rows between two progress reports: a heartbeat every second or two on a CPU
PROB_PREFIX = "p_"  # one column per class: p_positive, p_negative, ...


def output_names(task: str, labels: Sequence[str], problem: str = "single") -> list[str]:
    """The columns a prediction adds, in order.

    >>> output_names("sequence", ["neg", "pos"])
    ['label', 'score', 'p_neg', 'p_pos']
    >>> output_names("token", ["O", "B-PER"])
    ['tags', 'entities']
    >>> output_names("sequence", ["joy", "anger"], "multilabel")
    ['predicted_labels', 'p_joy', 'p_anger']
    >>> output_names("pair", ["score"], "regression")
    ['predicted_score']
    """
    if task == "token":
        return ["tags", "entities"]
    if problem == "regression":
        return ["predicted_score"]
    probabilities = [f"{PROB_PREFIX}{label}" for label in labels]
    return (
        ["predicted_labels", *probabilities]
        if problem == "multilabel"
        else ["label", "score", *probabilities]
    )


def prediction_columns(
    task: str, labels: Sequence[str], prediction: dict | None, problem: str = "single"
) -> dict:
    """One row's output cells from a `Predictor` result; None (an empty input) gives empty cells.

    Token results become JSON text (tags, and entity spans with offsets and scores) so that every format
    holds them in one cell; class results give the label, its probability and one probability per class;
    multi-label results the labels at or above their thresholds ("," joined) and every label's probability;
    regression results the score.
    """
    names = output_names(task, labels, problem)
    if prediction is None:
        return dict.fromkeys(names, "")
    if problem == "regression":
        return {"predicted_score": prediction["score"]}
    if problem == "multilabel":
        probs = prediction["probabilities"]
        return {
            "predicted_labels": ",".join(prediction["labels"]),
            **{f"{PROB_PREFIX}{label}": probs[label] for label in labels},
        }
    if task == "token":
        return {
            "tags": json.dumps(prediction["tags"], ensure_ascii=False),
            "entities": json.dumps(prediction["entities"], ensure_ascii=False),
        }
    probs = prediction["probabilities"]
    return {
        "label": prediction["label"],
        "score": probs[prediction["label"]],
        **{f"{PROB_PREFIX}{label}": probs[label] for label in labels},
    }


def _empty(value) -> bool:
    return not (value if isinstance(value, list) else str(value or "").strip())


def predict_rows(
    predictor,
    inputs: Sequence,
    pairs: Sequence[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 64,
) -> list[dict] | None:
    """Predict every input and return one dict of output cells per input, in input order.

    Args:
        predictor: a loaded `finetuner.predict.Predictor`.
        inputs: texts (token models: sentences or lists of words).
        pairs: the second texts, for pair models.
        on_progress: called as ``on_progress(done, total)`` after each chunk of `CHUNK` rows.
        should_stop: checked before each chunk; True stops and returns None.
        batch_size: inputs per forward pass.

    Returns:
        ``[{"label", "score", "p_<class>"...}]``; multi-label ``[{"predicted_labels", "p_<label>"...}]``;
        regression ``[{"predicted_score"}]``; for token models ``[{"tags", "entities"}]`` (JSON text); empty inputs
        get empty cells. None when stopped.

    >>> predict_rows(Predictor.load("runs/sst2"), ["great", "awful"])[0]["label"]  # doctest: +SKIP
    'positive'
    """
    if predictor.task == "pair" and pairs is None:
        raise ValueError("this is a pair model: the file needs a second text column")
    total = len(inputs)
    out: list[dict] = []
    for start in range(0, total, CHUNK):
        if should_stop is not None and should_stop():
            return None
        idx = [i for i in range(start, min(start + CHUNK, total)) if not _empty(inputs[i])]
        # similar lengths in one batch pad less: sort the chunk by length, predict, put the results back
        idx.sort(key=lambda i: len(inputs[i]) + (len(pairs[i]) if pairs is not None else 0))
        got = predictor.predict_many(
            [inputs[i] for i in idx], [pairs[i] for i in idx] if pairs is not None else None, batch_size
        )
        by_row = dict(zip(idx, got, strict=True))
        labels, problem = predictor.labels, getattr(predictor, "problem", "single")
        out += [
            prediction_columns(predictor.task, labels, by_row.get(i), problem)
            for i in range(start, min(start + CHUNK, total))
        ]
        if on_progress is not None:
            on_progress(len(out), total)
    return out
