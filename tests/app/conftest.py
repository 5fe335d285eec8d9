"""Fixtures for the app and worker tests: a temporary data dir with a migrated SQLite DB, and data factories.

Training in these tests is real, on the bundled MiniLM cut to one layer (`TINY`): about 0.2 s a step on CPU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # app.py and worker.py live at the repository root, beside the packages
    sys.path.insert(0, str(ROOT))

from app_rows import TINY, WORDS, sentiment_rows  # noqa: E402, F401  (the app tests' data)

from storage import repo  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every app test runs offline (the shared `offline` fixture)."""


@pytest.fixture
def make_dataset(sessions):
    """Factory: ``make_dataset(n=24, name="reviews") -> dataset id`` of a labeled sequence dataset."""

    def make(n: int = 24, name: str = "reviews") -> int:
        with sessions() as s:
            ds = repo.import_examples(s, name, "sequence", sentiment_rows(n), labels=["neg", "pos"])
            return ds.id

    return make


@pytest.fixture
def make_job(sessions, make_dataset):
    """Factory: ``make_job(dataset_id=None, **config) -> job id``, a queued tiny-model job (1 epoch, batch 8)."""

    def make(dataset_id: int | None = None, **config) -> int:
        dataset_id = dataset_id or make_dataset()
        cfg = {
            "task": "sequence",
            "output_dir": "",
            "epochs": 1,
            "batch_size": 8,
            "log_every": 1,
            "eval_split": 0.25,
            "model_overrides": TINY,
            **config,
        }
        with sessions() as s:
            return repo.create_job(s, dataset_id, cfg).id

    return make


@pytest.fixture
def csv_file(tmp_path) -> Path:
    """A small labeled CSV with a header row, as a user would upload it."""
    path = tmp_path / "reviews.csv"
    lines = ["text,label"] + [f'"{r["text"]}",{r["label"]}' for r in sentiment_rows(24)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def worker_env(data_dir) -> dict:
    """Environment for a worker subprocess on the test's data dir (offline, few threads)."""
    return {**os.environ, "DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
