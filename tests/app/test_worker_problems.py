"""Multi-label and score datasets through the worker, for real on a 1-layer model: train, score, evaluate."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from app_rows import TINY

import worker
import worker_evaluate
import worker_score
from storage import job_requests, repo
from storage.models import ExampleScore

TOPICS = {
    "sports": ["goal", "match", "league", "coach"],
    "politics": ["vote", "senate", "minister", "law"],
    "music": ["album", "guitar", "concert", "song"],
}


def topic_rows(n: int = 30, seed: int = 0) -> list[dict]:
    """Texts naming one or two topics' words; their labels are those topics."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    rows = []
    for i in range(n):
        chosen = [names[i % 3]] + ([names[(i + 1) % 3]] if i % 2 else [])
        words = [rng.choice(TOPICS[t]) for t in chosen]
        rows.append({"text": "news about the " + " and the ".join(words), "label": sorted(chosen)})
    return rows


def score_rows(n: int = 30, seed: int = 0) -> list[dict]:
    """Pairs whose score (1-5) is how many words the two texts share."""
    rng = random.Random(seed)
    vocab = ["red", "car", "fast", "road", "night", "city", "rain", "light"]
    rows = []
    for _ in range(n):
        a = rng.sample(vocab, 4)
        shared = rng.randint(0, 4)
        b = a[:shared] + rng.sample([w for w in vocab if w not in a], 4 - shared)
        rows.append({"text": " ".join(a), "text_pair": " ".join(b), "label": 1.0 + shared})
    return rows


def make_job(sessions, name: str, task: str, problem: str, rows: list[dict], labels=(), **config) -> int:
    with sessions() as s:
        ds = repo.import_examples(s, name, task, rows, labels=list(labels), problem=problem)
        cfg = {
            "task": task,
            "output_dir": "",
            "epochs": 2,
            "batch_size": 8,
            "log_every": 1,
            "eval_split": 0.25,
            "model_overrides": TINY,
            **config,
        }  # no "problem": the worker takes it from the dataset
        return repo.create_job(s, ds.id, cfg).id


def train(sessions, data_dir: Path, job_id: int) -> dict:
    with sessions() as s:
        job = repo.claim_next_job(s, 0)
        assert job is not None and job.id == job_id
    assert worker.run_job(sessions, job_id, data_dir / "models") == "completed"
    with sessions() as s:
        return repo.job_view(s, job_id)


@pytest.mark.parametrize("mode", ["frozen", "full"])
def test_multilabel_dataset_trains_and_its_model_suggests_label_sets(sessions, data_dir, mode):
    rows = topic_rows(30)
    rows[-1] = {"text": "news about the album and the vote", "label": None}  # one left to suggest for
    job_id = make_job(sessions, "topics", "sequence", "multilabel", rows, TOPICS, mode=mode)
    v = train(sessions, data_dir, job_id)

    assert v["status"] == "completed", v["error"]
    assert {"micro_f1", "macro_f1", "subset_accuracy", "thresholds"} <= set(v["metrics"])
    assert "accuracy" not in v["metrics"]
    folder = Path(v["model_dir"])
    assert json.loads((folder / "config.json").read_text())["problem_type"] == "multi_label_classification"
    assert json.loads((folder / "finetuner.json").read_text())["problem"] == "multilabel"

    with sessions() as s:
        score_id = repo.queue_score_job(s, job_id)
        assert repo.claim_next_job(s, 0).id == score_id
    assert worker_score.run_score_job(sessions, score_id) == "completed"
    with sessions() as s:
        scores = s.query(ExampleScore).filter_by(job_id=score_id).all()
        label_set = repo.get_dataset(s, v["dataset_id"]).label_names
    assert len(scores) == 30
    for score in scores:  # a suggestion is stored as a label set would be: a JSON list in label-set order
        suggested = json.loads(score.label)
        assert suggested == [n for n in label_set if n in suggested]
        assert 0.0 <= score.margin <= 1.0 and 0.5 <= score.confidence <= 1.0


def test_score_pair_dataset_trains_and_evaluates_on_its_test_split(sessions, data_dir):
    rows = score_rows(32)
    for row in rows[-6:]:
        row["split"] = "test"
    job_id = make_job(sessions, "similar", "pair", "regression", rows, mode="full")
    v = train(sessions, data_dir, job_id)

    assert v["status"] == "completed", v["error"]
    assert {"pearson", "spearman", "rmse"} <= set(v["metrics"])
    assert {"pearson", "rmse", "n"} <= set(v["metrics"]["test"]) and v["metrics"]["test"]["n"] == 6
    config = json.loads((Path(v["model_dir"]) / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}  # one output

    eval_id = job_requests.queue_evaluate_job(sessions, job_id, dataset_id=v["dataset_id"], split="test")
    with sessions() as s:
        assert repo.claim_next_job(s, 0).id == eval_id
    assert worker_evaluate.run_evaluate_job(sessions, eval_id) == "completed"
    with sessions() as s:
        metrics = repo.job_view(s, eval_id)["metrics"]
    assert metrics["n"] == 6 and metrics["rmse"] == pytest.approx(v["metrics"]["test"]["rmse"], rel=1e-5)


def test_evaluate_refuses_a_dataset_of_another_problem(sessions, data_dir):
    job_id = make_job(sessions, "topics", "sequence", "multilabel", topic_rows(24), TOPICS, mode="frozen")
    train(sessions, data_dir, job_id)
    with sessions() as s:
        other = repo.import_examples(
            s, "plain", "sequence", [{"text": "a goal", "label": "sports"}], labels=["sports"]
        )
    with pytest.raises(ValueError, match="predicts lists of labels.*holds one label per example"):
        job_requests.queue_evaluate_job(sessions, job_id, dataset_id=other.id)


def test_label_set_uncertainty_takes_the_least_sure_label():
    u = worker_score.label_set_uncertainty({"a": 0.9, "b": 0.45, "c": 0.1}, {"a": 0.5, "b": 0.4, "c": 0.3})
    assert u["margin"] == pytest.approx(0.05)  # b: 0.45 against its threshold 0.4
    assert u["confidence"] == pytest.approx(0.55)  # b again: max(0.45, 0.55)
    assert worker_score.score_row(7, {"score": 3.25}) == {"example_id": 7, "label": "3.25"}
