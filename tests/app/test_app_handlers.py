"""The UI's handlers as plain functions, without a browser: upload -> preview -> import, start -> job, poll -> plot."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import app
import worker
from storage import repo
from ui import compare, data, live, models, train_jobs, try_it
from ui.common import Ctx, Settings, esc


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    """The app context the tabs get, on the test's database, with the 1-layer model for every job."""
    return Ctx(
        Settings(data_dir=data_dir, model_overrides={"num_hidden_layers": 1}, start_worker=False), sessions
    )


@pytest.fixture
def trained_job(ctx, make_dataset, data_dir) -> int:
    """A completed job (2 epochs, tiny model) started through the Train tab's handler and run by the worker."""
    r = train_jobs.start_job(
        ctx, make_dataset(24), "", "full", "cross", "auto", "adamw", 0, "linear", 0.06, 2, 8
    )
    worker.work(ctx.sessions, data_dir / "models", once=True)
    return r["job_id"]


def test_preview_guesses_mapping_and_import_writes_everything(ctx, csv_file):
    p = data.preview_upload(str(csv_file), "sequence")
    assert p["ok"] and p["roles"] == {"text": "text", "text_pair": None, "label": "label"}
    assert p["name"] == "reviews" and len(p["rows"]) == 10 and "24 rows" in p["message"]

    r = data.import_upload(ctx, str(csv_file), "sequence", "reviews", p["roles"]["text"], data.NONE, "label")
    assert r["ok"], r["message"]
    assert dict(zip(r["distribution"]["label"], r["distribution"]["count"], strict=True)) == {
        "neg": 12,
        "pos": 12,
    }
    table = data.datasets_table(ctx)
    assert table.loc[0, "name"] == "reviews" and table.loc[0, "examples"] == 24
    page, info = data.browse(ctx, r["dataset_id"], search="film", status="labeled", page=2)
    assert len(page) == 4 and info == "21–24 of 24"


def test_import_reports_row_and_column_and_writes_nothing(ctx, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood film,pos\n,neg\n", encoding="utf-8")
    r = data.import_upload(ctx, str(bad), "sequence", "bad", "text", None, "label")
    assert not r["ok"] and "Nothing was imported" in r["message"] and "row 2" in r["message"]
    assert "Row 1 is the first row under the header" in r["message"]  # row 2 is the file's line 3
    assert data.datasets_table(ctx).empty


def test_a_conll_problem_names_its_line_without_the_row_note(ctx, tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Ana B-PER\nlives\n", encoding="utf-8")
    r = data.import_upload(ctx, str(bad), "token", "bad", None, None, None)
    assert not r["ok"] and "line 2" in r["message"], r["message"]
    assert "spreadsheet" not in r["message"]


def test_user_text_is_escaped(ctx, tmp_path):
    evil = tmp_path / "evil.csv"
    evil.write_text(
        'text,label\n"<script>alert(1)</script>",<img src=x onerror=alert(1)>\nok,b\n', encoding="utf-8"
    )
    r = data.import_upload(ctx, str(evil), "sequence", "<b>evil</b>", "text", None, "label")
    assert r["ok"] and "<b>" not in r["message"] and "&#60;b&#62;evil" in r["message"]
    assert esc("<img src=x onerror=alert(1)>") == "&#60;img src=x onerror=alert&#40;1&#41;&#62;"
    assert "<img" not in live.confusion_html({"confusion_matrix": [[1, 0], [0, 1]], "labels": ["<img>", "b"]})


def test_start_queues_a_job_row_with_the_form_settings(ctx, make_dataset):
    ds = make_dataset()
    r = train_jobs.start_job(ctx, ds, "", "frozen", "cross", "auto", "sgd", 0.01, "cosine", 0.1, 4, 16)
    assert r["ok"], r["message"]
    with ctx.sessions() as s:
        job = repo.get_job(s, r["job_id"])
    assert job.status == "queued" and job.dataset_id == ds
    assert job.config["mode"] == "frozen" and job.config["optimizer"] == "sgd" and job.config["lr"] == 0.01
    assert job.config["epochs"] == 4 and job.config["batch_size"] == 16 and job.config["task"] == "sequence"
    assert job.config["model_overrides"] == {"num_hidden_layers": 1}
    assert live.jobs_table(ctx).loc[0, "status"] == "queued"


def test_the_form_defaults_are_the_engine_defaults():
    """ui/train.py repeats TrainConfig's defaults (the web process does not import torch); they must not drift."""
    from finetuner import TrainConfig
    from finetuner.config import LARGE_DATA_EMA

    engine = TrainConfig(task="sequence", output_dir="")
    auto = {
        "lr": 0.0,
        "epochs": 0,
        "pooling": "auto",
        "pair_encoding": "auto",
        "weight_average": "auto",
        "evals_per_epoch": 0,
        "nproc": 1,  # the worker's setting (processes to launch), not the engine's: one, in process
    }  # the form: "the engine decides"
    for name, value in train_jobs.FORM_DEFAULTS.items():
        assert value == (auto[name] if name in auto else getattr(engine, name)), name
    assert engine.lr is None and engine.pooling is None and engine.ema_decay is None  # what "auto" stands for
    assert engine.pair_encoding is None
    assert engine.evals_per_epoch is None
    assert train_jobs.WEIGHT_AVERAGE["auto"] is None and train_jobs.WEIGHT_AVERAGE["on"] == LARGE_DATA_EMA


def test_start_refuses_bad_settings_and_untrainable_data(ctx, make_dataset):
    r = train_jobs.start_job(ctx, make_dataset(), "", "half")
    assert not r["ok"] and "mode must be" in r["message"]
    values = {**train_jobs.FORM_DEFAULTS, "evals_per_epoch": -1}
    r = train_jobs.start_job(ctx, make_dataset(), *(values[f] for f in train_jobs.FORM_FIELDS))
    assert not r["ok"] and "per&#95;epoch must be at least 1" in r["message"]
    assert not train_jobs.start_job(ctx, None)["ok"]
    assert live.jobs_table(ctx).empty  # no job row was written for the refused settings
    with ctx.sessions() as s:
        one_class = repo.import_examples(s, "one", "sequence", [{"text": "x", "label": "a"}], ["a"]).id
    r = train_jobs.start_job(ctx, one_class)
    assert not r["ok"] and "two labels" in r["message"]


def test_poll_of_a_job_without_points_clears_the_plot(ctx, make_job):
    """No placeholder-only frame: drawn first, it left the LinePlot without colours for the curves that followed."""
    v = live.poll(ctx, make_job())
    assert v["status"] == "queued" and v["loss"] is None


def test_start_message_is_cleared_once_the_watched_job_ends(ctx, make_job):
    """ "Job #n queued." under the Start button went stale when the job finished; the timer's redraw now clears it."""
    job, other = make_job(), make_job()
    queued = live.poll(ctx, job)
    assert not live.job_just_ended(job, queued["signature"], queued)  # still queued
    train_jobs.cancel_job(ctx, job)
    ended = live.poll(ctx, job, queued["signature"])
    assert ended["status"] == "cancelled"
    assert live.job_just_ended(job, queued["signature"], ended)
    assert not live.job_just_ended(
        job, None, ended
    )  # a redraw after a button press keeps that button's message
    assert not live.job_just_ended(job, ended["signature"], ended)  # no change since the last draw
    assert not live.job_just_ended(job, live.poll(ctx, other)["signature"], ended)  # another job was drawn


def test_poll_gives_plot_data_progress_and_final_metrics(ctx, trained_job):
    v = live.poll(ctx, trained_job)
    assert v["status"] == "completed" and not v["can_cancel"]
    loss = v["loss"]
    assert list(loss.columns) == ["step", "loss", "series"] and set(loss["series"]) == {"train", "eval"}
    assert pd.api.types.is_float_dtype(
        loss["loss"]
    )  # a non-numeric column would make the plot's axis nominal
    assert len(loss[loss.series == "eval"]) == 2 and not loss["loss"].isna().any()
    assert list(v["epochs"]["epoch"]) == ["1", "2"]
    assert set(v["per_class"]["class"]) == {"neg", "pos"}
    assert "<table>" in v["confusion_html"] and 'data-progress="100.0"' in v["progress_html"]
    assert v["signature"] == live.poll(ctx, trained_job)["signature"]  # unchanged job: nothing to redraw
    assert live.poll(ctx, trained_job, v["signature"]) == {  # ...and the timer's poll builds no frames
        "status": v["status"],
        "active": v["active"],
        "signature": v["signature"],
        "unchanged": True,
    }

    both = compare.overlay(ctx, trained_job, trained_job)
    assert set(both["series"]) == {"A train", "A eval", "B train", "B eval"}
    assert set(compare.overlay(ctx, trained_job, None)["series"]) == {
        "A train",
        "A eval",
        "B train",
        "B eval",
    }


def test_poll_of_nothing_and_of_a_missing_job(ctx):
    assert "Start" in live.poll(ctx, None)["status_md"]
    assert "no longer exists" in live.poll(ctx, 999)["status_md"]


def test_progress_bar_follows_a_phase_before_the_first_step(ctx, make_job):
    """A contrastive step ran for a minute with the bar at 0%: until steps start, the bar is the phase's."""
    job = make_job()
    with ctx.sessions() as s:
        repo.claim_next_job(s, 0)
        repo.heartbeat(s, job, message="contrastive tuning 40%")
    view = live.poll(ctx, job)
    assert 'data-progress="40.0"' in view["progress_html"] and "contrastive tuning 40%" in view["status_md"]
    assert "contrastive" not in view["progress_html"]  # named once, in the status line above the bar
    with ctx.sessions() as s:  # a finished phase is not a full bar: the job's steps have not begun
        repo.heartbeat(s, job, message="tokenizing 100%")
    html = live.poll(ctx, job)["progress_html"]
    assert 'data-progress="0.0"' in html
    with ctx.sessions() as s:  # the head's steps: the bar is the job's progress again, the message its epoch
        repo.heartbeat(s, job, progress=0.25, step=5, total_steps=20, message="training: epoch 1/4")
    html = live.poll(ctx, job)["progress_html"]
    assert 'data-progress="25.0"' in html and "step 5/20" in html and "contrastive" not in html
    with ctx.sessions() as s:  # a phase after steps began (the refit) leaves the bar at the job's progress
        repo.heartbeat(s, job, message="training the head on every example 50%")
    assert 'data-progress="25.0"' in live.poll(ctx, job)["progress_html"]


def test_cancel_resume_discard(ctx, make_job, data_dir):
    queued = make_job()
    assert "cancelled" in train_jobs.cancel_job(ctx, queued)

    interrupted = make_job()
    with ctx.sessions() as s:
        repo.claim_next_job(s, 0)  # pid 0: no such worker
    assert worker.recover_jobs(ctx.sessions) == [interrupted]
    assert live.poll(ctx, interrupted)["can_resume"]
    assert "resume" in train_jobs.resume_job(ctx, interrupted)
    assert live.poll(ctx, interrupted)["status"] == "queued"
    with ctx.sessions() as s:
        repo.claim_next_job(s, 0)
    worker.recover_jobs(ctx.sessions)
    assert "discarded" in train_jobs.discard_job(ctx, interrupted)
    assert live.poll(ctx, interrupted)["status"] == "cancelled"


def test_try_predict_explain_and_models(ctx, trained_job):
    r = try_it.predict(ctx, trained_job, "a wonderful, lovely film")
    assert r["ok"] and set(r["label"]) == {"neg", "pos"} and abs(sum(r["label"].values()) - 1) < 1e-5
    # the wait, a first model load included: "12 ms", or "1.3 s" on a loaded machine
    assert r["latency_ms"] > 0 and re.search(r"\d (ms|s)$", r["message"])
    html = try_it.explain(ctx, trained_job, "a wonderful, lovely film", label="neg")
    assert "−log p" in html and "384" in html
    assert not try_it.predict(ctx, trained_job, "  ")["ok"]

    table = models.models_table(ctx)
    assert list(table["job"]) == [trained_job]
    with zipfile.ZipFile(models.download_model(ctx, trained_job)) as z:
        assert {"config.json", "model.safetensors", "finetuner.json"} <= set(z.namelist())
    assert "I am sure" in models.delete_model(ctx, trained_job, False)
    assert "Deleted" in models.delete_model(ctx, trained_job, True)
    assert models.models_table(ctx).empty


def test_export_and_delete_dataset(ctx, make_dataset):
    ds = make_dataset()
    path = data.export_dataset(ctx, ds, "jsonl")
    assert path and len(Path(path).read_text(encoding="utf-8").splitlines()) == 24
    assert "I am sure" in data.delete_dataset(ctx, ds, False)
    assert "Deleted" in data.delete_dataset(ctx, ds, True)
    assert data.datasets_table(ctx).empty


def test_build_app_wires_without_torch(ctx):
    demo = app.build_app(ctx.settings, ctx.sessions)
    assert demo.title == "Finetuner"


def test_the_web_process_imports_neither_torch_nor_the_worker(tmp_path):
    """In a fresh interpreter (this one has long imported torch): the app built, and the modules its Evaluate and
    Predict-a-file buttons queue through, leave torch, transformers and the worker modules unloaded."""
    import subprocess
    import sys

    code = (
        "import sys, app\n"
        "from storage.db import open_db\n"
        "import storage.job_requests, ui.evaluate, ui.predict_file, ui.auto_hint\n"
        f"app.build_app(app.settings_from_env(), open_db('sqlite:///{tmp_path}/finetuner.db'))\n"
        "heavy = ('torch', 'transformers', 'worker', 'worker_evaluate', 'worker_predict', 'worker_score')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    env = {**os.environ, "DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("DATABASE_URL", None)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINETUNER_AUTH", "ana:s3cret:x")
    monkeypatch.setenv("FINETUNER_MODEL_OVERRIDES", '{"num_hidden_layers": 1}')
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    s = app.settings_from_env()
    assert s.auth == ("ana", "s3cret:x") and s.model_overrides == {"num_hidden_layers": 1}
    assert s.data_dir == tmp_path
    monkeypatch.delenv("DATA_DIR")
    expected = "/data" if os.path.isdir("/data") else "data"
    assert str(app.default_data_dir()) == expected


def test_token_dataset_from_conll_trains_and_highlights_entities(ctx, tmp_path, data_dir):
    conll = tmp_path / "ner.conll"
    sentences = [[("Ana", "B-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC")],
                 [("Bo", "B-PER"), ("visited", "O"), ("Rome", "B-LOC"), ("today", "O")]] * 6  # fmt: skip
    conll.write_text(
        "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8"
    )
    assert data.preview_upload(str(conll), "token")["ok"]
    r = data.import_upload(ctx, str(conll), "token", "ner")
    assert r["ok"], r["message"]
    job = train_jobs.start_job(
        ctx, r["dataset_id"], "", "full", "cross", "auto", "adamw", 0, "linear", 0.06, 1, 8
    )
    assert job["ok"], job["message"]
    worker.work(ctx.sessions, data_dir / "models", once=True)
    assert live.poll(ctx, job["job_id"])["status"] == "completed"
    p = try_it.predict(ctx, job["job_id"], "Ana visited Rome")
    assert p["ok"] and p["task"] == "token" and p["label"] is None
    assert p["highlight"]["text"] == "Ana visited Rome"
    for e in p["highlight"]["entities"]:
        assert e["entity"] in ("PER", "LOC") and 0 <= e["start"] < e["end"] <= len("Ana visited Rome")
    assert "−log p" in try_it.explain(ctx, job["job_id"], "Ana visited Rome", word=2)


def test_the_ui_queues_work_through_storage_never_the_worker_modules():
    """Not even a deferred import inside a handler: the UI and the worker meet only in the database."""
    import ast

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in [
        root / "app.py",
        *sorted((root / "ui").glob("*.py")),
        *sorted((root / "storage").rglob("*.py")),
    ]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0].startswith("worker")]
    assert found == []
