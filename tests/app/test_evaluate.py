"""Evaluate any trained model: on a dataset, one of its splits or a labeled file; as a worker job and on the CLI."""

from __future__ import annotations

import html
import json
import os

import app_rows
import pytest
from app_rows import FEW_WORDS, TINY

import worker
from finetuner.__main__ import main as cli
from finetuner.training import evaluate_folder
from storage import repo
from ui import evaluate
from ui.common import Ctx, Settings


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    return app_rows.sentiment_rows(n, seed, words=FEW_WORDS)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """One 1-layer model folder trained once for the module (evaluation only reads it)."""
    from finetuner import TrainConfig, train

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = tmp_path_factory.mktemp("model")
    config = TrainConfig.from_dict(
        {"task": "sequence", "epochs": 1, "batch_size": 8, "eval_split": 0.25, "model_overrides": TINY,
         "output_dir": str(out), "labels": ["neg", "pos"]}
    )  # fmt: skip
    train(config, sentiment_rows(16), None)
    return str(out)


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)


@pytest.fixture
def model_job(sessions, tiny_model) -> int:
    """A completed train job whose model folder is `tiny_model` (on its own dataset, "reviews")."""
    with sessions() as s:
        ds = repo.import_examples(s, "reviews", "sequence", sentiment_rows(8), labels=["neg", "pos"])
        job = repo.create_job(s, ds.id, {"task": "sequence"})
        job.status, job.model_dir, job.metrics = "completed", tiny_model, {"accuracy": 0.5}
        s.commit()
        return job.id


def held_out_dataset(sessions, name: str = "held-out") -> int:
    rows = [{**r, "split": "train"} for r in sentiment_rows(6, seed=4)]
    rows += [{**r, "split": "test"} for r in sentiment_rows(4, seed=5)]
    with sessions() as s:
        return repo.import_examples(s, name, "sequence", rows, labels=["neg", "pos"]).id


def test_evaluate_a_datasets_test_split_in_the_worker(ctx, model_job, tiny_model, data_dir):
    dataset_id = held_out_dataset(ctx.sessions)
    r = evaluate.start_evaluation(ctx, model_job, dataset_id, "test")
    assert r["ok"], r["message"]
    assert evaluate.evaluation_view(ctx, r["job_id"])["status"] == "queued"
    worker.work(ctx.sessions, data_dir / "models", once=True)  # the worker runs it, not this process

    v = evaluate.evaluation_view(ctx, r["job_id"])
    assert v["status"] == "completed" and "'held-out' (test split) (4 examples)" in html.unescape(
        v["message"]
    )
    assert v["per_class"]["support"].sum() == 4
    assert "Confusion matrix" in v["confusion_html"]
    with ctx.sessions() as s:
        metrics = repo.get_job(s, r["job_id"]).metrics
        test_rows = [
            {k: e[k] for k in ("text", "label")} for e in repo.examples_for_training(s, dataset_id, "test")
        ]
    assert metrics["accuracy"] == evaluate_folder(tiny_model, test_rows)["accuracy"]
    assert evaluate.evaluation_view(ctx, r["job_id"])["status"] == "completed"


def test_evaluate_an_uploaded_labeled_file(ctx, model_job, data_dir, tmp_path):
    path = tmp_path / "heldout.csv"
    path.write_text(
        "text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in sentiment_rows(6, seed=9))
    )
    r = evaluate.start_evaluation(ctx, model_job, path=str(path))
    assert r["ok"], r["message"]
    path.unlink()  # Gradio's temp copy goes away: the job has its own
    worker.work(ctx.sessions, data_dir / "models", once=True)
    v = evaluate.evaluation_view(ctx, r["job_id"])
    assert v["status"] == "completed" and "file 'heldout.csv'" in html.unescape(v["message"])
    assert v["per_class"]["support"].sum() == 6


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown label", "labels the model was not trained on: meh"),
        ("other task", "is a token dataset"),
        ("empty split", "has no labeled examples"),
        ("unlabeled row", "row 2, column 'label': label is missing"),
        ("no model", "Choose a trained model first"),
    ],
)
def test_what_cannot_be_evaluated_is_told_at_once_and_nothing_is_queued(
    ctx, model_job, tmp_path, case, expected
):
    path, dataset_id, split, job = None, None, None, model_job
    with ctx.sessions() as s:
        if case == "unknown label":
            rows = [{"text": "so so", "label": "meh"}, {"text": "great", "label": "pos"}]
            dataset_id = repo.import_examples(s, "odd", "sequence", rows, labels=["meh", "pos"]).id
        elif case == "other task":
            dataset_id = repo.import_examples(
                s, "ner", "token", [{"tokens": ["Ana"], "tags": ["B-PER"]}], ["PER"]
            ).id
        elif case == "empty split":
            dataset_id, split = repo.get_dataset_by_name(s, "reviews").id, "test"
        elif case == "unlabeled row":
            path = tmp_path / "half.csv"
            path.write_text("text,label\ngreat,pos\nawful,\n")
        else:
            job = None
        before = len(repo.list_jobs(s))
    r = evaluate.start_evaluation(ctx, job, dataset_id, split, str(path) if path else None)
    assert not r["ok"] and expected in html.unescape(r["message"])
    with ctx.sessions() as s:
        assert len(repo.list_jobs(s)) == before


def test_cli_eval_takes_file_or_data_and_one_split(tiny_model, tmp_path, capsys):
    path = tmp_path / "all.csv"
    rows = sentiment_rows(8, seed=6)
    path.write_text(
        "text,label,split\n"
        + "".join(f'"{r["text"]}",{r["label"]},{"Test" if i < 4 else "train"}\n' for i, r in enumerate(rows))
    )
    assert cli(["eval", "--model", tiny_model, "--file", str(path)]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert cli(["eval", "--model", tiny_model, "--data", str(path)]) == 0  # the old flag still works
    assert json.loads(capsys.readouterr().out) == everything
    assert sum(c["support"] for c in everything["per_class"].values()) == 8
    assert cli(["eval", "--model", tiny_model, "--file", str(path), "--split", "test"]) == 0
    test = json.loads(capsys.readouterr().out)
    assert sum(c["support"] for c in test["per_class"].values()) == 4
    assert cli(["eval", "--model", tiny_model, "--file", str(path), "--split", "dev"]) == 2
    assert "no rows of the dev split in column 'split'" in capsys.readouterr().err
