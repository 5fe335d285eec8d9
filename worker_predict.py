"""The ``predict`` job: a whole file through a trained model, in the worker (it can be large), never the web process.

The job's config names the input (saved under ``DATA_DIR/uploads/<token>/``), the model folder and the output
(``DATA_DIR/exports/<token>/``, a random folder as for every export: files there are served by path). Progress,
cancel and fencing follow `worker_score.run_score_job`: every write goes through the claim's `Lease`. The web process
queues it (`storage.job_requests.queue_predict_job`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from worker import Lease, _held, job_ended

log = logging.getLogger("finetuner.worker")


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
