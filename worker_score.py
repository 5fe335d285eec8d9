"""The ``score`` job: a trained model's prediction for every example of its dataset (model-in-the-loop labeling).

The Label tab shows each prediction as a suggestion and orders examples by how unsure the model is (entropy,
margin, confidence). The job follows `worker.run_job`: every write goes through the claim's `Lease`, so a job taken
from this worker meanwhile is dropped without another write. It is queued by `storage.labeling.queue_score_job`
(after a train job completes, or from the Label tab's "Score now").
"""

from __future__ import annotations

import math

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.label_values import encode_label
from worker import Lease, _held, job_ended

SCORE_BATCH = 256  # examples per predict_many call and per insert: a heartbeat at least every few seconds


def uncertainty(probabilities: dict[str, float]) -> dict:
    """The predicted label with confidence (top p), entropy (nats) and margin (top p - second p).

    >>> uncertainty({"neg": 0.25, "pos": 0.75})["margin"]
    0.5
    """
    ranked = sorted(probabilities.items(), key=lambda kv: kv[1], reverse=True)
    entropy = -sum(p * math.log(p) for _, p in ranked if p > 0)
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    return {
        "label": ranked[0][0],
        "confidence": ranked[0][1],
        "entropy": entropy,
        "margin": ranked[0][1] - second,
    }


def label_set_uncertainty(probabilities: dict[str, float], thresholds: dict[str, float]) -> dict:
    """A multi-label prediction's uncertainty: each label is its own yes/no decision at its threshold, and the
    least sure decision stands for the example (as the least sure entity does for a sentence).

    confidence: the smallest max(p, 1 - p); entropy: the sum of the labels' binary entropies (nats); margin: the
    smallest distance of a probability from its label's threshold (0: a coin toss at the threshold).

    >>> label_set_uncertainty({"a": 0.9, "b": 0.45}, {"a": 0.5, "b": 0.5})["margin"]
    0.05
    """

    def binary_entropy(p: float) -> float:
        return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)

    return {
        "confidence": min((max(p, 1 - p) for p in probabilities.values()), default=None),
        "entropy": sum(binary_entropy(p) for p in probabilities.values()),
        "margin": round(
            min((abs(p - thresholds.get(k, 0.5)) for k, p in probabilities.items()), default=0.0), 12
        ),
    }


def score_row(example_id: int, prediction: dict, label_set: list[str] | None = None) -> dict:
    """One `ExampleScore` row from a Predictor result (token results have tags and entity scores only).

    The suggested label is stored as the example's own label would be (`storage.label_values`): several labels as
    a JSON list in label-set order (`label_set`, the dataset's), a score as its number, so "accept" and the
    disagreement filter compare like with like.
    """
    if "tags" in prediction:
        scores = [e["score"] for e in prediction["entities"]]
        # the Predictor reports scores per entity, not per word: the least sure entity stands for the sentence
        return {"example_id": example_id, "tags": prediction["tags"], "confidence": min(scores, default=None)}
    if "score" in prediction:  # regression: a value, no class probabilities to be unsure between
        return {"example_id": example_id, "label": encode_label("regression", prediction["score"])}
    if "labels" in prediction:  # multi-label
        order = label_set if label_set is not None else list(prediction["probabilities"])
        known = [name for name in prediction["labels"] if name in order]  # a label since removed is dropped
        return {
            "example_id": example_id,
            "label": encode_label("multilabel", known, order),
            **label_set_uncertainty(prediction["probabilities"], prediction.get("thresholds") or {}),
        }
    return {"example_id": example_id, **uncertainty(prediction["probabilities"])}


@_held
def run_score_job(sessions: sessionmaker[Session], job_id: int, lease: Lease) -> str:
    """Predict every example of the job's dataset with the trained model in ``config["model_dir"]``.

    Args:
        sessions: this process's session factory.
        job_id: a claimed ``score`` job.
        lease: the claim's `Lease` (keyword; default: one on the job's current attempt).

    Returns:
        ``completed``, ``cancelled``, ``failed`` or ``fenced``; predictions land in batches via
        `repo.add_example_scores`.
    """
    try:
        from finetuner import Predictor

        with sessions() as s:
            job = repo.get_job(s, job_id)
            rows = repo.examples_for_export(s, job.dataset_id, with_id=True)
            label_set = repo.get_dataset(s, job.dataset_id).label_names
        lease.beat(message=f"scoring {len(rows)} examples", total_steps=len(rows), step=0)
        predictor = Predictor.load(job.config["model_dir"])
        for start in range(0, len(rows), SCORE_BATCH):
            chunk = rows[start : start + SCORE_BATCH]
            if predictor.task == "token":
                predictions = predictor.predict_many([r["tokens"] for r in chunk])
            else:
                pairs = [r["text_pair"] for r in chunk] if predictor.task == "pair" else None
                predictions = predictor.predict_many([r["text"] for r in chunk], pairs)
            lease.write(
                repo.add_example_scores,
                [score_row(r["id"], p, label_set) for r, p in zip(chunk, predictions, strict=True)],
            )
            done = start + len(chunk)
            status = lease.beat(progress=done / len(rows), step=done, message="scoring")
            if status in ("cancelling", "cancelled"):
                lease.write(repo.mark_cancelled)
                return "cancelled"
        lease.write(repo.finish_job, {"scored": len(rows)}, "")  # no model folder of its own
        return "completed"
    except BaseException as err:  # noqa: BLE001 - as in run_job: a failing job must not kill the worker
        return job_ended(sessions, lease, err)
