"""Predict a file: the Try tab's handlers queue a ``predict`` job, the worker runs it, the result is downloadable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import worker
from storage import repo
from ui.common import Ctx, Settings
from ui.predict_file import prediction_status, progress_html, start_prediction

WORDS = {"pos": ["great", "lovely", "superb"], "neg": ["awful", "boring", "dull"]}


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    """The app context on the test's data dir (no worker process: tests run it in process)."""
    return Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> str:
    """A 1-layer frozen sentiment model (pos / neg), trained once for the module."""
    from finetuner import TrainConfig, train

    folder = tmp_path_factory.mktemp("predict-model")
    config = TrainConfig(
        task="sequence", output_dir=str(folder), mode="frozen", epochs=5, batch_size=8, eval_split=0.0,
        model_overrides={"num_hidden_layers": 1},
    )  # fmt: skip
    rows = [{"text": f"a {w} film", "label": k} for k, ws in WORDS.items() for w in ws for _ in range(2)]
    return str(train(config, rows).output_dir)


@pytest.fixture
def model_job(sessions, make_dataset, model_folder) -> int:
    """A completed train job whose model is `model_folder` (the row only: the training ran once)."""
    with sessions() as s:
        job = repo.create_job(s, make_dataset(), {"task": "sequence"})
        repo.claim_next_job(s, 1)
        repo.finish_job(s, job.id, {"accuracy": 1.0}, model_folder)
        return job.id


def test_uploaded_file_is_predicted_by_the_worker(ctx, sessions, data_dir, model_job, tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text("id,review\n1,a great film really superb\n2,\n3,an awful film really dull\n")
    r = start_prediction(ctx, model_job, str(src), text_col="review")
    assert r["ok"], r["message"]
    with sessions() as s:
        job = repo.get_job(s, r["job_id"])
        assert job.kind == "predict" and job.status == "queued"
        # the worker reads its own copy under uploads/, and writes under a random folder of exports/
        assert job.config["input"].startswith(str(data_dir / "uploads"))
        assert job.config["output"].startswith(str(data_dir / "exports"))
    assert prediction_status(ctx, r["job_id"])["file"] is None
    src.unlink()  # Gradio's temp copy of an upload may be gone by the time the worker runs

    worker.work(sessions, data_dir / "models", poll_s=0.01, once=True)

    st = prediction_status(ctx, r["job_id"])
    assert st["status"] == "completed" and st["progress"] == 1.0 and "3 rows" in st["message"]
    assert "width:100.0%" in progress_html(st)
    out = pd.read_csv(st["file"], keep_default_na=False)
    assert list(out.columns) == ["id", "review", "label", "score", "p_neg", "p_pos"]
    assert out["label"][0] in ("pos", "neg") and out["label"][1] == ""  # an empty row stays empty
    assert float(out["p_neg"][0]) + float(out["p_pos"][0]) == pytest.approx(1.0)


def test_a_dataset_can_be_predicted(ctx, sessions, data_dir, model_job):
    with sessions() as s:
        dataset_id = repo.get_job(s, model_job).dataset_id
        n = repo.count_examples(s, dataset_id)
    r = start_prediction(ctx, model_job, None, dataset_id)
    assert r["ok"], r["message"]
    worker.work(sessions, data_dir / "models", poll_s=0.01, once=True)
    st = prediction_status(ctx, r["job_id"])
    lines = Path(st["file"]).read_text(encoding="utf-8").splitlines()
    assert len(lines) == n and {"text", "label", "predicted_label", "score"} <= set(json.loads(lines[0]))


@pytest.mark.parametrize(
    ("model", "file", "message"),
    [
        (None, "x.csv", "Choose a trained model"),
        ("model", None, "Upload a file"),
        ("model", "x.pdf", "x.pdf: unknown file type"),
    ],
)
def test_refusals_are_messages(ctx, model_job, tmp_path, model, file, message):
    path = None
    if file:
        path = tmp_path / file
        path.write_text("text\nhello\n")
    r = start_prediction(ctx, model_job if model else None, str(path) if path else None)
    assert not r["ok"] and message in r["message"]


def test_a_missing_column_fails_the_job_with_a_message(ctx, sessions, data_dir, model_job, tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text("text\nfine\n")
    r = start_prediction(ctx, model_job, str(src), text_col="review")
    worker.work(sessions, data_dir / "models", poll_s=0.01, once=True)
    st = prediction_status(ctx, r["job_id"])
    assert st["status"] == "failed" and "no text column 'review'" in st["message"] and st["file"] is None


def test_a_fenced_attempt_writes_nothing(ctx, sessions, data_dir, model_job, tmp_path):
    from worker_predict import run_predict_job

    src = tmp_path / "reviews.csv"
    src.write_text("text\nfine\n")
    r = start_prediction(ctx, model_job, str(src))
    with sessions() as s:
        stale = repo.claim_next_job(s, 1, kinds=("predict",)).attempt
        # the app judged the worker gone: a second claim takes the job, so the first attempt is fenced
        repo.interrupt_job(s, r["job_id"], stale, "the worker stopped responding")
        repo.requeue_for_resume(s, r["job_id"])
        repo.claim_next_job(s, 2, kinds=("predict",))
    with worker.Lease(sessions, r["job_id"], stale) as lease:
        assert run_predict_job(sessions, r["job_id"], lease=lease) == "fenced"
    with sessions() as s:
        output = repo.get_job(s, r["job_id"]).config["output"]
    assert not Path(output).exists()
