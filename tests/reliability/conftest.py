"""Fixtures for the fault-injection tests: real worker processes with a short lease, data and job factories.

A worker here is `worker.py` (or `faulty_worker.py`, the same worker with faults injected) started as a
subprocess on the test's data dir; the test plays the app: it calls `recover_jobs` as the supervisor would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # worker.py and supervisor.py live at the repository root
    sys.path.insert(0, str(ROOT))

from fault_support import FAULTY_WORKER, LEASE_S  # noqa: E402

from storage import repo  # noqa: E402

TINY = {"num_hidden_layers": 1}  # the bundled MiniLM cut to one layer: a step takes ~0.2 s on CPU
WORDS = {"pos": ["great", "lovely", "superb", "fun"], "neg": ["awful", "boring", "dull", "bad"]}


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here runs offline (the shared `offline` fixture)."""


@pytest.fixture
def view(sessions):
    """``view(job_id) -> dict``: the job as the UI sees it (`repo.job_view`)."""

    def get(job_id: int) -> dict:
        with sessions() as s:
            return repo.job_view(s, job_id)

    return get


@pytest.fixture
def make_job(sessions):
    """Factory: ``make_job(name="reviews", **config) -> job id`` on a new 24-example dataset (3 steps an epoch)."""

    def make(name: str = "reviews", **config) -> int:
        rng = random.Random(0)
        rows = [
            {"text": f"a {rng.choice(WORDS[lb])} film, really {rng.choice(WORDS[lb])}", "label": lb}
            for lb in ["pos", "neg"] * 12
        ]
        cfg = {
            "task": "sequence", "output_dir": "", "mode": "full", "epochs": 2, "batch_size": 8, "log_every": 1,
            "eval_split": 0.25, "model_overrides": TINY, **config,
        }  # fmt: skip
        with sessions() as s:
            ds = repo.import_examples(s, name, "sequence", rows, labels=["neg", "pos"])
            return repo.create_job(s, ds.id, cfg).id

    return make


@pytest.fixture
def worker_env(data_dir) -> dict:
    """Environment of a worker subprocess: the test's data dir, offline, the short lease."""
    return {
        **os.environ, "DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
        "FINETUNER_LEASE_S": str(LEASE_S),
    }  # fmt: skip


@pytest.fixture
def start_worker(data_dir, worker_env, tmp_path):
    """Factory: ``start_worker(*faults) -> Popen`` of a worker (faulty_worker.py when faults are named), its
    output in ``proc.log_path``; every worker still alive is killed at the end of the test."""
    procs: list[subprocess.Popen] = []

    def start(*faults: str) -> subprocess.Popen:
        log_path = tmp_path / f"worker-{len(procs)}.log"
        script = FAULTY_WORKER if faults else ROOT / "worker.py"
        env = {**worker_env, "FINETUNER_FAULTS": ",".join(faults)}
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(script), "--data-dir", str(data_dir), "--nice", "0", "--poll-s", "0.2"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        proc.log_path = log_path
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM until continued
            proc.kill()
        proc.wait()
