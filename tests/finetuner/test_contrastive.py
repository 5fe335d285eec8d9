"""The SetFit-style contrastive step: pair sampling, the cosine loss, tuning a 1-layer encoder, the train() hook."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from finetuner import TrainConfig, contrastive, modeling
from finetuner import train as ft_train
from finetuner.predict import Predictor
from finetuner.tasks import make_task
from finetuner.training import CHECKPOINT_DIR, Callbacks


def test_pairs_cover_every_distinct_pair_and_balance_by_oversampling():
    labels = ["a", "a", "a", "b", "b"]  # 4 same-label pairs, 6 different-label pairs
    pairs = contrastive.sample_pairs(labels, seed=0)
    assert len(pairs) == 12  # the 6 negatives, and the 4 positives cycled up to 6
    assert [p.target for p in pairs] == [1.0, 0.0] * 6  # interleaved: any prefix is balanced
    assert all(p.first < p.second for p in pairs)  # no example against itself, each pair once a way
    for p in pairs:
        assert p.target == (1.0 if labels[p.first] == labels[p.second] else 0.0)
    unique = {(p.first, p.second) for p in pairs}
    assert len(unique) == 10  # every one of C(5, 2) pairs is drawn
    assert (
        max(Counter((p.first, p.second) for p in pairs).values()) == 2
    )  # only positives repeat, at most twice


def test_a_cap_keeps_the_prefix_balanced_and_the_seed_sets_the_order():
    labels = ["x"] * 6 + ["y"] * 6 + ["z"] * 6
    capped = contrastive.sample_pairs(labels, max_pairs=9, seed=3)
    assert len(capped) == 9
    assert Counter(p.target for p in capped) == {1.0: 5, 0.0: 4}
    assert capped == contrastive.sample_pairs(labels, max_pairs=9, seed=3)
    assert capped != contrastive.sample_pairs(labels, max_pairs=9, seed=4)


@pytest.mark.parametrize("labels", [["a", "a", "a"], ["a", "b", "c"], []])
def test_no_pairs_without_both_a_positive_and_a_negative(labels):
    assert contrastive.sample_pairs(labels) == []


def test_the_loss_is_the_mean_squared_gap_between_cosine_and_target():
    first = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    second = torch.tensor([[5.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [3.0, 4.0]])
    targets = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # cosines 1, 0, -1, 1: squared gaps 0, 0, 1, 1
    assert contrastive.cosine_loss(first, second, targets).item() == pytest.approx(0.5)
    assert contrastive.cosine_loss(first[:2], second[:2], targets[:2]).item() == pytest.approx(0.0)


def _tiny_model_and_items(make_examples, n=24):
    path = modeling.resolve_model("")
    tokenizer = modeling.load_tokenizer(path)
    examples = make_examples("sequence", n=n)
    task = make_task("sequence", examples, None, "cross")
    model = modeling.build_model(
        "sequence", path, task.num_labels, pooling="mean", pair_encoding="cross",
        overrides={"num_hidden_layers": 1},
    )  # fmt: skip
    modeling.set_trainable(model, "frozen", None)
    return model, task, task.encode(examples, tokenizer, 32), [ex["label"] for ex in examples], tokenizer


def _pair_loss(model, task, items, labels, pad_id) -> float:
    """The cosine loss over all the data's pairs, dropout off."""
    pairs = contrastive.sample_pairs(labels, seed=0)
    encoder = modeling.encoder_of(model).eval()
    with torch.no_grad():
        emb = contrastive.embed(encoder, task.collate(items, pad_id))
    first = emb[[p.first for p in pairs]]
    second = emb[[p.second for p in pairs]]
    return contrastive.cosine_loss(first, second, torch.tensor([p.target for p in pairs])).item()


def test_tuning_moves_the_encoder_towards_the_labels_and_leaves_the_head_alone(make_examples):
    model, task, items, labels, tokenizer = _tiny_model_and_items(make_examples)
    pad = tokenizer.pad_token_id
    encoder_before = {n: t.clone() for n, t in modeling.encoder_of(model).state_dict().items()}
    head_before = modeling.head_of(model).weight.clone()
    loss_before = _pair_loss(model, task, items, labels, pad)
    fractions = []
    report = contrastive.tune_encoder(
        model, task, items, labels, 12, pad_id=pad, device=torch.device("cpu"), on_progress=fractions.append
    )
    # 24 examples: 2 x C(12, 2) = 132 same-label pairs, 144 different -> 288 pairs, 18 steps; capped at 12
    assert report["steps"] == 12 and report["pairs"] == 12 * contrastive.PAIRS_PER_STEP
    assert fractions[-1] == 1.0 and len(fractions) == 12
    changed = [
        n for n, t in modeling.encoder_of(model).state_dict().items() if not torch.equal(t, encoder_before[n])
    ]
    assert any("layer.0" in n for n in changed)
    assert torch.equal(modeling.head_of(model).weight, head_before)
    assert not any(p.requires_grad for p in modeling.encoder_of(model).parameters())  # frozen again
    assert _pair_loss(model, task, items, labels, pad) < loss_before


def test_a_stop_request_ends_the_tuning_before_a_step(make_examples):
    model, task, items, labels, tokenizer = _tiny_model_and_items(make_examples, n=8)
    report = contrastive.tune_encoder(
        model, task, items, labels, 5, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
        should_stop=lambda: True,
    )  # fmt: skip
    assert report["cancelled"] and report["steps"] == 0


def test_a_frozen_run_with_the_step_trains_saves_the_tuned_encoder_and_predicts(tiny_config, make_examples):
    data = make_examples("sequence", n=24)
    phases = []
    config = tiny_config(mode="frozen", epochs=20, contrastive_steps=6, lr=1e-2)
    result = ft_train(config, data, data, Callbacks(on_phase=lambda name, _f: phases.append(name)))
    assert "contrastive tuning" in phases
    assert phases.index("contrastive tuning") < phases.index("encoding features")
    assert result.metrics["accuracy"] == 1.0
    assert not (Path(config.output_dir) / CHECKPOINT_DIR).exists()  # the tuned encoder's copy went with it

    plain = modeling.build_model(
        "sequence", modeling.resolve_model(""), 2, pooling="mean", pair_encoding="cross",
        overrides={"num_hidden_layers": 1},
    )  # fmt: skip
    saved, _, _ = modeling.load_model_folder(result.output_dir)
    name = "encoder.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(saved.state_dict()[name], plain.state_dict()[name])  # the tuned encoder was saved

    predictor = Predictor.load(result.output_dir)
    assert predictor.predict("the film was superb")["label"] == "pos"
    assert predictor.predict("the film was dreadful")["label"] == "neg"


def test_a_resume_reloads_the_tuned_encoder_instead_of_tuning_again(tmp_path, make_examples):
    model, task, items, labels, tokenizer = _tiny_model_and_items(make_examples, n=8)
    encoder = modeling.encoder_of(model)
    tuned = {n: t + 0.5 for n, t in encoder.state_dict().items()}
    torch.save(tuned, tmp_path / contrastive.TUNED_ENCODER_FILE)
    config = TrainConfig(
        task="sequence", output_dir=str(tmp_path), mode="frozen", contrastive_steps=3, resume=True
    )

    def no_tuning():
        raise AssertionError("a resume must not tune again")

    callbacks = SimpleNamespace(on_phase=lambda *_: None, should_stop=no_tuning)
    done = contrastive.prepare_encoder(
        model, task, items, [{"label": lb} for lb in labels], config,
        pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), ckpt_dir=tmp_path, callbacks=callbacks,
    )  # fmt: skip
    assert done
    assert all(torch.equal(t, tuned[n]) for n, t in encoder.state_dict().items())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"task": "token"}, "sequence and pair tasks with single-label classification"),
        ({"task": "sequence", "problem": "multilabel"}, "problem 'multilabel'"),
        ({"task": "pair", "problem": "regression"}, "problem 'regression'"),
        ({"task": "pair", "pair_encoding": "concat"}, "pair_encoding 'cross'"),
        ({"task": "sequence", "contrastive_steps": 0}, "at least 1"),
    ],
)
def test_settings_the_step_cannot_serve_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(output_dir="unused", **{"contrastive_steps": 10, **settings})


def test_off_by_default():
    assert TrainConfig(task="sequence", output_dir="unused").contrastive_steps is None


def test_the_cli_flag_sets_the_step_and_a_bad_value_is_a_clear_error(tmp_path, tiny_model_dir, capsys):
    from cli_support import run_in_process, write_csv
    from engine_toys import make_examples

    from finetuner.modeling import META_FILE

    data = write_csv(tmp_path / "train.csv", make_examples("sequence", 16))
    common = [
        "train",
        "--task",
        "sequence",
        "--train",
        str(data),
        "--eval",
        str(data),
        "--model",
        tiny_model_dir,
    ]
    code, _, _ = run_in_process(
        capsys,
        *common,
        "--mode",
        "frozen",
        "--epochs",
        "2",
        "--contrastive-steps",
        "2",
        "--out",
        str(tmp_path / "m"),
    )
    assert code == 0
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert meta["config"]["contrastive_steps"] == 2
    code, _, err = run_in_process(capsys, *common, "--contrastive-steps", "0", "--out", str(tmp_path / "bad"))
    assert code != 0 and "contrastive_steps must be at least 1" in err
