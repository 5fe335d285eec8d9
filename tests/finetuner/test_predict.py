"""Saved model folders: our Predictor, and plain transformers pipelines without this project's code."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from engine_toys import make_examples, run_python_outside_repo

from finetuner import TrainConfig, train
from finetuner.predict import Predictor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small trained folder per kind: sequence, pair (cross and concat), token.

    Sequence and concat use 2 layers, so the frozen default (the pooled last 4 layers side by side, as many as the
    model has) saves a 2-layer feature head that Predictor and the pipeline must rebuild.
    """
    folders = {}
    two_layers = {"model_overrides": {"num_hidden_layers": 2}}
    for name, task, extra in [
        ("sequence", "sequence", two_layers),
        ("cross", "pair", {}),
        ("concat", "pair", {"pair_encoding": "concat", **two_layers}),
        ("token", "token", {}),
    ]:
        config = TrainConfig(
            task=task,
            output_dir=str(tmp_path_factory.mktemp(name)),
            mode="frozen",
            lr=2e-2,
            epochs=40,
            batch_size=8,
            eval_split=0.0,
            seed=0,
            pooling="mean",
            **{"model_overrides": {"num_hidden_layers": 1}, **extra},
        )
        data = make_examples(task, 24)
        folders[name] = train(config, data, data).output_dir
    return folders


def test_folder_records_task_labels_pooling_and_metrics(trained):
    meta = json.loads(Path(trained["sequence"], "finetuner.json").read_text())
    assert meta["task"] == "sequence" and meta["labels"] == ["neg", "pos"] and meta["pooling"] == "mean"
    assert meta["feature_layers"] == 2  # frozen default 4, clamped to the 2 layers this model has
    assert meta["metrics"]["accuracy"] == 1.0
    config = json.loads(Path(trained["sequence"], "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["feature_layers"] == 2
    # only the model is custom: config and tokenizer are the encoder's own, so AutoConfig/AutoTokenizer need no code
    assert config["auto_map"] == {
        "AutoModelForSequenceClassification": "modeling_finetuner.FinetunerForSequenceClassification"
    }
    assert config["model_type"] == "bert" and config["pooling"] == "mean"
    assert meta["train_examples"] == meta["eval_examples"] == 24  # the fixture evaluates on its training set


@pytest.mark.parametrize("kind", ["sequence", "concat", "token"])
def test_saved_folder_names_no_path_of_this_machine_and_no_offline_flag(trained, kind):
    from finetuner.modeling import resolve_model

    folder = Path(trained[kind])
    machine = [str(folder), str(folder.parent), resolve_model(""), str(ROOT), sys.prefix]
    texts = {f.name: f.read_text() for f in folder.iterdir() if f.suffix in {".json", ".md", ".py", ".txt"}}
    assert {"README.md", "config.json", "tokenizer_config.json", "finetuner.json"} <= texts.keys()
    for name, text in texts.items():
        assert not [p for p in machine if p in text], f"{name} names a path of this machine"
        assert "local_files_only" not in text and '"is_local"' not in text, name


def test_a_loaded_folder_saves_again_in_the_same_layout(trained, tmp_path):
    from finetuner import modeling

    p = Predictor.load(trained["concat"])
    modeling.save_model_folder(p.model, p.tokenizer, tmp_path, p.meta)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bert"
    again = Predictor.load(tmp_path).predict("how was the film ?", "it was superb")["probabilities"]
    assert again == pytest.approx(p.predict("how was the film ?", "it was superb")["probabilities"], abs=1e-6)


def test_predictor_loads_folders_saved_before_the_hub_layout(trained, tmp_path):
    """A folder in the old layout (the encoder's config nested in a 'finetuner' config) still loads and agrees."""
    import shutil

    from finetuner import hf_model, modeling

    new = Predictor.load(trained["sequence"])
    old = modeling.build_model(
        "sequence",
        modeling.resolve_model(""),
        2,
        pooling="mean",
        pair_encoding="cross",
        feature_layers=2,
        overrides={"num_hidden_layers": 2},
    )
    old.load_state_dict(new.model.state_dict())
    old.config.id2label, old.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    old.config.auto_map = {  # what save_model_folder wrote before
        "AutoConfig": "modeling_finetuner.FinetunerConfig",
        "AutoModelForSequenceClassification": "modeling_finetuner.FinetunerForSequenceClassification",
    }
    old.save_pretrained(tmp_path)
    new.tokenizer.save_pretrained(tmp_path)
    shutil.copyfile(hf_model.__file__, tmp_path / "modeling_finetuner.py")
    shutil.copyfile(Path(trained["sequence"], "finetuner.json"), tmp_path / "finetuner.json")
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "finetuner"
    text = "the film was wonderful"
    loaded = Predictor.load(tmp_path).predict(text)["probabilities"]
    assert loaded == pytest.approx(new.predict(text)["probabilities"], abs=1e-6)


def test_predictor_sequence_probabilities(trained):
    out = Predictor.load(trained["sequence"]).predict("the film was wonderful")
    assert out["label"] == "pos"
    assert math.isclose(sum(out["probabilities"].values()), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("kind", ["cross", "concat"])
def test_predictor_pairs(trained, kind):
    p = Predictor.load(trained[kind])
    assert p.predict("how was the film ?", "it was awful")["label"] == "no"
    assert p.predict("how was the film ?", "it was superb")["label"] == "yes"
    with pytest.raises(ValueError, match="pair"):
        p.predict("only one text")


def test_predictor_tokens_map_back_to_words_and_spans(trained):
    out = Predictor.load(trained["token"]).predict("we visited paris with alice")
    assert out["words"] == ["we", "visited", "paris", "with", "alice"]
    assert out["tags"] == ["O", "O", "B-LOC", "O", "B-PER"]
    spans = [(e["text"], e["type"], e["start"], e["end"]) for e in out["entities"]]
    assert spans == [("paris", "LOC", 11, 16), ("alice", "PER", 22, 27)]
    assert all(0 < e["score"] <= 1 for e in out["entities"])


def test_predictor_is_cached(trained):
    assert Predictor.load(trained["sequence"]) is Predictor.load(trained["sequence"])


def test_explain_is_the_worked_example_chain(trained):
    p = Predictor.load(trained["sequence"])
    ex = p.explain("the film was awful", label="pos")
    assert ex["representation_size"] == 768 and ex["weight_shape"] == [768, 2]  # 2 layers x d
    logits = list(ex["logits"].values())
    z = sum(math.exp(v) for v in logits)
    assert list(ex["probabilities"].values()) == pytest.approx([math.exp(v) / z for v in logits], rel=1e-5)
    assert ex["loss"] == pytest.approx(-math.log(ex["probabilities"]["pos"]), rel=1e-5)
    assert ex["predicted"] == "neg"
    concat = Predictor.load(trained["concat"]).explain("how was the film ?", "yes", text_pair="it was good")
    assert concat["representation_size"] == 1536  # concat(h(a), h(b)), each 2 layers x d
    token = Predictor.load(trained["token"]).explain("alice smith lives in paris", "B-PER", word=0)
    assert token["predicted"] == "B-PER"


@pytest.fixture(scope="module")
def plain_pipelines(trained):
    """Each saved folder in a plain transformers pipeline, all in ONE fresh interpreter (a start-up costs seconds).

    The result per kind is the pipeline's printed output, or the error it raised, so each test fails on its own.
    """
    calls = {
        "token": "[(r['word'], r['entity']) for r in "
        f"pipeline('token-classification', model={trained['token']!r})('we visited paris with alice')]",
        "sequence": f"pipeline('text-classification', model={trained['sequence']!r}, trust_remote_code=True)"
        "('the film was superb')",
        "concat": f"pipeline('text-classification', model={trained['concat']!r}, trust_remote_code=True)"
        "({'text': 'how was the film ?', 'text_pair': 'it was superb'})",
        # plain loads, no trust_remote_code: the tokenizer and the config are standard ones
        "tokenizer": f"type(AutoTokenizer.from_pretrained({trained['sequence']!r})).__name__",
        "config": f"AutoConfig.from_pretrained({trained['concat']!r}).model_type",
    }
    out = run_python_outside_repo(
        "import json\n"
        "from transformers import AutoConfig, AutoTokenizer, pipeline\n"
        "try:\n    import finetuner\n    raise SystemExit('finetuner importable')\nexcept ImportError:\n    pass\n"
        "results = {}\n"
        + "".join(
            f"try:\n    results[{kind!r}] = repr({call})\n"
            f"except Exception as e:\n    results[{kind!r}] = 'ERROR ' + repr(e)\n"
            for kind, call in calls.items()
        )
        + "print(json.dumps(results))\n"
    )
    results = next(json.loads(line) for line in reversed(out.splitlines()) if line.startswith("{"))
    results["prompted"] = "[y/N]" in out or "custom code" in out
    return results


def test_standard_token_head_loads_in_a_plain_pipeline(plain_pipelines):
    out = plain_pipelines["token"]
    assert "('paris', 'B-LOC')" in out and "('alice', 'B-PER')" in out, out


def test_plain_tokenizer_and_config_load_without_a_custom_code_prompt(plain_pipelines):
    assert plain_pipelines["tokenizer"] == "'BertTokenizer'", plain_pipelines["tokenizer"]
    assert plain_pipelines["config"] == "'bert'", plain_pipelines["config"]
    assert not plain_pipelines["prompted"]


@pytest.mark.parametrize("kind", ["sequence", "concat"])
def test_own_heads_load_with_trust_remote_code(plain_pipelines, kind):
    expected = "'label': 'pos'" if kind == "sequence" else "'label': 'yes'"
    assert expected in plain_pipelines[kind], plain_pipelines[kind]


def test_a_model_folder_missing_on_this_host_says_so(tmp_path):
    """Workers on several hosts share one database: a folder path another host wrote names the shared data dir."""
    import socket

    from finetuner import ModelLoadError

    with pytest.raises(ModelLoadError, match=f"not on this host \\({socket.gethostname()}\\).*same data dir"):
        Predictor.load(tmp_path / "models" / "7")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelLoadError, match="not a Finetuner model folder"):
        Predictor.load(tmp_path / "plain")
