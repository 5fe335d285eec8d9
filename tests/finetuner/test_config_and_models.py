"""TrainConfig validation, model resolution (bundled, local, hub offline), freezing, metrics."""

from __future__ import annotations

import time

import pytest
import torch

from finetuner import ModelLoadError, TrainConfig
from finetuner.config import LARGE_DATA_EVALS
from finetuner.metrics import classification_metrics, entity_metrics
from finetuner.modeling import build_model, model_pooling, resolve_model, set_trainable


def small_model(num_labels: int, layers: int = 1):
    """A sequence model on the bundled MiniLM cut to `layers` layers (CLS pooling, cross-encoder)."""
    return build_model(
        "sequence",
        resolve_model(""),
        num_labels,
        pooling="cls",
        pair_encoding="cross",
        overrides={"num_hidden_layers": layers},
    )


def test_mode_defaults_and_validation():
    assert (
        TrainConfig(task="sequence", output_dir="x", mode="frozen").epochs
        > TrainConfig(task="sequence", output_dir="x", mode="full").epochs
    )
    assert TrainConfig(task="token", output_dir="x").metric_for_best == "f1"
    assert TrainConfig(task="sequence", output_dir="x", mode="top-2").top_layers == 2
    for bad in [
        {"mode": "top-0"},
        {"mode": "half"},
        {"lr": -1.0},
        {"task": "regression"},
        {"warmup": 1.5},
        {"optimizer": "lion"},
        {"label_smoothing": 1.0},
        {"head_lr_scale": 0.0},
        {"mask_tokens": 1.0},
        {"mask_tokens": 0.1, "mode": "frozen"},  # cached features: the encoder never sees the masked input
    ]:
        with pytest.raises(ValueError):
            TrainConfig(**{"task": "sequence", "output_dir": "x", **bad})


def test_learning_rate_default_follows_mode_and_data_size():
    def lr(n_train: int, **settings) -> float:
        settings = {"mode": "full", **settings}  # the named modes' defaults; Auto's: test_auto.py
        return TrainConfig(task="sequence", output_dir="x", **settings).resolved(n_train=n_train).lr

    assert TrainConfig(task="sequence", output_dir="x").lr is None  # decided when the data size is known
    assert lr(3_668) == 1e-4 and lr(19_999) == 1e-4  # MRPC- and CoNLL-sized sets
    assert lr(20_000) == 5e-5 and lr(67_349, mode="top-2") == 5e-5  # SST-2-sized
    assert lr(67_349, mode="frozen") == 3e-3  # a head on cached features: the data size does not matter
    assert lr(67_349, lr=2e-4) == 2e-4  # a user's choice is kept


def test_weight_averaging_default_follows_mode_and_data_size():
    def ema(n_train: int, **settings) -> float:
        settings = {"mode": "full", **settings}
        return TrainConfig(task="sequence", output_dir="x", **settings).resolved(n_train=n_train).ema_decay

    assert TrainConfig(task="sequence", output_dir="x").ema_decay is None
    assert ema(3_668) == 0.0 and ema(19_999) == 0.0  # still learning through its steps: the average lags
    assert ema(20_000) == 0.9999 and ema(67_349, mode="top-2") == 0.9999
    assert ema(67_349, mode="frozen") == 0.0  # measured: no better kept figure there
    assert ema(100, ema_decay=0.99) == 0.99 and ema(67_349, ema_decay=0.0) == 0.0  # a user's choice is kept
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(task="sequence", output_dir="x", ema_decay=1.0)


def test_evaluations_per_epoch_default_follows_mode_and_data_size():
    def evals(n_train: int, **settings) -> int:
        config = TrainConfig(task="sequence", output_dir="x", **{"mode": "full", **settings})
        return config.resolved(n_train=n_train).evals_per_epoch

    assert LARGE_DATA_EVALS > 1
    assert evals(3_668) == 1 and evals(19_999) == 1  # an epoch end comes soon enough
    assert evals(20_000) == LARGE_DATA_EVALS and evals(67_349, mode="top-2") == LARGE_DATA_EVALS
    assert (
        evals(67_349, mode="frozen") == 1
    )  # epochs on cached features are nearly free: there are 30 of them
    assert (
        evals(67_349, evals_per_epoch=1) == 1 and evals(100, evals_per_epoch=3) == 3
    )  # a user's choice is kept
    with pytest.raises(ValueError, match="evals_per_epoch"):
        TrainConfig(task="sequence", output_dir="x", evals_per_epoch=0)


def test_feature_layers_defaults_by_mode_and_task():
    def layers(**settings) -> int:
        return TrainConfig(**{"task": "sequence", "output_dir": "x", **settings}).feature_layers

    assert layers(mode="frozen") == 4 and layers(mode="full") == 1 and layers(mode="frozen", task="pair") == 4
    assert layers(mode="frozen", task="token") == 1  # token models stay the standard HF token classifier
    with pytest.raises(ValueError, match="feature_layers"):
        TrainConfig(task="token", output_dir="x", feature_layers=2)
    with pytest.raises(ValueError, match="feature_layers"):
        TrainConfig(task="sequence", output_dir="x", feature_layers=0)


def test_config_round_trips_through_a_dict():
    config = TrainConfig(task="pair", output_dir="x", pair_encoding="concat", lr=1e-3)
    assert TrainConfig.from_dict({**config.to_dict(), "unknown_future_key": 1}) == config


def test_bundled_model_declares_mean_pooling():
    path = resolve_model("all-MiniLM-L6-v2")
    assert model_pooling(path) == "mean"
    assert resolve_model("") == path


def test_hub_id_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="offline.*local model folder"):
        resolve_model("someone/not-cached-model")
    assert time.perf_counter() - start < 10


def test_missing_local_folder_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_local_folder_loads(tmp_path):
    model = small_model(2, layers=1)
    model.encoder.save_pretrained(tmp_path)
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert model_pooling(str(tmp_path)) == "cls"  # no 1_Pooling folder: the reference's h_CLS


@pytest.mark.parametrize("mode,expect", [("frozen", "head"), ("top", "top"), ("full", "all")])
def test_set_trainable(mode, expect):
    model = small_model(3, layers=2)
    n = set_trainable(model, mode, 1 if mode == "top" else None)
    head = 384 * 3 + 3
    total = sum(p.numel() for p in model.parameters())
    if expect == "head":
        assert n == head
    elif expect == "all":
        assert n == total
    else:
        layer = sum(p.numel() for p in model.encoder.encoder.layer[1].parameters())
        assert n == head + layer
        assert not any(p.requires_grad for p in model.encoder.encoder.layer[0].parameters())


def test_top_n_beyond_the_model_is_refused():
    model = small_model(2, layers=1)
    with pytest.raises(ValueError, match="only 1 layers"):
        set_trainable(model, "top", 3)


def test_classification_metrics():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}


def test_entity_metrics_are_strict_iob2():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    # The person starts with I-: invalid in strict IOB2, so it is no entity at all (conlleval would count it).
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]
    m = entity_metrics(gold, pred)
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["per_class"]["LOC"]["f1"] == 1.0


def test_layer_lr_decay_scales_each_layer_down_from_the_head():
    from finetuner.training_parts import make_optimizer

    model = small_model(2, layers=2)
    config = TrainConfig(task="sequence", output_dir="x", lr=1e-3, layer_lr_decay=0.5)
    optimizer = make_optimizer(config, model, torch.device("cpu"))
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    layers = model.encoder.encoder.layer
    assert (
        lr_of[id(model.classifier.weight)] == 1e-3 == optimizer.param_groups[0]["lr"]
    )  # the top group first
    assert lr_of[id(layers[1].output.dense.weight)] == 5e-4
    assert lr_of[id(layers[0].output.dense.weight)] == 2.5e-4
    assert lr_of[id(model.encoder.embeddings.word_embeddings.weight)] == 1.25e-4
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert (
        id(layers[0].output.LayerNorm.weight) in no_decay
        and id(layers[0].output.dense.weight) not in no_decay
    )
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    flat = make_optimizer(TrainConfig(task="sequence", output_dir="x", lr=1e-3), model, torch.device("cpu"))
    assert {g["lr"] for g in flat.param_groups} == {1e-3} and len(flat.param_groups) == 2
    with pytest.raises(ValueError, match="layer_lr_decay"):
        TrainConfig(task="sequence", output_dir="x", layer_lr_decay=0.0)


def test_head_lr_scale_sets_the_heads_lr_apart_from_the_encoders():
    from finetuner.training_parts import make_optimizer

    model = small_model(2, layers=2)
    config = TrainConfig(task="sequence", output_dir="x", lr=1e-4, head_lr_scale=20.0)
    optimizer = make_optimizer(config, model, torch.device("cpu"))
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(model.classifier.weight)] == pytest.approx(2e-3) == lr_of[id(model.classifier.bias)]
    encoder_lrs = {lr_of[id(p)] for p in model.encoder.parameters()}
    assert encoder_lrs == {1e-4}
    # with layer-wise decay the head keeps its own scale and the top layer starts the decay from lr
    decayed = make_optimizer(
        TrainConfig(task="sequence", output_dir="x", lr=1e-4, head_lr_scale=20.0, layer_lr_decay=0.5),
        model,
        torch.device("cpu"),
    )
    lr_of = {id(p): g["lr"] for g in decayed.param_groups for p in g["params"]}
    assert lr_of[id(model.classifier.weight)] == pytest.approx(2e-3)
    assert lr_of[id(model.encoder.encoder.layer[1].output.dense.weight)] == pytest.approx(5e-5)
