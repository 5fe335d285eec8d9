"""Load on PostgreSQL: 4 worker processes drain 40 queued jobs while 20 labelers label one dataset.

Skipped unless FINETUNER_TEST_DATABASE_URL names a server (`make test-pg` sets it). The workers are real
`worker.py` processes claiming from the real queue, holding leases and writing progress under their attempt;
only the training itself is a two-step stand-in (load_worker.py): 40 real trainings do not fit 2 CPU cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from concurrency_support import run_labelers
from sqlalchemy import func, select

from storage import repo
from storage.models import Example, Job, LossPoint

PG_URL = os.environ.get("FINETUNER_TEST_DATABASE_URL")  # a server URL: see tests/conftest.py
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs FINETUNER_TEST_DATABASE_URL (make test-pg)")

WORKERS, JOBS = 4, 40
LABELERS, LABELS_EACH = 20, 20
LOAD_WORKER = Path(__file__).with_name("load_worker.py")
ROOT = Path(__file__).resolve().parents[2]
STEPS = 2  # load_worker.STEPS: loss points each job records


def test_4_workers_x_40_jobs_and_20_labelers(sessions, data_dir, db_url, worker_env, tmp_path):
    from ui.common import Settings

    rows = [{"text": f"text {i}", "label": ("neg", "pos")[i % 2]} for i in range(8)]
    config = {"task": "sequence", "output_dir": "", "mode": "full", "epochs": 1, "batch_size": 8}
    with sessions() as s:
        trained = repo.import_examples(
            s, "trained", "sequence", rows, labels=["neg", "pos"]
        )  # all labeled: no
        job_ids = [repo.create_job(s, trained.id, config).id for _ in range(JOBS)]  # score jobs follow
        to_label = repo.create_dataset(s, "to-label", "sequence", ["neg", "pos"])
        repo.add_examples(
            s, to_label.id, [{"text": f"label me {i}"} for i in range(LABELERS * LABELS_EACH + 50)]
        )
        to_label = to_label.id

    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    env = {**worker_env, "FINETUNER_LOAD_LEDGER": str(ledger), "DATABASE_URL": db_url}
    logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
    cmd = [sys.executable, str(LOAD_WORKER), "--data-dir", str(data_dir), "--nice", "0", "--poll-s", "0.2"]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen([*cmd, "--once"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            )

    settings = Settings(data_dir=data_dir, start_worker=False)
    started = time.monotonic()
    try:
        shown, errors = run_labelers(settings, db_url, to_label, LABELERS, LABELS_EACH)
        labels_took = time.monotonic() - started
        codes = [p.wait(300) for p in procs]  # --once: each exits when the queue is empty
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    took = time.monotonic() - started
    print(
        f"load: {LABELERS * LABELS_EACH} labels in {labels_took:.1f} s, {JOBS} jobs by {WORKERS} workers in {took:.1f} s"
    )
    assert not errors, errors[:3]
    assert codes == [0] * WORKERS, [log.read_text()[-2000:] for log in logs]

    # no job ran twice, none was lost
    runs = [line.split() for line in ledger.read_text().splitlines()]
    assert Counter(int(job) for job, _pid in runs) == {job: 1 for job in job_ids}
    assert len({pid for _job, pid in runs}) > 1, "one worker took every job: the test proved no concurrency"
    with sessions() as s:
        jobs = s.execute(
            select(Job.id, Job.status, Job.attempt, Job.model_dir).where(Job.id.in_(job_ids))
        ).all()
        points = dict(
            s.execute(
                select(LossPoint.job_id, func.count())
                .where(LossPoint.split == "train")
                .group_by(LossPoint.job_id)
            )
            .tuples()
            .all()
        )
        assert {j.id: (j.status, j.attempt) for j in jobs} == {job: ("completed", 1) for job in job_ids}
        assert points == {job: STEPS for job in job_ids}  # each step recorded once
        assert all(Path(j.model_dir).is_dir() for j in jobs)
        assert s.scalar(select(func.count()).select_from(Job).where(Job.id.not_in(job_ids))) == 0

        # every label there once
        labeled = s.execute(
            select(Example.id, Example.labeled_by).where(
                Example.dataset_id == to_label, Example.label.is_not(None)
            )
        ).all()
    everyone = [ex for ids in shown.values() for ex in ids]
    assert len(everyone) == len(set(everyone)) == LABELERS * LABELS_EACH  # no example handed out twice
    assert {r.id for r in labeled} == set(everyone)
    assert Counter(r.labeled_by for r in labeled) == {f"user{i}": LABELS_EACH for i in range(LABELERS)}
