"""The job worker: a separate, niced OS process that claims queued jobs, runs the engine, writes progress back.

It is the bridge between `finetuner` (the engine) and `storage` (the database): the engine's callbacks become
short `repo` transactions (loss points in batches, an eval point per epoch, a heartbeat), and `should_stop`
reads the job's status from the database, so Cancel works from any browser tab or process.

    python worker.py --data-dir data            # what the app starts (and restarts if it dies)
    python worker.py --devices 0,1,2,3          # a GPU host: one job per free device at once (worker_devices.py)

A claim gives the worker a lease on the job (`storage.leases`); a `Lease` renews it from a thread from the
moment of the claim, before torch is even imported, and names the claim's attempt in every write. When the
job was taken meanwhile (recovered, resumed, deleted), the next write raises `JobFenced` and the worker drops
the job without writing anything more. The app side lives in `supervisor.py` (re-exported here).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.errors import disk_full_reason, is_disk_full
from storage.leases import JobFenced
from storage.models import JOB_KINDS
from supervisor import (  # noqa: F401 - re-exported: the app side's names, as before the split
    EXIT_CANNOT_RECORD,
    EXIT_DISK_FULL,
    WORKER_NICE,
    WORKER_PY,
    WorkerSupervisor,
    pid_alive,
    reason_file,
    recover_jobs,
)
from worker_lease import (  # noqa: F401 - re-exported for worker_devices / _predict / _evaluate and the tests
    LEASE_S,
    JobReporter,
    Lease,
    _jsonable,
)

log = logging.getLogger("finetuner.worker")


class CannotRecord(RuntimeError):
    """The job's end could not be written to the database (disk full?); the reason was left in a file."""

    def __init__(self, reason: str, disk_full: bool):
        super().__init__(reason)
        self.disk_full = disk_full


# --- running one job ---------------------------------------------------------------------------------------


def readable_error(err: BaseException, where: str | None = None) -> str:
    """One line a user can act on (`where`: the path a full disk is reported at if the error names none);
    the traceback goes to the worker log."""
    full = disk_full_reason(err, where)
    if full:
        return full
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


def _strip_ids(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


def training_data(session: Session, dataset_id: int) -> tuple[list[dict], list[dict] | None]:
    """Train and eval examples: the dataset's own eval split when it has one, else None (the engine splits).

    The test split is never among them: it is scored once, after training (`worker_evaluate.test_split_rows`).
    """
    everything = repo.examples_for_training(session, dataset_id)
    eval_rows = repo.examples_for_training(session, dataset_id, split="eval")
    held = {r["id"] for r in eval_rows} | {
        r["id"] for r in repo.examples_for_training(session, dataset_id, "test")
    }
    train_rows = _strip_ids([r for r in everything if r["id"] not in held])
    return train_rows, (_strip_ids(eval_rows) if eval_rows else None)


def _held(run):
    """Run ``run(sessions, job_id, ..., lease)`` under a fresh `Lease` on the job's current attempt when the
    caller passed none (tests and tools that claimed the job themselves)."""

    @functools.wraps(run)
    def wrapper(sessions: sessionmaker[Session], job_id: int, *args, lease: Lease | None = None):
        if lease is not None:
            return run(sessions, job_id, *args, lease=lease)
        with sessions() as s:
            attempt = repo.get_job(s, job_id).attempt
        with Lease(sessions, job_id, attempt) as lease:
            return run(sessions, job_id, *args, lease=lease)

    return wrapper


def job_ended(
    sessions: sessionmaker[Session],
    lease: Lease,
    err: BaseException,
    where: Path | None = None,
    data_dir: Path | None = None,
) -> str:
    """How a job that raised ends: ``fenced`` when it was taken from us, else ``failed`` (recorded by `_failed`);
    KeyboardInterrupt and SystemExit go on up (the worker is stopping). Every job kind ends its run with this."""
    if isinstance(err, KeyboardInterrupt | SystemExit):
        raise err
    if isinstance(err, JobFenced):
        log.warning("%s", err)
        return "fenced"
    data_dir = data_dir or Path(os.environ.get("DATA_DIR", "data"))
    return _failed(sessions, lease, err, where or data_dir, data_dir)


def _failed(
    sessions: sessionmaker[Session], lease: Lease, err: BaseException, where: Path, data_dir: Path
) -> str:
    """Record how a job failed and return ``failed``; ``fenced`` if the job was taken meanwhile.

    When the database cannot be written either (a full disk), the reason goes to `reason_file` for
    recovery to record, and `CannotRecord` tells the worker to exit so the supervisor starts a fresh one.
    """
    log.error("job %s failed:\n%s", lease.job_id, traceback.format_exc())
    db = str(sessions.kw["bind"].url.database or sessions.kw["bind"].url)
    try:
        reason = readable_error(err, db if isinstance(err, SQLAlchemyError) else str(where))
    except Exception:  # noqa: BLE001
        reason = f"{type(err).__name__}: {err}"
    try:
        lease.write(repo.fail_job, reason)
        return "failed"
    except JobFenced:
        return "fenced"
    except Exception as db_err:
        log.exception("job %s: cannot record the failure", lease.job_id)
        if disk_full_reason(db_err) and not disk_full_reason(err):
            reason = disk_full_reason(db_err, db)
        with contextlib.suppress(OSError):  # the disk may be too full even for this: the exit code says it
            path = reason_file(data_dir, lease.job_id, lease.attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(reason, encoding="utf-8")
        raise CannotRecord(reason, is_disk_full(db_err)) from db_err


@_held
def run_job(sessions: sessionmaker[Session], job_id: int, models_dir: str | Path, lease: Lease) -> str:
    """Run one claimed job to its end and record how it ended; never raises for a failing job.

    Args:
        sessions: this process's session factory.
        job_id: a job this worker has claimed (status running).
        models_dir: the model folder is written to ``models_dir/<job_id>`` (``<data_dir>/models``).
        lease: the claim's `Lease` (keyword; default: one on the job's current attempt).

    Returns:
        The final status: ``completed``, ``cancelled`` or ``failed``; ``fenced`` when the job was taken from
        this worker meanwhile (then nothing more was written). Raises `CannotRecord` only when the database
        cannot be written.
    """
    out_dir = Path(models_dir) / str(job_id)
    try:
        from finetuner import Callbacks, TrainConfig, train  # seconds of imports: the lease thread beats
        from finetuner.hub import write_zip
        from finetuner.training import checkpoint_info
        from worker_evaluate import record_test_metrics, score_test_split, test_split_rows

        with sessions() as s:
            job = repo.get_job(s, job_id)
            # the dataset says what its labels are (one name, several, a score): its rows are in that form
            problem = repo.get_dataset(s, job.dataset_id).problem
            train_rows, eval_rows = training_data(s, job.dataset_id)
            test_rows = test_split_rows(s, job.dataset_id)
        lease.beat(message="loading data", checkpoint_dir=str(out_dir / "checkpoint"))
        settings = {
            **job.config,
            "problem": problem,
            "output_dir": str(out_dir),
            "resume": job.resume_from is not None,
        }
        resume_point = checkpoint_info(out_dir) if settings["resume"] else None
        # this attempt's curve replaces the old ones' past the step it resumes from (all of it from scratch)
        lease.write(repo.delete_loss_points_after, resume_point["step"] if resume_point else 0)
        config = TrainConfig.from_dict(settings)
        rep = JobReporter(lease)
        nproc = int(settings.get("nproc") or 1)  # a job may ask for N processes (GPUs) of this host
        # torchrun children train; their rank 0's progress comes back through the same callbacks
        if nproc > 1:
            from finetuner.launch import train_in_processes
            from finetuner.training import TrainingError
            from worker_devices import cuda_shortfall

            if shortfall := cuda_shortfall(nproc):  # refused here: torchrun would crash on a missing GPU
                raise TrainingError(shortfall)
            train = functools.partial(train_in_processes, nproc=nproc)
        try:
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
        finally:
            with contextlib.suppress(Exception):  # the job's final status matters more than its last points
                rep.flush()
        if result.cancelled:
            lease.write(repo.mark_cancelled)
            return "cancelled"
        metrics = _jsonable(result.metrics) | {"ran_as": result.mode}  # an auto job's speed then says of what
        if (
            result.refit_examples
        ):  # the Train tab says the figures were taken before the head saw every example
            metrics["refit_examples"] = result.refit_examples
        if test_rows:  # the held-out test split, scored once with the kept weights (never used to pick them)
            lease.beat(message=f"testing on {len(test_rows)} examples")
            try:
                metrics["test"] = score_test_split(result.output_dir, test_rows, config.batch_size)
                record_test_metrics(result.output_dir, metrics["test"])
            except Exception as err:  # noqa: BLE001 - the trained model is kept; the view says what went wrong
                log.exception("job %s: the test split could not be scored", job_id)
                metrics["test"] = {"error": readable_error(err), "n": len(test_rows)}
        # the Models tab's download is ready as the job completes (else built there)
        with contextlib.suppress(OSError):
            write_zip(result.output_dir)
        lease.write(repo.finish_job, metrics, str(result.output_dir))
        return "completed"
    except BaseException as err:  # noqa: BLE001 - any failure must end as a readable 'failed', not a dead worker
        return job_ended(sessions, lease, err, out_dir, Path(models_dir).parent)


def run_claimed(
    sessions: sessionmaker[Session],
    job_id: int,
    kind: str,
    attempt: int,
    models_dir: str | Path,
    lease_s: float,
) -> str:
    """Run one claimed attempt of a job of any kind under its own `Lease`; after a completed train job, queue
    scoring its dataset. Returns the final status (as `run_job`)."""
    with Lease(sessions, job_id, attempt, lease_s) as lease:  # beats from the claim on
        if kind == "score":
            from worker_score import run_score_job  # it imports this module: not at the top

            status = run_score_job(sessions, job_id, lease=lease)
        elif kind == "evaluate":
            from worker_evaluate import run_evaluate_job  # it imports this module: not at the top

            status = run_evaluate_job(sessions, job_id, lease=lease)
        elif kind == "predict":
            from worker_predict import run_predict_job  # it imports this module: not at the top

            status = run_predict_job(sessions, job_id, lease=lease)
        else:
            status = run_job(sessions, job_id, models_dir, lease=lease)
    log.info("%s job %s attempt %s: %s", kind, job_id, attempt, status)
    if kind == "train" and status == "completed":
        with sessions() as s:
            repo.queue_score_job(s, job_id)
    return status


def work(
    sessions: sessionmaker[Session],
    models_dir: str | Path,
    poll_s: float = 1.0,
    once: bool = False,
    parent_pid: int | None = None,
    lease_s: float = LEASE_S,
    devices: list[str] | None = None,
) -> None:
    """Claim and run jobs one at a time until the parent is gone (or, with once, until the queue is empty).

    While idle it also takes jobs from gone workers (`recover_jobs`), so recovery needs no app running.
    With `devices` (``--devices``), it runs one job per free device at once instead (`worker_devices`).
    """
    if devices:  # several jobs at once, each in a child process with its devices (worker_devices.py)
        from worker_devices import work_on_devices

        return work_on_devices(sessions, models_dir, devices, poll_s, once, parent_pid, lease_s)
    last_recovery = time.monotonic()
    while True:
        with sessions() as s:
            job = repo.claim_next_job(s, os.getpid(), kinds=JOB_KINDS, lease_s=lease_s)
        if job is not None:
            run_claimed(sessions, job.id, job.kind, job.attempt, models_dir, lease_s)
            continue
        if once or (parent_pid and not pid_alive(parent_pid)):
            return
        if time.monotonic() - last_recovery >= lease_s / 2:
            last_recovery = time.monotonic()
            try:
                recover_jobs(sessions, Path(models_dir).parent)
            except Exception:  # retried at the next idle round
                log.exception("job recovery failed")
        time.sleep(poll_s)


# --- entry point -----------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the app process dies, so no orphan worker keeps training unseen."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Finetuner job worker: runs queued jobs, one at a time or one per free device."
    )
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "data"))
    p.add_argument("--nice", type=int, default=WORKER_NICE, help="OS priority increment (0: not niced)")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--poll-s", type=float, default=1.0)
    p.add_argument("--lease-s", type=float, default=LEASE_S, help="seconds a claim holds a job between beats")
    p.add_argument(
        "--devices",
        default=os.environ.get("FINETUNER_DEVICES"),
        help="run one job per free device at once: ids (0,1,2,3) or auto (every CUDA device; none on CPU)",
    )
    p.add_argument("--run-job", type=int, help=argparse.SUPPRESS)  # a --devices child: this claimed job only
    p.add_argument("--attempt", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    from worker_devices import parse_devices

    try:  # before any side effect: a bad list only prints the usage
        devices = [] if args.run_job is not None else parse_devices(args.devices)
    except ValueError as err:
        p.error(str(err))
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

    models_dir = Path(args.data_dir) / "models"
    try:
        if args.run_job is not None:  # a child of a --devices worker: the job's kind is read from its row
            sessions = open_db()
            with sessions() as s:
                kind = repo.get_job(s, args.run_job).kind
            run_claimed(sessions, args.run_job, kind, args.attempt, models_dir, args.lease_s)
            return
        if devices:
            log.info("devices %s: one job per free device", ",".join(devices))
        work(open_db(), models_dir, args.poll_s, args.once, args.parent_pid, args.lease_s, devices)
    except CannotRecord as err:  # the supervisor restarts us; recovery records the reason once it can
        log.error("cannot write the database, exiting: %s", err)
        sys.exit(EXIT_DISK_FULL if err.disk_full else EXIT_CANNOT_RECORD)


if __name__ == "__main__":
    main()
