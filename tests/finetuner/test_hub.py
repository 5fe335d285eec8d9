"""Leaving the machine: the download zip, and the push to the Hub (up to the upload call: no network here)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from finetuner import hub
from finetuner.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """A folder laid out like a saved model, with a resume checkpoint that must not leave the machine."""
    folder = tmp_path / "models" / "7"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "finetuner.json").write_text('{"task": "sequence", "labels": ["neg", "pos"]}')
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "README.md").write_text("---\nlibrary_name: transformers\n---\n# m\n")
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    (folder / "checkpoint" / "state.pt").write_bytes(b"resume state")
    return folder


@pytest.fixture
def recorded(monkeypatch):
    """HfApi's create_repo and upload_folder record their arguments instead of calling the Hub."""
    calls: dict[str, dict] = {}
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.update(create={"repo_id": repo_id, **kw})
    )
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.update(upload=kw))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def test_zip_holds_the_model_not_the_checkpoint_and_stores_the_weights(model_folder):
    path = hub.write_zip(model_folder)
    assert path == model_folder.parent / "finetuner-model-7.zip"
    with zipfile.ZipFile(path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert set(infos) == {"finetuner.json", "config.json", "README.md", "model.safetensors"}
        assert (
            infos["model.safetensors"].compress_type == zipfile.ZIP_STORED
        )  # deflating weights took the 25 s
        assert infos["config.json"].compress_type == zipfile.ZIP_DEFLATED
        assert archive.read("model.safetensors") == (model_folder / "model.safetensors").read_bytes()
    assert not list(model_folder.parent.glob("*.part"))


def test_ready_zip_is_reused_until_the_folder_changes(model_folder):
    first = hub.write_zip(model_folder)
    stamp = first.stat().st_mtime_ns
    assert hub.ready_zip(model_folder) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    (model_folder / "README.md").write_text("# a new card\n")
    os.utime(model_folder / "README.md", ns=(stamp + 10**9, stamp + 10**9))
    with zipfile.ZipFile(hub.ready_zip(model_folder)) as archive:
        assert archive.read("README.md") == b"# a new card\n"


def test_push_creates_a_private_repo_and_uploads_the_model_files(model_folder, recorded):
    url = hub.push(model_folder, "someone/sst2-minilm")
    assert url == "https://huggingface.co/someone/sst2-minilm"
    create, upload = recorded["create"], recorded["upload"]
    assert create["repo_id"] == "someone/sst2-minilm"
    assert create["private"] is True and create["exist_ok"] is True and create["token"] == "hf_test_token"
    assert upload["repo_id"] == "someone/sst2-minilm" and upload["folder_path"] == str(model_folder)
    assert sorted(upload["allow_patterns"]) == [
        "README.md",
        "config.json",
        "finetuner.json",
        "model.safetensors",
    ]


def test_cli_push_prints_the_url_and_public_is_a_flag(model_folder, recorded, capsys):
    assert main(["push", "--model", str(model_folder), "--repo", "someone/m", "--public"]) == 0
    assert capsys.readouterr().out.strip() == "https://huggingface.co/someone/m"
    assert recorded["create"]["private"] is False


@pytest.mark.parametrize(
    "repo, message",
    [("no-owner", "give the owner too"), ("a/b/c", "not a Hub id"), ("me/bad name", "not a Hub id")],
)
def test_push_refuses_a_bad_repo_id(model_folder, recorded, repo, message):
    with pytest.raises(hub.PushError, match=message):
        hub.push(model_folder, repo)
    assert not recorded


def test_push_refuses_a_folder_that_is_not_a_model(tmp_path, recorded):
    with pytest.raises(hub.PushError, match="not a Finetuner model folder"):
        hub.push(tmp_path, "me/m")


def test_push_without_network_says_so(model_folder, monkeypatch):
    """For real: an endpoint where nothing listens (this machine has no network to the Hub either)."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_OFFLINE", False
    )  # read at import: the test run sets it
    api = HfApi(endpoint="http://127.0.0.1:9", token="hf_test_token")
    with pytest.raises(
        hub.PushError, match=r"cannot reach the Hub at http://127\.0\.0\.1:9 .*check the network"
    ):
        hub.push(model_folder, "me/m", token="hf_test_token", api=api)


def _cli(model_folder, tmp_path, **env) -> subprocess.CompletedProcess:
    """`python -m finetuner push` in a fresh process whose Hugging Face home is empty (no saved login)."""
    return subprocess.run(
        [sys.executable, "-m", "finetuner", "push", "--model", str(model_folder), "--repo", "me/m"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HF_HOME": str(tmp_path / "hf-home"), **env},
        timeout=120,
    )


def test_cli_push_refuses_without_a_token_or_when_offline(model_folder, tmp_path):
    no_token = _cli(model_folder, tmp_path)
    assert no_token.returncode == 2 and "no Hugging Face token: set HF_TOKEN" in no_token.stderr
    offline = _cli(model_folder, tmp_path, HF_TOKEN="hf_test_token", HF_HUB_OFFLINE="1")
    assert offline.returncode == 2 and "HF_HUB_OFFLINE=1 is set" in offline.stderr
