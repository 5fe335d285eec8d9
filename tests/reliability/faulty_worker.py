"""`worker.py` with faults injected, named in FINETUNER_FAULTS (comma-separated); the tests' stand-in for a real
crash, a full disk or a slow machine. Production code carries no fault hooks: this script patches them in.

    slow_steps          sleep after every reported step (a long job that costs no CPU)
    kill_at_checkpoint  SIGKILL itself when the first checkpoint is about to be written (after the epoch's eval)
    enospc_checkpoint   the checkpoint write fails with ENOSPC, as on a full disk
    db_full             recording a failure fails with SQLite's "database or disk is full"
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import worker  # noqa: E402
from storage import repo  # noqa: E402

SLOW_STEP_S = 0.3  # with 3 steps an epoch, an epoch lasts about a second longer than on an idle machine
FAULTS = set(filter(None, os.environ.get("FINETUNER_FAULTS", "").split(",")))

if "slow_steps" in FAULTS:
    on_step = worker.JobReporter.on_step

    def slow_on_step(self, info):
        on_step(self, info)
        time.sleep(SLOW_STEP_S)

    worker.JobReporter.on_step = slow_on_step

if FAULTS & {"kill_at_checkpoint", "enospc_checkpoint"}:
    from finetuner import checkpoints, training

    def kill(*_args):
        os.kill(os.getpid(), signal.SIGKILL)

    def no_space(_obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    if "kill_at_checkpoint" in FAULTS:
        training.save_checkpoint = kill
    if "enospc_checkpoint" in FAULTS:
        checkpoints.atomic_save = no_space

if "db_full" in FAULTS:
    from sqlalchemy.exc import OperationalError

    def fail_job(*_args, **_kwargs):
        raise OperationalError(
            "UPDATE jobs SET ...", {}, sqlite3.OperationalError("database or disk is full")
        )

    repo.fail_job = fail_job

if __name__ == "__main__":
    worker.main()
