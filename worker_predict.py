"""The ``predict`` job: a whole file through a trained model, in the worker (it can be large), never the web process.

The job's config names the input (saved under ``DATA_DIR/uploads/<token>/``), the model folder and the output
(``DATA_DIR/exports/<token>/``, a random folder as for every export: files there are served by path). Progress,
cancel and fencing follow `worker_score.run_score_job`: every write goes through the claim's `Lease`.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from worker import Lease, _held, job_ended

log = logging.getLogger("finetuner.worker")


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
    from storage.predict_files import output_path_for
    from storage.readers import detect_format

    with sessions() as s:
        model_job = repo.get_job(s, int(model_job_id))
        if model_job.status != "completed" or not model_job.model_dir:
            raise ValueError(f"job #{model_job.id} has no trained model")
        task, model_dir, dataset_id = model_job.config.get("task"), model_job.model_dir, model_job.dataset_id
    upload = Path(upload)
    fmt = detect_format(Path(upload.name), task)  # an unknown extension is refused now, not in the worker
    data_dir = Path(data_dir)
    # Gradio's temp copy of an upload goes away; the worker needs its own, named by a random folder
    src = data_dir / "uploads" / secrets.token_urlsafe(16) / upload.name
    src.parent.mkdir(parents=True)
    shutil.copyfile(upload, src)
    out = data_dir / "exports" / secrets.token_urlsafe(16) / output_path_for(upload.name, fmt)
    config = {
        "task": task, "model_dir": model_dir, "model_job_id": int(model_job_id), "input": str(src),
        "output": str(out), "text_col": text_col or None, "text_pair_col": text_pair_col or None,
    }  # fmt: skip
    with sessions() as s:
        # the model's dataset, so the job belongs somewhere (and goes when it is deleted); priority: runs first
        return repo.create_job(s, dataset_id, config, kind="predict", priority=1).id


@_held
def run_predict_job(sessions: sessionmaker[Session], job_id: int, lease: Lease) -> str:
    """Predict every row of ``config["input"]`` with ``config["model_dir"]`` and write ``config["output"]``.

    Args:
        sessions: this process's session factory.
        job_id: a claimed ``predict`` job.
        lease: the claim's `Lease` (keyword; default: one on the job's current attempt).

    Returns:
        ``completed`` (metrics ``{"rows", "output"}``), ``cancelled``, ``failed`` or ``fenced``.
    """
    try:
        from finetuner import Predictor
        from finetuner.batch_predict import predict_rows
        from storage import predict_files

        with sessions() as s:
            config = repo.get_job(s, job_id).config
        lease.beat(message="reading the file", progress=0.0)
        predictor = Predictor.load(config["model_dir"])
        table = predict_files.read_inputs(
            config["input"], predictor.task, config.get("text_col"), config.get("text_pair_col")
        )
        total = len(table.inputs)
        lease.beat(message=f"predicting {total:,} rows", total_steps=total, step=0)
        cancelled = False

        def on_progress(done: int, total: int) -> None:
            nonlocal cancelled
            status = lease.beat(progress=done / total, step=done, message="predicting")
            cancelled = cancelled or status in ("cancelling", "cancelled")

        rows = predict_rows(
            predictor, table.inputs, table.pairs, on_progress=on_progress, should_stop=lambda: cancelled
        )
        if rows is None:
            lease.write(repo.mark_cancelled)
            return "cancelled"
        out = Path(config["output"])
        out.parent.mkdir(parents=True, exist_ok=True)
        # a half-written file is never served as the result (same suffix: it picks the format)
        partial = out.with_name(f"partial-{out.name}")
        predict_files.write_predictions(predict_files.with_predictions(table.df, rows), partial)
        os.replace(partial, out)
        lease.write(repo.finish_job, {"rows": total, "output": str(out), "text_col": table.text_col}, "")
        return "completed"
    except BaseException as err:  # noqa: BLE001 - as in run_job: a failing job must not kill the worker
        return job_ended(sessions, lease, err)
