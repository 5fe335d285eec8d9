"""The siamese pair encoding: [u, v, |u-v|, u*v] of each text's own vector, the head it needs, its saved folder in
Predictor and in a plain pipeline, and Auto picking it for a frozen head on pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from engine_toys import make_examples, run_python_outside_repo

from finetuner import TrainConfig, auto, train
from finetuner.__main__ import build_parser
from finetuner.hf_model import pool
from finetuner.modeling import build_model, resolve_model
from finetuner.predict import Predictor

QUESTION = "how was the film ?"


def _siamese_model(layers: int, feature_layers: int):
    return build_model(
        "pair",
        resolve_model(""),
        2,
        pooling="mean",
        pair_encoding="siamese",
        feature_layers=feature_layers,
        overrides={"num_hidden_layers": layers},
    ).eval()


@pytest.mark.parametrize(("layers", "feature_layers"), [(1, 1), (3, 2)])
def test_represent_is_u_v_their_distance_and_product(layers, feature_layers):
    """u, v: each text's pooled vector (n pooled layers side by side); the head reads 4 of them, so is 4*n*d x K."""
    model = _siamese_model(layers, feature_layers)
    d = model.encoder.config.hidden_size
    assert model.classifier.in_features == 4 * feature_layers * d
    a = torch.tensor([[101, 2204, 3185, 102, 0], [101, 2919, 102, 0, 0]])
    b = torch.tensor([[101, 2307, 102, 0], [101, 2009, 2001, 102]])
    mask_a, mask_b = (a != 0).long(), (b != 0).long()

    def by_hand(ids, mask):
        states = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        return torch.cat([pool(h, mask, "mean") for h in states[-feature_layers:]], dim=-1)

    with torch.no_grad():
        u, v = by_hand(a, mask_a), by_hand(b, mask_b)
        expected = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        got = model.represent(a, mask_a, pair_input_ids=b, pair_attention_mask=mask_b)
    assert got.shape == (2, 4 * feature_layers * d)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(
        got[:, 2 * u.shape[1] : 3 * u.shape[1]], torch.zeros_like(u)
    )  # |u-v| carries a, b


def test_a_cross_tokenized_pair_splits_back_into_the_two_texts():
    """pipeline() tokenizes a pair as [CLS] a [SEP] b [SEP]: the siamese head reads the same features from it."""
    model = _siamese_model(1, 1)
    a, b = torch.tensor([[101, 2204, 3185, 102]]), torch.tensor([[101, 2307, 102]])
    cross = torch.tensor([[101, 2204, 3185, 102, 2307, 102]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1]])
    with torch.no_grad():
        separate = model.represent(
            a, torch.ones_like(a), pair_input_ids=b, pair_attention_mask=torch.ones_like(b)
        )
        split = model.represent(cross, torch.ones_like(cross), token_type_ids=types)
    assert torch.allclose(separate, split, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A siamese pair folder per mode on the 1-layer model: frozen (the head on cached features) and full."""
    folders = {}
    data = make_examples("pair", 24)
    for mode, lr, epochs in [("frozen", 2e-2, 40), ("full", 5e-4, 6)]:
        config = TrainConfig(
            task="pair",
            output_dir=str(tmp_path_factory.mktemp(mode)),
            mode=mode,
            pair_encoding="siamese",
            lr=lr,
            epochs=epochs,
            batch_size=8,
            eval_split=0.0,
            seed=0,
            pooling="mean",
            model_overrides={"num_hidden_layers": 1},
        )
        folders[mode] = train(config, data, data).output_dir
    return folders


@pytest.mark.parametrize("mode", ["frozen", "full"])
def test_a_trained_siamese_folder_predicts_and_explains(trained, mode):
    folder = Path(trained[mode])
    meta = json.loads((folder / "finetuner.json").read_text())
    assert meta["pair_encoding"] == "siamese" and meta["config"]["pair_encoding"] == "siamese"
    assert json.loads((folder / "config.json").read_text())["pair_encoding"] == "siamese"
    assert "siamese encoding" in (folder / "README.md").read_text()
    p = Predictor.load(folder)
    d = p.model.encoder.config.hidden_size
    assert p.model.classifier.in_features == 4 * d  # 1 layer: feature_layers 1
    assert p.predict(QUESTION, "it was awful")["label"] == "no"
    assert p.predict(QUESTION, "it was superb")["label"] == "yes"
    out = p.explain(QUESTION, "yes", text_pair="it was good")
    assert out["representation_size"] == 4 * d and out["weight_shape"] == [4 * d, 2]
    assert "[u, v, |u - v|, u * v]" in out["representation"] and f"{d} numbers" in out["representation"]
    assert out["loss"] == pytest.approx(-math.log(out["probabilities"]["yes"]), rel=1e-5)


def test_a_plain_pipeline_gives_the_predictors_probabilities(trained):
    """pipeline() tokenizes the pair the cross way; the saved head splits it and must agree with Predictor."""
    pairs = [(QUESTION, "it was superb"), (QUESTION, "it was awful")]
    calls = "".join(
        f"results.append(pipe({{'text': {a!r}, 'text_pair': {b!r}}}, top_k=None))\n" for a, b in pairs
    )
    code = (
        "import json\nfrom transformers import pipeline\n"
        f"pipe = pipeline('text-classification', model={trained['frozen']!r}, trust_remote_code=True)\n"
        "results = []\n" + calls + "print(json.dumps(results))\n"
    )
    out = run_python_outside_repo(code)
    results = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("[[")))
    p = Predictor.load(trained["frozen"])
    for (a, b), scores in zip(pairs, results, strict=True):
        expected = p.predict(a, b)["probabilities"]
        assert {r["label"]: r["score"] for r in scores} == pytest.approx(expected, abs=1e-5)


# --- Auto ----------------------------------------------------------------------------------------------------------


def test_auto_reads_pairs_siamese_only_where_it_trains_a_frozen_head():
    small = auto.choose("pair", 64, {"yes": 32, "no": 32})
    assert small.mode == "frozen" and small.pair_encoding == "siamese" and "|u-v|" in small.reason
    big = auto.choose("pair", auto.FULL_FROM["cpu"], {"yes": 1_000, "no": 1_000})
    assert big.mode == "full" and big.pair_encoding == "cross" and "|u-v|" not in big.reason
    assert auto.choose("sequence", 64, {"a": 32, "b": 32}).pair_encoding is None
    hand = auto.choose("pair", 64, {"yes": 32, "no": 32}, pair_encoding="concat")
    assert hand.pair_encoding == "concat" and "|u-v|" not in hand.reason
    contrastive = auto.choose("pair", 64, {"yes": 32, "no": 32}, contrastive=True)
    assert contrastive.pair_encoding == "cross" and "contrastive" in contrastive.reason


@pytest.mark.parametrize(
    ("settings", "n_train", "expected"),
    [
        ({}, 64, "siamese"),  # Auto, frozen
        ({}, 2_000, "cross"),  # Auto, full
        ({"mode": "frozen"}, 64, "cross"),  # a hand-set mode keeps today's default
        ({"mode": "full"}, 64, "cross"),
        ({"mode": "top-2"}, 64, "cross"),
        ({"pair_encoding": "concat"}, 64, "concat"),  # hand-set wins
        ({"pair_encoding": "cross"}, 64, "cross"),
        ({"pair_encoding": "siamese"}, 5_000, "siamese"),
        ({"mode": "full", "pair_encoding": "siamese"}, 64, "siamese"),
        ({"contrastive_steps": 10}, 64, "cross"),  # contrastive tuning embeds a pair as one input
    ],
)
def test_the_config_resolves_the_pair_encoding(settings, n_train, expected):
    config = TrainConfig(task="pair", output_dir="x", **settings)
    counts = {"yes": n_train // 2, "no": n_train - n_train // 2}
    resolved = config.resolved(n_train, counts)
    assert resolved.pair_encoding == expected
    if config.mode == "auto":
        assert config.pair_encoding == settings.get("pair_encoding")  # None until the data is known
        assert ("set by hand: pair_encoding" in resolved.auto_choice) is ("pair_encoding" in settings)


def test_other_tasks_keep_cross_after_resolution():
    for task in ("sequence", "token"):
        assert (
            TrainConfig(task=task, output_dir="x").resolved(64, {"a": 32, "b": 32}).pair_encoding == "cross"
        )


@pytest.mark.parametrize("mode", ["auto", "frozen", "full"])
@pytest.mark.parametrize("encoding", ["siamese", "concat"])
def test_contrastive_tuning_refuses_separate_encodings(mode, encoding):
    with pytest.raises(ValueError, match=f"use pair_encoding 'cross', not '{encoding}'"):
        TrainConfig(task="pair", output_dir="x", mode=mode, pair_encoding=encoding, contrastive_steps=10)


def test_an_unknown_encoding_is_refused_and_old_values_load():
    with pytest.raises(ValueError, match="pair_encoding must be one of"):
        TrainConfig(task="pair", output_dir="x", pair_encoding="bi")
    old = TrainConfig.from_dict({"task": "pair", "output_dir": "x", "pair_encoding": "cross"})  # a saved job
    assert old.resolved(64, {"yes": 32, "no": 32}).pair_encoding == "cross"


def test_the_cli_offers_siamese_and_leaves_the_default_to_the_config():
    parser = build_parser()
    base = ["train", "--task", "pair", "--train", "x.csv", "--out", "model"]
    assert parser.parse_args(base).pair_encoding is None
    assert parser.parse_args([*base, "--pair-encoding", "siamese"]).pair_encoding == "siamese"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--pair-encoding", "bi"])


def test_a_small_pair_set_trains_siamese_through_auto(tiny_config):
    """Nothing set: Auto picks a frozen head and the siamese encoding, says so, and the folder records it."""
    data = make_examples("pair", 24)
    result = train(tiny_config("pair", mode="auto"), data, data)
    meta = json.loads(Path(result.output_dir, "finetuner.json").read_text())
    assert meta["pair_encoding"] == "siamese" and meta["config"]["mode"] == "frozen"
    assert "[u, v, |u-v|, u*v]" in meta["config"]["auto_choice"]
    assert result.metrics["accuracy"] == 1.0


# --- the Train tab's form, through the worker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form_value", "stored", "saved"), [("auto", None, "siamese"), ("cross", "cross", "cross")]
)
def test_the_train_forms_pair_encoding_reaches_the_saved_folder(
    sessions, data_dir, offline, form_value, stored, saved
):
    """ "auto" (the form's default) queues None, which the worker's run resolves; a saved "cross" still holds."""
    import worker
    from storage import repo
    from ui import train_jobs
    from ui.common import Ctx, Settings

    ctx = Ctx(
        Settings(data_dir=data_dir, model_overrides={"num_hidden_layers": 1}, start_worker=False), sessions
    )
    assert train_jobs.FORM_DEFAULTS["pair_encoding"] == "auto"
    with sessions() as s:
        ds = repo.import_examples(s, "pairs", "pair", make_examples("pair", 24), ["no", "yes"]).id
    values = {**train_jobs.FORM_DEFAULTS, "pair_encoding": form_value, "batch_size": 8}
    r = train_jobs.start_job(ctx, ds, *(values[f] for f in train_jobs.FORM_FIELDS))
    assert r["ok"], r["message"]
    with sessions() as s:
        assert repo.get_job(s, r["job_id"]).config["pair_encoding"] == stored
    worker.work(sessions, data_dir / "models", once=True)
    with sessions() as s:
        job = repo.get_job(s, r["job_id"])
        assert job.status == "completed", job.error
        meta = json.loads(Path(job.model_dir, "finetuner.json").read_text())
    assert meta["pair_encoding"] == saved
