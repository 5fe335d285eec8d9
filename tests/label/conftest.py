"""Fixtures for the Label tab tests: a migrated database per test, an app context, and dataset factories."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # worker.py lives at the repository root, beside the packages
    sys.path.insert(0, str(ROOT))

from storage import repo  # noqa: E402
from ui.common import Ctx, Settings  # noqa: E402

TINY = {"num_hidden_layers": 1}  # the bundled MiniLM cut to one layer: trains and scores in seconds


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every label test runs offline (the shared `offline` fixture)."""


@pytest.fixture
def db_path(data_dir) -> Path:
    """Where this test's SQLite file is (its folder is the data dir; with PostgreSQL the file is not used)."""
    return data_dir / "finetuner.db"


@pytest.fixture
def ctx(sessions, db_path) -> Ctx:
    """The app context the handlers take, on the test's database."""
    return Ctx(Settings(data_dir=db_path.parent, model_overrides=TINY, start_worker=False), sessions)


@pytest.fixture
def make_dataset(sessions):
    """Factory: ``make_dataset(task="sequence", n=6, labels=("neg", "pos"), labeled=0) -> dataset id``.

    Texts are ``"text 0"``, ``"text 1"``... (pairs add ``"other i"``; token examples are ``["Ada", "met", "w<i>"
    , "in", "Paris"]``); the first `labeled` examples get labels in turn, labeled_by "import".
    """

    def make(task: str = "sequence", n: int = 6, labels=("neg", "pos"), labeled: int = 0, name=None) -> int:
        rows = []
        for i in range(n):
            if task == "token":
                row = {"tokens": ["Ada", "met", f"w{i}", "in", "Paris"]}
                row["tags"] = ["B-PER", "O", "O", "O", "B-LOC"] if i < labeled else None
            else:
                row = {"text": f"text {i}", "label": labels[i % len(labels)] if i < labeled else None}
                if task == "pair":
                    row["text_pair"] = f"other {i}"
            rows.append(row)
        with sessions() as s:
            ds = repo.create_dataset(s, name or f"{task}-{n}", task, labels)
            repo.add_examples(s, ds.id, rows)
            return ds.id

    return make


@pytest.fixture
def score_job(sessions):
    """Factory: ``score_job(dataset_id, {example_id: (label, confidence, entropy, margin)}) -> job id``,
    a completed score job with those predictions (token scores: ``{example_id: tags}``)."""

    def make(dataset_id: int, predictions: dict) -> int:
        with sessions() as s:
            job = repo.create_job(s, dataset_id, {"model_dir": "x"}, kind="score")
            rows = []
            for ex_id, p in predictions.items():
                if isinstance(p, list):
                    rows.append({"example_id": ex_id, "tags": p, "confidence": 0.5})
                else:
                    label, conf, ent, margin = p
                    rows.append(
                        {
                            "example_id": ex_id,
                            "label": label,
                            "confidence": conf,
                            "entropy": ent,
                            "margin": margin,
                        }
                    )
            repo.add_example_scores(s, job.id, rows)
            repo.claim_next_job(s, 1, kinds=("score",))
            repo.finish_job(s, job.id, {"scored": len(rows)}, "")
            return job.id

    return make


@pytest.fixture
def example_ids(sessions):
    """Factory: ``example_ids(dataset_id) -> [id, ...]`` in file order."""

    def get(dataset_id: int) -> list[int]:
        with sessions() as s:
            return [e.id for e in repo.page_examples(s, dataset_id, limit=10_000)]

    return get
