"""A held-out test split: never trained on, scored once after training, shown beside the dev metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import app_rows
import pytest
from app_rows import FEW_WORDS
from huggingface_hub import ModelCard

import worker
import worker_evaluate
from storage import repo
from ui import compare, data, live, models
from ui.common import Ctx, Settings, headline_text


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    return app_rows.sentiment_rows(n, seed, words=FEW_WORDS)


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    """The app context on the test's database (no worker started)."""
    return Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)


def test_the_import_form_fills_splits_from_a_column_and_from_a_test_file(ctx, tmp_path):
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("text,label,Split\ngood,pos,train\nbad,neg,dev\nfine,pos,\nugly,neg,train\n")
    preview = data.preview_upload(str(mixed), "sequence")
    assert preview["split_col"] == "Split"  # guessed: the form preselects it
    r = data.import_upload(
        ctx, str(mixed), "sequence", "reviews", "text", data.NONE, "label", "Split", "train"
    )
    assert r["ok"] and "dev (eval) 1" in r["message"]
    test_file = tmp_path / "test.csv"
    test_file.write_text("text,label\nlovely,pos\nawful,neg\n")
    again = data.import_upload(
        ctx, str(test_file), "sequence", "reviews", "text", data.NONE, "label", data.NONE, "test"
    )
    assert again["dataset_id"] == r["dataset_id"]  # appended to the same dataset
    with ctx.sessions() as s:
        assert repo.split_counts(s, r["dataset_id"]) == {"train": 3, "eval": 1, "test": 2}


def split_dataset(sessions, n_train: int = 16, n_test: int = 6, n_eval: int = 0, name: str = "split") -> int:
    """A labeled sequence dataset with train, optional eval, and test examples (distinct texts per split)."""
    rows = [{**r, "split": "train"} for r in sentiment_rows(n_train, seed=1)]
    rows += [{**r, "split": "eval"} for r in sentiment_rows(n_eval, seed=2)]
    rows += [{**r, "text": f"test: {r['text']}", "split": "test"} for r in sentiment_rows(n_test, seed=3)]
    with sessions() as s:
        return repo.import_examples(s, name, "sequence", rows, labels=["neg", "pos"]).id


@pytest.mark.parametrize("n_eval", [0, 4])
def test_training_data_never_holds_the_test_split(sessions, n_eval):
    dataset_id = split_dataset(sessions, n_eval=n_eval)
    with sessions() as s:
        train_rows, eval_rows = worker.training_data(s, dataset_id)
        test_rows = worker_evaluate.test_split_rows(s, dataset_id)
    assert len(train_rows) == 16 and len(test_rows) == 6
    assert not any(r["text"].startswith("test:") for r in train_rows + (eval_rows or []))
    assert (eval_rows is None) == (n_eval == 0)  # no dev split: the engine splits the train part


def test_a_completed_job_reports_test_metrics_apart_with_their_own_report(sessions, make_job, data_dir):
    dataset_id = split_dataset(sessions)
    job_id = make_job(dataset_id, eval_split=0.25)
    with sessions() as s:
        assert repo.claim_next_job(s, os.getpid()).id == job_id
    assert worker.run_job(sessions, job_id, data_dir / "models") == "completed"

    with sessions() as s:
        job = repo.get_job(s, job_id)
        metrics, model_dir = job.metrics, job.model_dir
    test = metrics["test"]
    assert test["n"] == 6
    assert sum(c["support"] for c in test["per_class"].values()) == 6  # the test rows, not the dev ones
    assert sum(map(sum, test["confusion_matrix"])) == 6
    assert sum(c["support"] for c in metrics["per_class"].values()) == 4  # dev: 25% of the 16 train rows
    # the saved folder says it too: finetuner.json and the card's model-index
    meta = json.loads((data_dir / "models" / str(job_id) / "finetuner.json").read_text())
    assert meta["test_metrics"]["accuracy"] == test["accuracy"]
    card = ModelCard.load(os.path.join(model_dir, "README.md"))
    splits = {r.dataset_split for r in card.data.eval_results}
    assert splits == {"validation", "test"}

    view = live.poll(
        Ctx(settings=None, sessions=sessions), job_id
    )  # the Train tab: the test results beside the dev ones
    assert view["has_test"] and "Test split" in view["test_md"] and "6 examples" in view["test_md"]
    assert list(view["test_per_class"]["support"]) == [c["support"] for c in test["per_class"].values()]
    assert "Test split: confusion matrix" in view["test_confusion_html"]
    ctx = Ctx(settings=None, sessions=sessions)
    expected = headline_text(test, "sequence")
    assert list(models.models_table(ctx)["test score"]) == [expected]  # the Models tab and the comparison too
    table = compare.compare_table(ctx, job_id, None).set_index("field")
    assert table.loc["test score"].iloc[0] == expected


def test_a_dataset_without_a_test_split_shows_no_test_section():
    view = live.test_view({"accuracy": 0.5, "per_class": {}})
    assert not view["has_test"] and view["test_md"] == "" and view["test_confusion_html"] == ""


def test_examples_can_be_moved_to_a_split_from_the_data_tab(ctx):
    dataset_id = split_dataset(ctx.sessions, n_train=4, n_test=0)
    with ctx.sessions() as s:
        first, second = (e.id for e in repo.page_examples(s, dataset_id, limit=2))
    assert "Moved **2** examples" in data.move_to_split(ctx, dataset_id, f"{first}-{second}", "test")
    assert "Nothing moved" in data.move_to_split(ctx, dataset_id, "999", "eval")  # not in this dataset
    assert "Nothing moved" in data.move_to_split(ctx, dataset_id, "3-1", "eval")
    with ctx.sessions() as s:
        assert repo.split_counts(s, dataset_id) == {"train": 2, "eval": 0, "test": 2}


def test_a_test_split_that_cannot_be_scored_keeps_the_trained_model(
    sessions, make_job, data_dir, monkeypatch
):
    """E.g. a test label the model never saw: the job still completes, and the view says why there is no test."""
    import finetuner
    from finetuner.training import TrainResult

    def fake_train(config, *_args, **_kw):
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "finetuner.json").write_text(
            '{"task": "sequence", "labels": ["neg", "pos"]}'
        )
        return TrainResult(output_dir=Path(config.output_dir), metrics={"accuracy": 1.0}, history=[])

    def unscorable(*_args, **_kw):
        raise ValueError("test example 1: label 'odd' is not in the label set ['neg', 'pos']")

    monkeypatch.setattr(finetuner, "train", fake_train)  # the training itself is tested above
    monkeypatch.setattr(worker_evaluate, "score_test_split", unscorable)
    job_id = make_job(split_dataset(sessions))
    with sessions() as s:
        repo.claim_next_job(s, os.getpid())
    assert worker.run_job(sessions, job_id, data_dir / "models") == "completed"
    with sessions() as s:
        test = repo.get_job(s, job_id).metrics["test"]
    assert test == {"error": "test example 1: label 'odd' is not in the label set ['neg', 'pos']", "n": 6}
    assert "not scored" in live.test_view({"test": test})["test_md"]
