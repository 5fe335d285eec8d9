"""The job worker: a separate, niced OS process that claims queued jobs, runs the engine, writes progress back.

It is the bridge between `finetuner` (the engine) and `storage` (the database): the engine's callbacks become
short `repo` transactions (loss points in batches, an eval point per epoch, a heartbeat), and `should_stop`
reads the job's status from the database, so Cancel works from any browser tab or process.

    python worker.py --data-dir data            # what the app starts (and restarts if it dies)

The app side uses `WorkerSupervisor` (spawn, watch, restart) and `recover_jobs` (mark orphaned jobs
interrupted at start). Neither imports torch: the engine is imported only inside `run_job`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo

log = logging.getLogger("finetuner.worker")

WORKER_PY = Path(__file__).resolve()
HEARTBEAT_S = 5.0  # a live worker touches its job at least this often, even while loading a model
STALE_AFTER_S = 30.0  # no heartbeat for this long (6 missed beats): the worker is gone
FLUSH_EVERY_S = 1.0  # loss points reach the DB at most this late: the live plot stays live, writes stay few
CANCEL_CHECK_S = 0.5  # how often should_stop asks the DB; a step on CPU takes ~0.2-1 s
# the web server keeps the CPU when both want it; training still gets every idle cycle (BENCHMARKS.md)
WORKER_NICE = int(os.environ.get("FINETUNER_WORKER_NICE", 10))


# --- running one job ---------------------------------------------------------------------------------------


class JobReporter:
    """Binds the engine's callbacks to one job's rows: throttled, batched, each write its own short transaction."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, flush_every_s: float = FLUSH_EVERY_S):
        self.sessions, self.job_id, self.flush_every_s = sessions, job_id, flush_every_s
        self._points: list[dict] = []
        self._last_flush = self._last_cancel_check = 0.0
        self._cancelled = False
        self._lock = threading.Lock()  # the heartbeat thread and the training thread share the session
        self._session = sessions()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beat_loop, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> JobReporter:
        self._beat.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._beat.join(timeout=HEARTBEAT_S)
        with contextlib.suppress(Exception):  # the job's final status matters more than its last points
            self.flush()
        self._session.close()

    def _write(self, fn, *args, **kwargs):
        with self._lock:
            try:
                return fn(self._session, self.job_id, *args, **kwargs)
            except Exception:
                self._session.rollback()
                raise

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write(repo.heartbeat)
            except Exception:  # a locked DB for a moment must not kill the job
                log.exception("heartbeat failed")

    def flush(self) -> None:
        points, self._points = self._points, []
        if points:
            self._write(repo.add_loss_points, points)
        self._last_flush = time.monotonic()

    def on_phase(self, phase: str, fraction: float) -> None:
        self._write(repo.heartbeat, message=f"{phase} {fraction:.0%}")

    def on_step(self, info) -> None:
        self._points.append({"step": info.step, "loss": info.loss, "epoch": info.epoch, "lr": info.lr})
        if time.monotonic() - self._last_flush >= self.flush_every_s or info.step == info.total_steps:
            self.flush()
            status = self._write(
                repo.heartbeat, progress=info.progress, step=info.step, total_steps=info.total_steps,
                examples_per_s=info.examples_per_s, eta_s=info.eta_s,
                message=f"training: epoch {info.epoch}/{info.epochs}",
            )  # fmt: skip
            self._cancelled = self._cancelled or status in ("cancelling", "cancelled")

    def on_eval(self, info) -> None:
        self.flush()
        metrics = _jsonable(info.metrics)
        if "loss" in metrics:
            self._write(
                repo.add_loss_points,
                [{"step": info.step, "loss": metrics["loss"], "epoch": info.epoch, "split": "eval"}],
            )
        self._write(repo.add_eval_point, info.epoch, info.step, {**metrics, "is_best": info.is_best})

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_CHECK_S:
            self._last_cancel_check = now
            self._cancelled = self._write(repo.is_cancel_requested)
        return self._cancelled


def _jsonable(value):
    """Metrics as plain JSON values (numpy scalars and tuples become floats and lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def readable_error(err: BaseException) -> str:
    """One line a user can act on; the traceback goes to the worker log."""
    from finetuner import DataValidationError, ModelLoadError, TrainingError

    if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
        return (
            "out of memory: lower the batch size or max length, or choose the frozen mode "
            f"({type(err).__name__}: {str(err)[:200]})"
        )
    if isinstance(err, ModelLoadError):
        return f"could not load the model: {err}"
    if isinstance(err, DataValidationError | TrainingError | ValueError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def training_data(session: Session, dataset_id: int) -> tuple[list[dict], list[dict] | None]:
    """Train and eval examples: the dataset's own eval split when it has one, else None (the engine splits)."""
    strip = lambda rows: [{k: v for k, v in r.items() if k != "id"} for r in rows]  # noqa: E731
    everything = repo.examples_for_training(session, dataset_id)
    eval_rows = repo.examples_for_training(session, dataset_id, split="eval")
    if not eval_rows:
        return strip(everything), None
    held = {r["id"] for r in eval_rows} | {
        r["id"] for r in repo.examples_for_training(session, dataset_id, "test")
    }
    return strip([r for r in everything if r["id"] not in held]), strip(eval_rows)


def run_job(sessions: sessionmaker[Session], job_id: int, models_dir: str | Path) -> str:
    """Run one claimed job to its end and record how it ended; never raises for a failing job.

    Args:
        sessions: this process's session factory.
        job_id: a job this worker has claimed (status running).
        models_dir: the model folder is written to ``models_dir/<job_id>``.

    Returns:
        The final status: ``completed``, ``cancelled`` or ``failed``.
    """
    out_dir = Path(models_dir) / str(job_id)
    try:
        from finetuner import Callbacks, TrainConfig, train
        from finetuner.training import checkpoint_info

        with sessions() as s:
            job = repo.get_job(s, job_id)
            settings = {**job.config, "output_dir": str(out_dir), "resume": job.resume_from is not None}
            repo.heartbeat(s, job_id, message="loading data", checkpoint_dir=str(out_dir / "checkpoint"))
            train_rows, eval_rows = training_data(s, job.dataset_id)
            resume_point = checkpoint_info(out_dir) if settings["resume"] else None
            if resume_point:  # the steps after the checkpoint run again: drop their first-run points
                repo.delete_loss_points_after(s, job_id, resume_point["step"])
        config = TrainConfig.from_dict(settings)
        with JobReporter(sessions, job_id) as rep:
            result = train(
                config,
                train_rows,
                eval_rows,
                Callbacks(
                    on_step=rep.on_step,
                    on_eval=rep.on_eval,
                    on_phase=rep.on_phase,
                    should_stop=rep.should_stop,
                ),
            )
        with sessions() as s:
            if result.cancelled:
                repo.mark_cancelled(s, job_id)
                return "cancelled"
            repo.finish_job(s, job_id, _jsonable(result.metrics), str(result.output_dir))
            return "completed"
    except BaseException as err:  # noqa: BLE001 - any failure must end as a readable 'failed', not a dead worker
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        try:
            reason = readable_error(err)
        except Exception:  # noqa: BLE001
            reason = f"{type(err).__name__}: {err}"
        with sessions() as s:
            repo.fail_job(s, job_id, reason)
        return "failed"


# --- scoring a dataset with a trained model (model-in-the-loop labeling) ------------------------------------

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


def score_row(example_id: int, prediction: dict) -> dict:
    """One `ExampleScore` row from a Predictor result (token results have tags and entity scores only)."""
    if "tags" in prediction:
        scores = [e["score"] for e in prediction["entities"]]
        # the Predictor reports scores per entity, not per word: the least sure entity stands for the sentence
        return {"example_id": example_id, "tags": prediction["tags"], "confidence": min(scores, default=None)}
    return {"example_id": example_id, **uncertainty(prediction["probabilities"])}


def run_score_job(sessions: sessionmaker[Session], job_id: int) -> str:
    """Predict every example of the job's dataset with the trained model in ``config["model_dir"]``.

    Args:
        sessions: this process's session factory.
        job_id: a claimed ``score`` job.

    Returns:
        ``completed``, ``cancelled`` or ``failed``; predictions land in batches via `repo.add_example_scores`.
    """
    try:
        from finetuner import Predictor

        with sessions() as s:
            job = repo.get_job(s, job_id)
            rows = repo.examples_for_export(s, job.dataset_id, with_id=True)
            repo.heartbeat(s, job_id, message=f"scoring {len(rows)} examples", total_steps=len(rows), step=0)
        predictor = Predictor.load(job.config["model_dir"])
        with sessions() as s:
            for start in range(0, len(rows), SCORE_BATCH):
                chunk = rows[start : start + SCORE_BATCH]
                if predictor.task == "token":
                    predictions = predictor.predict_many([r["tokens"] for r in chunk])
                else:
                    pairs = [r["text_pair"] for r in chunk] if predictor.task == "pair" else None
                    predictions = predictor.predict_many([r["text"] for r in chunk], pairs)
                repo.add_example_scores(
                    s, job_id, [score_row(r["id"], p) for r, p in zip(chunk, predictions, strict=True)]
                )
                done = start + len(chunk)
                status = repo.heartbeat(s, job_id, progress=done / len(rows), step=done, message="scoring")
                if status in ("cancelling", "cancelled"):
                    repo.mark_cancelled(s, job_id)
                    return "cancelled"
            repo.finish_job(s, job_id, {"scored": len(rows)}, "")  # no model folder of its own
        return "completed"
    except BaseException as err:  # noqa: BLE001 - as in run_job: a failing job must not kill the worker
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        log.error("score job %s failed:\n%s", job_id, traceback.format_exc())
        with sessions() as s:
            repo.fail_job(s, job_id, readable_error(err))
        return "failed"


def queue_score_job(sessions: sessionmaker[Session], train_job_id: int, force: bool = False) -> int | None:
    """After a train job: queue scoring its dataset when it has unlabeled examples (or `force`); the job id."""
    with sessions() as s:
        job = repo.get_job(s, train_job_id)
        if job.status != "completed" or not job.model_dir or job.dataset_id is None:
            return None
        if not force and not repo.count_examples(s, job.dataset_id, status="unlabeled"):
            return None  # nothing to suggest labels for; the Label tab's "Score now" still can
        config = {"model_dir": job.model_dir, "train_job_id": job.id, "task": job.config.get("task")}
        return repo.create_job(s, job.dataset_id, config, kind="score", priority=1).id  # quick: runs first


def work(
    sessions: sessionmaker[Session],
    models_dir: str | Path,
    poll_s: float = 1.0,
    once: bool = False,
    parent_pid: int | None = None,
) -> None:
    """Claim and run jobs one at a time until the parent is gone (or, with once, until the queue is empty)."""
    while True:
        with sessions() as s:
            job = repo.claim_next_job(s, os.getpid(), kinds=("train", "score"))
        if job is not None:
            if job.kind == "score":
                log.info("score job %s: %s", job.id, run_score_job(sessions, job.id))
                continue
            status = run_job(sessions, job.id, models_dir)
            log.info("job %s: %s", job.id, status)
            if status == "completed":
                queue_score_job(sessions, job.id)
            continue
        if once or (parent_pid and not pid_alive(parent_pid)):
            return
        time.sleep(poll_s)


# --- the app side: recover, spawn, watch -----------------------------------------------------------------------


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (zombies count: reap your children)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_jobs(sessions: sessionmaker[Session], stale_after_s: float = STALE_AFTER_S) -> list[int]:
    """Mark jobs whose worker is gone `interrupted` (resumable); call at app start and when a worker dies.

    When no running job's worker process exists any more, every running job is orphaned and is marked at
    once; otherwise only jobs without a heartbeat for `stale_after_s` are.
    """
    with sessions() as s:
        active = repo.list_jobs(s, status="running") + repo.list_jobs(s, status="cancelling")
        orphaned = not any(pid_alive(j.worker_pid) for j in active)
        return repo.mark_stale_jobs_interrupted(s, 0 if orphaned else stale_after_s)


class WorkerSupervisor:
    """Starts `worker.py` as a child process, restarts it when it dies, recovers its orphaned jobs."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        data_dir: str | Path,
        env: dict | None = None,
        nice: int = WORKER_NICE,
        check_s: float = 2.0,
    ):
        self.sessions, self.data_dir, self.nice, self.check_s = sessions, Path(data_dir), nice, check_s
        self.env = {**os.environ, **(env or {}), "DATA_DIR": str(self.data_dir)}
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WorkerSupervisor:
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> None:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "worker.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER_PY), "--data-dir", str(self.data_dir), "--nice", str(self.nice),
                 "--parent-pid", str(os.getpid())],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        log.info("worker started (pid %s)", self.proc.pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
            try:
                if self.proc is not None and self.proc.poll() is not None:
                    log.warning("worker exited with %s; restarting", self.proc.returncode)
                    recover_jobs(self.sessions)
                    self.restarts += 1
                    if self._stop.wait(min(30.0, 2.0 ** min(self.restarts, 5))):  # back off a crash loop
                        return
                    self._spawn()
                else:
                    recover_jobs(self.sessions)
            except Exception:  # the supervisor must outlive any DB hiccup
                log.exception("worker supervisor")

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- entry point -----------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the app process dies, so no orphan worker keeps training unseen."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Finetuner job worker: runs queued training jobs one at a time.")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "data"))
    p.add_argument("--nice", type=int, default=WORKER_NICE, help="OS priority increment (0: not niced)")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--poll-s", type=float, default=1.0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s"
    )
    os.environ["DATA_DIR"] = args.data_dir
    if args.nice:
        os.nice(args.nice)
    if args.parent_pid:
        _die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a job cut short here is recovered as interrupted
    from storage.db import open_db

    work(open_db(), Path(args.data_dir) / "models", args.poll_s, args.once, args.parent_pid)


if __name__ == "__main__":
    main()
