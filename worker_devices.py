"""A worker host's devices (``worker.py --devices``): several jobs at once, each in a child process that sees
only its own devices through ``CUDA_VISIBLE_DEVICES``.

    python worker.py --devices 0,1,2,3    # up to four jobs at once; a job with "nproc": 2 takes two devices
    python worker.py --devices auto       # every CUDA device of the host; on a CPU host: none (as without it)

Without devices (a CPU host, or no flag) the worker runs one job at a time in its own process, as it always did.
With devices, the main loop claims a job only while a device is free; a job that needs more devices than are free
waits (its lease held by the loop, the queue order kept) until earlier jobs give theirs back, and one that needs
more than the host has fails at once with a message saying so. Each child holds its own lease (`worker.Lease`)
and writes as an in-process job does; the claim names the main worker (host:pid), so when the main worker dies
its children die with it (PR_SET_PDEATHSIG) and recovery takes their jobs as it takes any dead worker's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.models import JOB_KINDS
from supervisor import EXIT_DISK_FULL, WORKER_PY, pid_alive, reason_file, recover_jobs

log = logging.getLogger("finetuner.worker")

AUTO = "auto"


def parse_devices(spec: str | None) -> list[str]:
    """The device ids a worker hands to its jobs; ``[]`` means one job at a time, in process (today's worker).

    ``None`` or ``""``: none. ``"auto"``: every CUDA device this process can see (the entries of
    ``CUDA_VISIBLE_DEVICES`` when it is set), none on a CPU host. ``"0,1,3"``: those ids, as given.

    >>> parse_devices("0, 1")
    ['0', '1']
    """
    if not spec:
        return []
    if spec.strip().lower() == AUTO:
        import torch

        if not torch.cuda.is_available():
            return []
        count = torch.cuda.device_count()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:  # ids (or UUIDs) the parent already chose; a child must name them, not 0..n-1
            return [d.strip() for d in visible.split(",") if d.strip()][:count]
        return [str(i) for i in range(count)]
    ids = [d.strip() for d in spec.split(",")]
    if not all(ids) or len(set(ids)) != len(ids):
        raise ValueError(
            f"--devices {spec!r}: give distinct device ids separated by commas (e.g. 0,1), or auto"
        )
    return ids


def devices_needed(job) -> int:
    """Devices a job takes: a train job's ``nproc`` (one process per device), one for every other kind."""
    if job.kind != "train":
        return 1
    return max(1, int((job.config or {}).get("nproc") or 1))


def too_many(needed: int, devices: list[str]) -> str | None:
    """Why this worker cannot run a job that needs `needed` devices, or None when it can."""
    if needed <= len(devices):
        return None
    return (
        f"this job asks for {needed} processes (one GPU each) but its worker has {len(devices)} device(s) "
        f"(--devices {','.join(devices)}): lower 'Processes (GPUs)' in More settings, or run a worker with more"
    )


def cuda_shortfall(nproc: int) -> str | None:
    """On a CUDA host, why `nproc` processes cannot each get a GPU this process sees; None when they can (or on
    a CPU host, where the processes share the CPU with gloo)."""
    import torch

    if not torch.cuda.is_available() or nproc <= torch.cuda.device_count():
        return None
    return (
        f"this job asks for {nproc} processes (one GPU each) but its worker sees "
        f"{torch.cuda.device_count()} GPU(s) (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'all')})"
        ": lower 'Processes (GPUs)' in More settings, or run it on a worker with more"
    )


class DevicePool:
    """The worker's devices, free or lent to a running child; handed out in the order given."""

    def __init__(self, devices: list[str]):
        self.devices = list(devices)
        self.free = list(devices)

    def take(self, n: int) -> list[str] | None:
        """`n` free devices, now lent; None when fewer are free."""
        if n > len(self.free):
            return None
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def give(self, devices: list[str]) -> None:
        back = set(self.free) | set(devices)
        self.free = [d for d in self.devices if d in back]


def child_command(job_id: int, attempt: int, data_dir: Path, lease_s: float) -> list[str]:
    """The child that runs one claimed attempt (niced already: it inherits the worker's priority)."""
    return [
        sys.executable, str(WORKER_PY), "--run-job", str(job_id), "--attempt", str(attempt),
        "--data-dir", str(data_dir), "--lease-s", str(lease_s), "--nice", "0", "--parent-pid", str(os.getpid()),
    ]  # fmt: skip


def child_env(devices: list[str], database_url: str) -> dict[str, str]:
    """The child's environment: only its devices visible, the worker's database whatever the default."""
    return {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(devices), "DATABASE_URL": database_url}


def settle_gone_child(sessions: sessionmaker[Session], job_id: int, attempt: int, code: int, data_dir: Path):
    """A child ended (exit code `code`): if its attempt still holds the job running, end it as recovery would
    (the main worker lives on, so recovery would only see it once the lease lapsed). A job the child finished,
    or lost to a newer attempt, is left alone (both guarded in the UPDATE)."""
    marker = reason_file(data_dir, job_id, attempt)
    with sessions() as s:
        if marker.exists():  # the child could not write the database: it left the reason
            with contextlib.suppress(repo.JobFenced):  # settled by someone else already
                repo.fail_job(s, job_id, marker.read_text(encoding="utf-8"), attempt=attempt)
            marker.unlink(missing_ok=True)
            return
        why = "disk full? " if code == EXIT_DISK_FULL else ""
        repo.interrupt_job(s, job_id, attempt, f"the job's process stopped ({why}exit code {code})")


def work_on_devices(
    sessions: sessionmaker[Session],
    models_dir: str | Path,
    devices: list[str],
    poll_s: float = 1.0,
    once: bool = False,
    parent_pid: int | None = None,
    lease_s: float | None = None,
) -> None:
    """`worker.work` on several devices: each claimed job runs in a child process with its devices.

    Returns when the parent is gone (or, with once, when the queue is empty), after the running jobs ended.
    """
    import worker  # it imports this module lazily: not at the top

    lease_s = worker.LEASE_S if lease_s is None else lease_s
    data_dir = Path(models_dir).parent
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    pool, running = DevicePool(devices), {}  # Popen -> (job id, attempt, its devices)
    waiting = None  # (job, devices it needs, the loop's Lease on it) until enough devices are free
    last_recovery = time.monotonic()
    stopping = False
    try:
        while True:
            for proc, (job_id, attempt, lent) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[proc]
                pool.give(lent)
                log.info("job %s attempt %s: its process ended (exit %s)", job_id, attempt, code)
                try:  # every exit: a child killed by SIGTERM exits 0 too; a job it ended is left alone
                    settle_gone_child(sessions, job_id, attempt, code, data_dir)
                except Exception:  # the lease lapses and recovery retries
                    log.exception("job %s: cannot record how its process ended", job_id)
            stopping = stopping or bool(parent_pid and not pid_alive(parent_pid))
            if waiting is None and pool.free and not stopping:
                with sessions() as s:
                    job = repo.claim_next_job(s, os.getpid(), kinds=JOB_KINDS, lease_s=lease_s)
                if job is not None:
                    needed = devices_needed(job)
                    refusal = too_many(needed, devices)
                    if (
                        refusal
                    ):  # never runnable here: failed now, with the reason, rather than waiting forever
                        lease = worker.Lease(sessions, job.id, job.attempt, lease_s)
                        with lease, contextlib.suppress(repo.JobFenced):
                            lease.write(repo.fail_job, refusal)
                        continue
                    lease = worker.Lease(sessions, job.id, job.attempt, lease_s).__enter__()
                    waiting = (job, needed, lease)
                    if needed > len(pool.free):
                        lease.beat(message=f"waiting for {needed} free devices (of {len(devices)})")
            if waiting is not None:
                job, needed, lease = waiting
                lent = pool.take(needed)
                if lent is not None:
                    lease.__exit__(
                        None, None, None
                    )  # the child's own lease takes over (the claim still holds)
                    waiting = None
                    proc = subprocess.Popen(
                        child_command(job.id, job.attempt, data_dir, lease_s), env=child_env(lent, url)
                    )
                    running[proc] = (job.id, job.attempt, lent)
                    log.info(
                        "%s job %s attempt %s: devices %s", job.kind, job.id, job.attempt, ",".join(lent)
                    )
                    continue
            if waiting is None and not running and (stopping or once):
                return  # once: this round's claim found the queue empty (scoring a child queued ran too)
            if time.monotonic() - last_recovery >= lease_s / 2:
                last_recovery = time.monotonic()
                try:
                    recover_jobs(sessions, data_dir)
                except Exception:  # retried at the next round
                    log.exception("job recovery failed")
            time.sleep(poll_s)
    finally:
        if waiting is not None:
            waiting[2].__exit__(None, None, None)
        for proc in running:  # cut short (SIGTERM): the children end with us, their jobs are recovered
            proc.terminate()
