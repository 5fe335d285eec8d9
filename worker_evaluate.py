"""The ``evaluate`` job: a trained model's metrics on a labeled dataset (or one of its splits) or an uploaded file.

Evaluating means running the model over every example, which can take minutes on a large set: it runs in the
worker, never in the web process. The job follows `worker_score.run_score_job`: every write goes through the claim's
`Lease` (a job taken from this worker meanwhile is dropped without another write). Its metrics are the same as
an evaluation's during training (accuracy, macro-F1 or entity F1, per-class report, confusion matrix), plus
``n`` and ``source``; it has no model folder of its own.

The train job's own test metrics come from here too (`test_split_rows`, `score_test_split`,
`record_test_metrics`): the dataset's test split, scored once with the kept weights after training.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from worker import Lease, _held, _jsonable, _strip_ids, job_ended

log = logging.getLogger("finetuner.worker")

PROBLEM_WORDS = {
    "single": "one label per example",
    "multilabel": "several labels per example",
    "regression": "a score",
}
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


def _model_job(session: Session, model_job_id: int):
    job = repo.get_job(session, int(model_job_id))
    if job.kind != "train" or job.status != "completed" or not job.model_dir:
        raise ValueError(f"job #{job.id} has no trained model")
    if not Path(job.model_dir, "finetuner.json").is_file():
        raise ValueError(f"the model folder of job #{job.id} is gone ({job.model_dir})")
    return job


def _check_labels(
    model_labels: list[str], task: str, examples: list[dict], where: str, problem: str = "single"
) -> None:
    """Refuse data whose labels the model cannot predict: name them (the engine would name an example number).
    A score model predicts any number: nothing to check."""
    if problem == "regression":
        return
    if task == "token":
        found = {t[2:] for ex in examples for t in ex.get("tags") or () if t != "O"}
        known = {t[2:] if t[:2] in ("B-", "I-") else t for t in model_labels if t != "O"}
    elif problem == "multilabel":
        found, known = {str(name) for ex in examples for name in ex["label"]}, set(model_labels)
    else:
        found, known = {str(ex["label"]) for ex in examples}, set(model_labels)
    unknown = sorted(found - known)
    if unknown:
        raise ValueError(
            f"{where} has labels the model was not trained on: {', '.join(unknown)} "
            f"(the model's labels: {', '.join(sorted(known))})"
        )


def _model_meta(model_dir: str) -> tuple[list[str], str]:
    """The saved model's labels and problem (folders saved before problems existed are single-label)."""
    import json

    meta = json.loads(Path(model_dir, "finetuner.json").read_text())
    return meta["labels"], meta.get("problem") or "single"


def queue_evaluate_job(
    sessions: sessionmaker[Session],
    model_job_id: int,
    dataset_id: int | None = None,
    split: str | None = None,
    upload: str | Path | None = None,
    data_dir: str | Path | None = None,
    columns: dict | None = None,
) -> int:
    """Check the request and queue an ``evaluate`` job: a dataset (``split`` None: all labeled) or an upload.

    The data is read and checked here (task, labels, emptiness), so a mistake is told at once with its file,
    row and column; the worker only runs the model.

    Args:
        sessions: the session factory.
        model_job_id: a completed train job whose model folder exists.
        dataset_id, split: a dataset of the model's task, and ``train`` / ``eval`` / ``test`` or None.
        upload, data_dir: a labeled file instead; it is copied under ``data_dir/uploads/<random>/``.
        columns: ``text_col``, ``text_pair_col``, ``label_col`` of the file (guessed when absent).

    Returns:
        The job id. ValueError (or `storage.io.DataError`) says why nothing was queued.
    """
    from storage import io
    from storage.splits import split_name

    split = split_name(split)  # "dev" names the stored eval split
    with sessions() as s:
        model_job = _model_job(s, model_job_id)
        task, model_dir = model_job.config.get("task"), model_job.model_dir
        labels, problem = _model_meta(model_dir)
        if upload is None:
            if dataset_id is None:
                raise ValueError("choose a dataset or upload a labeled file")
            ds = repo.get_dataset(s, int(dataset_id))
            if ds.task != task:
                raise ValueError(f"the model is a {task} model; dataset {ds.name!r} is a {ds.task} dataset")
            if ds.problem != problem:
                raise ValueError(
                    f"the model predicts {PROBLEM_WORDS[problem]}; dataset {ds.name!r} holds "
                    f"{PROBLEM_WORDS[ds.problem]}"
                )
            rows = repo.examples_for_training(s, ds.id, split=split)
            what = f"dataset {ds.name!r}" + (f" ({split} split)" if split else "")
            if not rows:
                raise ValueError(f"{what} has no labeled examples to evaluate on")
            _check_labels(labels, task, rows, what, problem)
            config = {"dataset_id": ds.id, "split": split, "source": what}
            job_dataset = ds.id
        else:
            columns = {k: v for k, v in (columns or {}).items() if v}
            # require_labels: every row must be labeled
            rows = io.read_examples(upload, task, problem=problem, **columns)
            what = f"file {Path(upload).name!r}"
            _check_labels(labels, task, rows, what, problem)
            # Gradio's temp copy of an upload goes away; the worker needs its own, in a random folder
            src = Path(data_dir or os.environ.get("DATA_DIR", "data")) / "uploads" / secrets.token_urlsafe(16)
            src.mkdir(parents=True)
            src = src / Path(upload).name
            shutil.copyfile(upload, src)
            config = {"file": str(src), "columns": columns, "source": what}
            job_dataset = model_job.dataset_id  # the job belongs to the model's dataset (and goes with it)
        config.update(
            {
                "task": task,
                "problem": problem,
                "model_dir": model_dir,
                "model_job_id": model_job.id,
                "n": len(rows),
            }
        )
        return repo.create_job(s, job_dataset, config, kind="evaluate", priority=1).id  # quick: runs first


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
