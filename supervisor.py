"""The app side of the worker: start `worker.py`, restart it when it dies, take jobs from workers that are gone.

Liveness is judged by each job's lease (`storage.leases`): a job whose lease lapsed is taken from its worker
by any live app or worker (`recover_jobs`, run every few seconds), wherever that worker ran. A PID is only
looked at when the job's holder (``host:pid``) names this host: a dead local process frees its jobs at once,
a worker on another host sharing the database is never judged by a PID that means nothing here.
Imports no torch: the app process stays light.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo

log = logging.getLogger("finetuner.supervisor")

WORKER_PY = Path(__file__).resolve().with_name("worker.py")
EXIT_DISK_FULL = 28  # errno ENOSPC: the worker could not record its job's end because the disk is full
EXIT_CANNOT_RECORD = 75  # EX_TEMPFAIL: the worker could not record its job's end (database unwritable)
# the web server keeps the CPU when both want it; training still gets every idle cycle (BENCHMARKS.md)
WORKER_NICE = int(os.environ.get("FINETUNER_WORKER_NICE", 10))


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this host (zombies count: reap your children)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reason_file(data_dir: str | Path, job_id: int, attempt: int) -> Path:
    """Where a worker that cannot write the database leaves the reason its job ended, for recovery to record."""
    return Path(data_dir) / "logs" / f"job-{job_id}.{attempt}.reason"


def _holder_is_dead(job: dict, host: str) -> bool:
    """The job's holder is a process of this host that no longer exists (rows from before leases: worker_pid)."""
    holder_host, _, pid = (job["worker_id"] or f"{host}:{job['worker_pid'] or 0}").rpartition(":")
    return holder_host == host and pid.isdigit() and not pid_alive(int(pid))


def _gone_note(app_start: bool, exit_code: int | None) -> str:
    if app_start:
        return "the app restarted while this job ran"
    if exit_code == EXIT_DISK_FULL:
        return "the worker stopped: disk full? (it could not record how the job ended)"
    if exit_code is not None:
        return f"the worker stopped (exit code {exit_code})"
    return "the worker process stopped"


def recover_jobs(
    sessions: sessionmaker[Session],
    data_dir: str | Path | None = None,
    app_start: bool = False,
    exit_code: int | None = None,
) -> list[int]:
    """Take running jobs from workers that are gone: their lease lapsed, or their process on this host is dead.

    A job whose worker left a reason file (it could not write the database, e.g. a full disk) ends ``failed``
    with that reason; the others become ``interrupted`` (resumable), with a message saying why.

    Args:
        sessions: the session factory.
        data_dir: where reason files are (default ``$DATA_DIR``).
        app_start: the app is starting: a dead local worker died with the previous app.
        exit_code: how the supervised worker ended, if it just did (28: disk full).

    Returns:
        Ids of the jobs changed.

    >>> recover_jobs(Session, app_start=True)  # doctest: +SKIP
    [3]
    """
    data_dir = Path(data_dir or os.environ.get("DATA_DIR", "data"))
    host, changed = socket.gethostname(), []
    with sessions() as s:
        for job in repo.held_jobs(s):
            dead = _holder_is_dead(job, host)
            if not (dead or job["lapsed"]):
                continue  # the lease runs: alive, however slow, wherever it is
            marker = reason_file(data_dir, job["id"], job["attempt"])
            if marker.exists():
                try:
                    repo.fail_job(s, job["id"], marker.read_text(encoding="utf-8"), attempt=job["attempt"])
                    changed.append(job["id"])
                except repo.JobFenced:
                    pass  # someone else settled it first
                marker.unlink(missing_ok=True)
                continue
            note = (
                _gone_note(app_start, exit_code)
                if dead
                else f"the worker stopped responding: no heartbeat for {repo.silence_s(job):.0f} s"
            )
            if repo.interrupt_job(s, job["id"], job["attempt"], note, only_if_lapsed=not dead):
                changed.append(job["id"])
    return changed


class WorkerSupervisor:
    """Starts `worker.py` as a child process, restarts it when it dies, recovers jobs of gone workers.

    With ``spawn=False`` (the app's ``--no-worker``) it only recovers: workers run elsewhere.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        data_dir: str | Path,
        env: dict | None = None,
        nice: int = WORKER_NICE,
        check_s: float = 2.0,
        spawn: bool = True,
        worker_py: str | Path = WORKER_PY,
    ):
        self.sessions, self.data_dir, self.nice, self.check_s = sessions, Path(data_dir), nice, check_s
        self.spawn, self.worker_py = spawn, Path(worker_py)
        self.env = {**os.environ, **(env or {}), "DATA_DIR": str(self.data_dir)}
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WorkerSupervisor:
        if self.spawn:
            self._spawn()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> None:
        log_dir = self.data_dir / "logs"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = open(log_dir / "worker.log", "ab")  # noqa: SIM115 - the child keeps the descriptor
        except OSError:  # a full disk must not stop the worker from starting: it then logs nowhere
            log.exception("cannot open the worker log")
            out = subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(self.worker_py), "--data-dir", str(self.data_dir), "--nice", str(self.nice),
                 "--parent-pid", str(os.getpid())],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        log.info("worker started (pid %s)", self.proc.pid)

    def _recover(self) -> None:
        try:
            recover_jobs(self.sessions, self.data_dir, exit_code=self.last_exit)
        except Exception:  # a full or locked database: retried at the next check; the worker still respawns
            log.exception("job recovery failed")

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
            if self.spawn and self.proc is not None and self.proc.poll() is not None:
                self.last_exit = self.proc.returncode
                log.warning("worker exited with %s; restarting", self.last_exit)
                self._recover()
                self.restarts += 1
                if self._stop.wait(min(30.0, 2.0 ** min(self.restarts, 5))):  # back off a crash loop
                    return
                try:
                    self._spawn()
                except Exception:  # tried again at the next check, since the old process still shows exited
                    log.exception("cannot start the worker")
            else:
                self._recover()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
