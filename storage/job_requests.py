"""The checks behind the Evaluate and Predict-a-file buttons, and the jobs they queue for the worker.

A request is checked here, in the web process (the model's task and labels against the data, the file's format), so a
mistake is told at once with its file, row and column; the worker only runs the model. The UI queues work through
storage like this, never through the worker modules (``worker_evaluate``, ``worker_predict`` run the jobs). Reading
a model folder's ``finetuner.json`` is plain JSON: nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import io
from storage.datasets import get_dataset
from storage.examples import PROBLEM_WORDS, examples_for_training
from storage.jobs import create_job, get_job
from storage.predict_files import output_path_for
from storage.readers import detect_format
from storage.splits import split_name


def keep_upload(data_dir: str | Path, upload: str | Path) -> Path:
    """A copy of an upload under ``data_dir/uploads/<random>/``: Gradio's temp copy goes away, the worker needs its own."""
    src = Path(data_dir) / "uploads" / secrets.token_urlsafe(16) / Path(upload).name
    src.parent.mkdir(parents=True)
    shutil.copyfile(upload, src)
    return src


def _model_job(session: Session, model_job_id: int):
    job = get_job(session, int(model_job_id))
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
    split = split_name(split)  # "dev" names the stored eval split
    with sessions() as s:
        model_job = _model_job(s, model_job_id)
        task, model_dir = model_job.config.get("task"), model_job.model_dir
        labels, problem = _model_meta(model_dir)
        if upload is None:
            if dataset_id is None:
                raise ValueError("choose a dataset or upload a labeled file")
            ds = get_dataset(s, int(dataset_id))
            if ds.task != task:
                raise ValueError(f"the model is a {task} model; dataset {ds.name!r} is a {ds.task} dataset")
            if ds.problem != problem:
                raise ValueError(
                    f"the model predicts {PROBLEM_WORDS[problem]}; dataset {ds.name!r} holds "
                    f"{PROBLEM_WORDS[ds.problem]}"
                )
            rows = examples_for_training(s, ds.id, split=split)
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
            src = keep_upload(data_dir or os.environ.get("DATA_DIR", "data"), upload)
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
        return create_job(s, job_dataset, config, kind="evaluate", priority=1).id  # quick: runs first


def queue_predict_job(
    sessions: sessionmaker[Session],
    data_dir: str | Path,
    model_job_id: int,
    upload: str | Path,
    text_col: str | None = None,
    text_pair_col: str | None = None,
) -> int:
    """Copy the upload under ``uploads/`` and queue a ``predict`` job for a completed train job's model.

    Returns:
        The new job's id. Raises ValueError when the job has no trained model.
    """
    with sessions() as s:
        model_job = get_job(s, int(model_job_id))
        if model_job.status != "completed" or not model_job.model_dir:
            raise ValueError(f"job #{model_job.id} has no trained model")
        task, model_dir, dataset_id = model_job.config.get("task"), model_job.model_dir, model_job.dataset_id
    upload = Path(upload)
    fmt = detect_format(Path(upload.name), task)  # an unknown extension is refused now, not in the worker
    src = keep_upload(data_dir, upload)
    out = Path(data_dir) / "exports" / secrets.token_urlsafe(16) / output_path_for(upload.name, fmt)
    config = {
        "task": task, "model_dir": model_dir, "model_job_id": int(model_job_id), "input": str(src),
        "output": str(out), "text_col": text_col or None, "text_pair_col": text_pair_col or None,
    }  # fmt: skip
    with sessions() as s:
        # the model's dataset, so the job belongs somewhere (and goes when it is deleted); priority: runs first
        return create_job(s, dataset_id, config, kind="predict", priority=1).id
