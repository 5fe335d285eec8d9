"""Models tab: the download is ready when a model is chosen (zipped by the worker at save), push, delete."""

from __future__ import annotations

import html
import zipfile
from pathlib import Path

import huggingface_hub.constants
import pytest
from huggingface_hub import HfApi

import worker
from finetuner import hub
from storage import repo
from ui import models
from ui.common import Ctx, Settings


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(
        Settings(data_dir=data_dir, model_overrides={"num_hidden_layers": 1}, start_worker=False), sessions
    )


@pytest.fixture
def saved_job(ctx, make_job, data_dir) -> int:
    """A job the worker trained (1 epoch, 1-layer model) and completed."""
    job_id = make_job(mode="frozen")
    worker.work(ctx.sessions, data_dir / "models", once=True)
    with ctx.sessions() as s:
        assert repo.get_job(s, job_id).status == "completed"
    return job_id


@pytest.fixture
def folder_job(ctx, make_job, data_dir) -> int:
    """A completed job whose model folder is laid out by hand (no training: push and zip only read files)."""
    job_id = make_job()
    folder = data_dir / "models" / str(job_id)
    folder.mkdir(parents=True)
    (folder / "finetuner.json").write_text('{"task": "sequence", "labels": ["neg", "pos"]}')
    (folder / "model.safetensors").write_bytes(b"weights")
    with ctx.sessions() as s:
        repo.get_job(s, job_id).model_dir = str(folder)
        s.commit()
    return job_id


@pytest.fixture
def no_hub(monkeypatch):
    """HfApi records create_repo / upload_folder instead of calling the Hub; HF_HUB_OFFLINE off, a server token."""
    calls: dict[str, dict] = {}
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.update(create={"repo_id": repo_id, **kw})
    )
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.update(upload=kw))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_TOKEN", "hf_server_token")
    return calls


def test_the_download_is_ready_when_the_worker_saves_the_model(ctx, saved_job, data_dir):
    folder = data_dir / "models" / str(saved_job)
    ready = hub.zip_path(folder)
    assert ready.is_file()  # zipped by the worker, before anyone opens the Models tab
    with zipfile.ZipFile(ready) as archive:
        names = set(archive.namelist())
    assert {"config.json", "model.safetensors", "README.md", "finetuner.json", "tokenizer.json"} <= names
    assert not [n for n in names if n.startswith("checkpoint/")]

    stamp = ready.stat().st_mtime_ns
    update = models.on_choose(ctx, saved_job)  # choosing the model gives the download button its file
    served = Path(update["value"])
    assert (
        update["interactive"]
        and f"finetuner-model-{saved_job}.zip" in update["label"]
        and "MB" in update["label"]
    )
    assert served.parent.parent == ctx.settings.exports_dir and served.read_bytes() == ready.read_bytes()
    assert ready.stat().st_mtime_ns == stamp  # the worker's zip, not a new one
    assert models.on_choose(ctx, None)["interactive"] is False

    assert "Deleted" in models.delete_model(ctx, saved_job, True)
    assert not ready.exists() and not folder.exists()


def test_a_folder_saved_before_gets_its_zip_on_first_download(ctx, folder_job, data_dir):
    ready = hub.zip_path(data_dir / "models" / str(folder_job))
    assert not ready.exists()
    with zipfile.ZipFile(models.download_model(ctx, folder_job)) as archive:
        assert archive.read("model.safetensors") == b"weights"
    assert ready.is_file()


def test_push_from_the_tab_is_private_by_default_and_uses_the_typed_token(ctx, folder_job, no_hub):
    msg = models.push_model(ctx, folder_job, " me/reviews-minilm ", "", False)
    assert "Pushed" in msg and "(private)" in msg and "https://huggingface.co/me/reviews-minilm" in msg
    assert no_hub["create"]["private"] is True and no_hub["create"]["token"] == "hf_server_token"
    assert no_hub["upload"]["folder_path"].endswith(f"models/{folder_job}")
    models.push_model(ctx, folder_job, "me/m", "hf_typed", True)
    assert no_hub["create"]["private"] is False and no_hub["create"]["token"] == "hf_typed"


def test_push_refusals_are_messages(ctx, folder_job, monkeypatch, tmp_path):
    assert "Choose a model" in models.push_model(ctx, None, "me/m", "", False)
    assert "user/name" in models.push_model(ctx, folder_job, " ", "", False)
    # offline (the test run's HF_HUB_OFFLINE=1), for real
    assert "HF_HUB_OFFLINE=1 is set" in html.unescape(
        models.push_model(ctx, folder_job, "me/m", "hf_x", False)
    )
    # no token anywhere, for real: no HF_TOKEN and no saved login
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert "no Hugging Face token" in models.push_model(ctx, folder_job, "me/m", "", False)


def test_with_no_model_the_tabs_say_where_one_comes_from(ctx, folder_job, data_dir):
    """The Models table keeps its column names while empty, and the Try and Models tabs point to Train until a
    model exists (here: a completed job's folder)."""
    from ui.common import model_choices, no_models_hint

    def hint():
        return no_models_hint(model_choices(ctx))

    assert "No trained model yet" in hint()  # the job is still queued
    with ctx.sessions() as s:
        repo.get_job(s, folder_job).status = "completed"
        s.commit()
    assert hint() == ""
    assert list(models.models_table(ctx).columns) == models.MODEL_COLUMNS
    with ctx.sessions() as s:
        repo.get_job(s, folder_job).model_dir = str(data_dir / "models" / "gone")
        s.commit()
    empty = models.models_table(ctx)
    assert empty.empty and list(empty.columns) == models.MODEL_COLUMNS
    assert "No trained model yet" in hint() and "**Train**" in hint()
