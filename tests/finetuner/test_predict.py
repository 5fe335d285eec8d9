"""Saved model folders: our Predictor, and plain transformers pipelines without this project's code."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from engine_toys import make_examples

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
    assert config["auto_map"]["AutoModelForSequenceClassification"].startswith("modeling_finetuner.")


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


def _run_python(code: str) -> str:
    """Run code in a fresh interpreter that cannot import this project (cwd and sys.path outside the repo)."""
    guard = (
        f"import sys; sys.path = [p for p in sys.path if p and not (p.startswith({str(ROOT)!r}) "
        "and 'site-packages' not in p)]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", guard + code],
        capture_output=True,
        text=True,
        cwd="/",
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


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
    }
    out = _run_python(
        "import json\n"
        "from transformers import pipeline\n"
        "try:\n    import finetuner\n    raise SystemExit('finetuner importable')\nexcept ImportError:\n    pass\n"
        "results = {}\n"
        + "".join(
            f"try:\n    results[{kind!r}] = repr({call})\n"
            f"except Exception as e:\n    results[{kind!r}] = 'ERROR ' + repr(e)\n"
            for kind, call in calls.items()
        )
        + "print(json.dumps(results))\n"
    )
    return json.loads(out.strip().splitlines()[-1])


def test_standard_token_head_loads_in_a_plain_pipeline(plain_pipelines):
    out = plain_pipelines["token"]
    assert "('paris', 'B-LOC')" in out and "('alice', 'B-PER')" in out, out


@pytest.mark.parametrize("kind", ["sequence", "concat"])
def test_own_heads_load_with_trust_remote_code(plain_pipelines, kind):
    expected = "'label': 'pos'" if kind == "sequence" else "'label': 'yes'"
    assert expected in plain_pipelines[kind], plain_pipelines[kind]
