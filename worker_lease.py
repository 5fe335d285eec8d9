"""A worker's hold on one claimed job: the lease a thread renews (`Lease`) and the engine's callbacks bound to the
job's rows (`JobReporter`). Split from worker.py, which re-exports both; worker_predict / _score / _evaluate use
them for their own job kinds.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.leases import JobFenced

log = logging.getLogger("finetuner.worker")

HEARTBEAT_S = 5.0  # a live worker renews its lease at least this often, even while importing torch
# how long a claim or heartbeat holds the job (12 beats): a slow worker keeps it, a gone one loses it;
# the reliability tests shorten it to seconds
LEASE_S = float(os.environ.get("FINETUNER_LEASE_S", repo.LEASE_S))
FLUSH_EVERY_S = 1.0  # loss points reach the DB at most this late: the live plot stays live, writes stay few
CANCEL_CHECK_S = 0.5  # how often should_stop asks the DB; a step on CPU takes ~0.2-1 s


class Lease:
    """One claimed attempt of a job: renews the lease from a thread and names the attempt in every write.

    Use it as a context manager from the moment of the claim: the thread beats while the main one imports
    torch, loads data or sits in a long step. The first refused write (the job was taken) is remembered in
    `fenced` and raised again at every later write, so the worker writes nothing more for this job.
    """

    def __init__(self, sessions: sessionmaker[Session], job_id: int, attempt: int, lease_s: float = LEASE_S):
        self.sessions, self.job_id, self.attempt, self.lease_s = sessions, job_id, attempt, lease_s
        self.beat_s = min(HEARTBEAT_S, lease_s / 4)  # four chances to renew before the lease runs out
        self.fenced: JobFenced | None = None
        self._lock = threading.Lock()  # the heartbeat thread and the training thread share the session
        self._session = sessions()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beat_loop, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Lease:
        self._beat.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._beat.join(timeout=max(self.beat_s, 1.0))
        self._session.close()

    def write(self, fn, *args, **kwargs):
        """``fn(session, job_id, *args, attempt=..., **kwargs)``, a `repo` write; JobFenced once the job was taken."""
        with self._lock:
            if self.fenced is not None:
                raise self.fenced
            try:
                return fn(self._session, self.job_id, *args, attempt=self.attempt, **kwargs)
            except JobFenced as err:
                self.fenced = err
                raise
            except Exception:
                self._session.rollback()
                raise

    def beat(self, **fields) -> str:
        """Renew the lease, with any progress fields; returns the job's status."""
        return self.write(repo.heartbeat, lease_s=self.lease_s, **fields)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.beat_s):
            try:
                self.beat()
            except JobFenced as err:  # the main thread learns it at its next write or should_stop
                log.warning("%s", err)
                return
            except Exception:  # a locked DB for a moment must not kill the job
                log.exception("heartbeat failed")


class JobReporter:
    """Binds the engine's callbacks to one job's rows: throttled, batched, each write fenced by the lease."""

    def __init__(self, lease: Lease, flush_every_s: float = FLUSH_EVERY_S):
        self.lease, self.flush_every_s = lease, flush_every_s
        self._points: list[dict] = []
        self._last_flush = self._last_cancel_check = 0.0
        self._cancelled = False

    def flush(self) -> None:
        points, self._points = self._points, []
        if points:
            self.lease.write(repo.add_loss_points, points)
        self._last_flush = time.monotonic()

    def on_phase(self, phase: str, fraction: float) -> None:
        self.lease.beat(message=f"{phase} {fraction:.0%}")

    def on_step(self, info) -> None:
        self._points.append({"step": info.step, "loss": info.loss, "epoch": info.epoch, "lr": info.lr})
        if time.monotonic() - self._last_flush >= self.flush_every_s or info.step == info.total_steps:
            self.flush()
            status = self.lease.beat(
                progress=info.progress, step=info.step, total_steps=info.total_steps,
                examples_per_s=info.examples_per_s, eta_s=info.eta_s,
                message=f"training: epoch {info.epoch}/{info.epochs}",
            )  # fmt: skip
            self._cancelled = self._cancelled or status in ("cancelling", "cancelled")

    def on_eval(self, info) -> None:
        self.flush()
        metrics = _jsonable(info.metrics)
        if "loss" in metrics:
            self.lease.write(
                repo.add_loss_points,
                [{"step": info.step, "loss": metrics["loss"], "epoch": info.epoch, "split": "eval"}],
            )
        self.lease.write(repo.add_eval_point, info.epoch, info.step, {**metrics, "is_best": info.is_best})

    def should_stop(self) -> bool:
        if self.lease.fenced is not None:  # the heartbeat thread found the job taken: stop training now
            raise self.lease.fenced
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_CHECK_S:
            self._last_cancel_check = now
            self._cancelled = self.lease.write(repo.is_cancel_requested)
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
