"""The ``evaluate`` job: a trained model's metrics on a labeled dataset (or one of its splits) or an uploaded file.

Evaluating means running the model over every example, which can take minutes on a large set: it runs in the
worker, never in the web process. The job follows `worker_score.run_score_job`: every write goes through the claim's
`Lease` (a job taken from this worker meanwhile is dropped without another write). Its metrics are the same as
an evaluation's during training (accuracy, macro-F1 or entity F1, per-class report, confusion matrix), plus
``n`` and ``source``; it has no model folder of its own.

The request is checked and queued in the web process (`storage.job_requests.queue_evaluate_job`).
The train job's own test metrics come from here too (`test_split_rows`, `score_test_split`,
`record_test_metrics`): the dataset's test split, scored once with the kept weights after training.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from worker import Lease, _held, _jsonable, _strip_ids, job_ended

log = logging.getLogger("finetuner.worker")

EVAL_BATCH = 64  # examples per forward pass: CPU-friendly, and the same results at any size


def test_split_rows(session: Session, dataset_id: int) -> list[dict]:
    """The dataset's labeled test split (empty when it has none)."""
    return _strip_ids(repo.examples_for_training(session, dataset_id, split="test"))


def score_test_split(model_dir: str | Path, rows: list[dict], batch_size: int) -> dict:
    """The kept model's metrics on the test rows (the same keys as an evaluation's, plus ``n``)."""
    from finetuner.training import evaluate_folder

    return {**_jsonable(evaluate_folder(str(model_dir), rows, batch_size=batch_size)), "n": len(rows)}


def record_test_metrics(model_dir: str | Path, metrics: dict) -> None:
    """Put the test metrics in the folder's finetuner.json and its model card (model-index, metrics table)."""
    import json

    from finetuner import card
    from finetuner.modeling import META_FILE

    folder = Path(model_dir)
    meta = json.loads((folder / META_FILE).read_text())
    meta["test_metrics"] = metrics
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    # the folder's own card as the "base": it already holds the license and language inherited at save time
    card.write_card(folder, meta, base_path=str(folder))


def evaluation_rows(session: Session, config: dict) -> list[dict]:
    """The labeled examples an ``evaluate`` job's config names, in the engine's format."""
    if config.get("file"):
        from storage import io

        columns = config.get("columns") or {}
        return io.read_examples(
            config["file"], config["task"], problem=config.get("problem", "single"), **columns
        )
    return _strip_ids(repo.examples_for_training(session, config["dataset_id"], split=config.get("split")))


@_held
def run_evaluate_job(sessions: sessionmaker[Session], job_id: int, lease: Lease) -> str:
    """Score the job's examples with the model in ``config["model_dir"]``; the metrics land on the job.

    Returns:
        ``completed``, ``failed`` or ``fenced`` (as `worker_score.run_score_job`).
    """
    try:
        from finetuner.training import evaluate_folder

        with sessions() as s:
            config = dict(repo.get_job(s, job_id).config)
            rows = evaluation_rows(s, config)
        lease.beat(message=f"evaluating on {len(rows):,} examples", total_steps=len(rows), step=0)
        metrics = _jsonable(evaluate_folder(config["model_dir"], rows, batch_size=EVAL_BATCH))
        metrics.update({"n": len(rows), "source": config.get("source")})
        lease.write(repo.finish_job, metrics, "")  # no model folder of its own
        return "completed"
    except BaseException as err:  # noqa: BLE001 - as in run_job: a failing job must not kill the worker
        return job_ended(sessions, lease, err)
