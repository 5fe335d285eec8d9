"""Model in the loop for real: a train job (1-layer model, frozen) -> the worker scores the dataset -> suggestions."""

from __future__ import annotations

import random

import pytest

import worker
import worker_score
from storage import repo
from ui import label
from ui.label import current_id, new_state, open_dataset

WORDS = {"pos": ["great", "lovely", "superb", "fun"], "neg": ["awful", "boring", "dull", "bad"]}
TINY = {"num_hidden_layers": 1}


def sentiment(n: int, labeled: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        kind = "pos" if i % 2 == 0 else "neg"
        rows.append({"text": f"a {rng.choice(WORDS[kind])} film", "label": kind if i < labeled else None})
    return rows


def ner(n: int, labeled: int) -> list[dict]:
    rows = []
    for i in range(n):
        tokens = ["Ada", "visited", ["Paris", "Rome", "Oslo"][i % 3], "today"]
        rows.append({"tokens": tokens, "tags": ["B-PER", "O", "B-LOC", "O"] if i < labeled else None})
    return rows


@pytest.mark.parametrize(
    ("task", "labels", "rows"),
    [("sequence", ["neg", "pos"], sentiment(40, 24)), ("token", ["PER", "LOC"], ner(30, 20))],
)
def test_train_then_score_job_gives_suggestions(ctx, sessions, db_path, task, labels, rows):
    with sessions() as s:
        ds = repo.create_dataset(s, task, task, labels)
        repo.add_examples(s, ds.id, rows)
        config = {"task": task, "output_dir": "", "mode": "frozen", "epochs": 3, "batch_size": 8,
                  "eval_split": 0.0, "model_overrides": TINY}  # fmt: skip
        train_id = repo.create_job(s, ds.id, config).id

    worker.work(sessions, db_path.parent / "models", poll_s=0.01, once=True)  # trains, queues scoring, scores

    with sessions() as s:
        assert repo.get_job(s, train_id).status == "completed"
        score_id = repo.latest_score_job_id(s, ds.id)
        assert score_id is not None and repo.get_job(s, score_id).metrics == {"scored": len(rows)}
        scores = repo.example_scores(s, score_id)
    assert len(scores) == len(rows)
    if task == "sequence":
        assert all(sc.label in labels and 0.5 <= sc.confidence <= 1 for sc in scores)
        assert all(sc.entropy >= 0 and 0 <= sc.margin <= 1 for sc in scores)
    else:
        assert all(len(sc.tags) == 4 for sc in scores)

    st = open_dataset(ctx, new_state("tab"), ds.id, order="margin" if task == "sequence" else "id")
    v = label.view(ctx, st)
    assert v["score"] is not None and (v["score"]["label"] or v["score"]["tags"])
    if task == "sequence":  # most uncertain first: the smallest margin among the unlabeled examples
        unlabeled = {sc.example_id: sc.margin for sc in scores if sc.example_id > 24}
        assert current_id(st) == min(unlabeled, key=lambda k: (unlabeled[k], k))
    st = label.act(ctx, st, "accept")
    with sessions() as s:
        first = repo.get_example(s, st["trail"][0])
        assert (first.label or first.tags) == (v["score"]["label"] or v["score"]["tags"])
    assert isinstance(label.progress(ctx, st)["disagreements"], int)


def test_uncertainty_numbers():
    u = worker_score.uncertainty({"a": 0.5, "b": 0.5})
    assert u["margin"] == 0 and abs(u["entropy"] - 0.6931) < 1e-3
    assert worker_score.uncertainty({"a": 1.0, "b": 0.0}) == {
        "label": "a",
        "confidence": 1.0,
        "entropy": 0.0,
        "margin": 1.0,
    }


def test_no_score_job_for_a_fully_labeled_dataset_unless_asked(ctx, sessions):
    with sessions() as s:
        ds = repo.create_dataset(s, "full", "sequence", ["neg", "pos"])
        repo.add_examples(s, ds.id, sentiment(4, 4))
        job = repo.create_job(s, ds.id, {"task": "sequence"})
        repo.claim_next_job(s, 1)
        repo.finish_job(s, job.id, {}, "/nowhere")
    with sessions() as s:
        assert repo.queue_score_job(s, job.id) is None
    assert "queued" in label.score_now(ctx, ds.id)
