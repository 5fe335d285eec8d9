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


def _tiny_model_and_items(make_examples, n=24, layers=1):
    path = modeling.resolve_model("")
    tokenizer = modeling.load_tokenizer(path)
    examples = make_examples("sequence", n=n)
    task = make_task("sequence", examples, None, "cross")
    model = modeling.build_model(
        "sequence", path, task.num_labels, pooling="mean", pair_encoding="cross",
        overrides={"num_hidden_layers": layers},
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


def test_tuning_only_the_top_layers_leaves_the_embeddings_and_the_layers_below_as_they_were(
    make_examples, monkeypatch
):
    model, task, items, labels, tokenizer = _tiny_model_and_items(make_examples, layers=2)
    encoder = modeling.encoder_of(model)
    before = {n: t.clone() for n, t in encoder.state_dict().items()}
    monkeypatch.setattr(contrastive, "TUNED_LAYERS", 1)
    contrastive.tune_encoder(
        model, task, items, labels, 3, pad_id=tokenizer.pad_token_id, device=torch.device("cpu")
    )
    changed = {n for n, t in encoder.state_dict().items() if not torch.equal(t, before[n])}
    assert changed and all(".layer.1." in n for n in changed)  # the top layer moved, nothing else
    assert not any(p.requires_grad for p in encoder.parameters())  # frozen again


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
        ({"task": "sequence", "contrastive_steps": -1}, "at least 1"),
    ],
)
def test_settings_the_step_cannot_serve_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(output_dir="unused", **{"contrastive_steps": 10, **settings})


def test_auto_decides_by_default_and_zero_turns_it_off():
    assert TrainConfig(task="sequence", output_dir="unused").contrastive_steps is None  # None: Auto decides
    assert (
        TrainConfig(task="token", output_dir="unused", contrastive_steps=0).contrastive_steps == 0
    )  # off: any task
    counts = {"pos": 32, "neg": 32}
    picked = TrainConfig(task="sequence", output_dir="unused").resolved(64, counts, english=True, tokens=35.0)
    assert (
        picked.contrastive_steps == 80 and picked.feature_layers == 1 and "SetFit-style" in picked.auto_choice
    )
    off = TrainConfig(task="sequence", output_dir="unused", contrastive_steps=0)
    off = off.resolved(64, counts, english=True, tokens=35.0)
    assert off.contrastive_steps == 0 and "set by hand: contrastive_steps" in off.auto_choice
    assert "SetFit-style" not in off.auto_choice and off.feature_layers == 4  # Auto's usual head
    frozen = TrainConfig(task="sequence", output_dir="unused", mode="frozen").resolved(64, counts)
    assert frozen.contrastive_steps is None  # a mode set by hand runs without it unless it is set too


@pytest.mark.parametrize(
    "labels", [["a"] * 7 + ["b"] * 7, ["a"] * 30 + ["b"] * 5, ["a"] * 4 + ["b"] * 9 + ["c"] * 13, ["a", "b"]]
)
def test_auto_counts_the_steps_the_pair_sampler_gives(labels):
    from finetuner import auto

    expected = contrastive.natural_steps(len(contrastive.sample_pairs(labels)))
    assert auto.contrastive_pair_steps(dict(Counter(labels))) == expected


def test_auto_runs_the_step_on_english_texts_and_skips_it_on_portuguese(tiny_config, make_examples):
    english = make_examples("sequence", n=50)
    portuguese = [
        {"text": f"a avaliação {i} não é boa, é péssima" if i % 2 else f"a atuação {i} é ótima e emocionante",
         "label": "neg" if i % 2 else "pos"}
        for i in range(50)
    ]  # fmt: skip
    ran = {}
    for name, data in (("english", english), ("portuguese", portuguese)):
        phases = []
        config = tiny_config(mode="auto")
        result = ft_train(
            config, data, None, Callbacks(on_phase=lambda p, _f, phases=phases: phases.append(p))
        )
        meta = json.loads((Path(result.output_dir) / modeling.META_FILE).read_text())["config"]
        ran[name] = ("contrastive tuning" in phases, meta["contrastive_steps"], meta["feature_layers"])
    # 25 examples a class (no eval split): 600 same-label and 625 different-label pairs, 2 x 625 / 16 = 79 steps,
    # well within the time budget for 8-token sentences
    assert ran == {"english": (True, 79, 1), "portuguese": (False, None, 4)}


def test_the_cli_flag_sets_the_step_and_a_bad_value_is_a_clear_error(tmp_path, tiny_model_dir, capsys):
    from cli_support import run_in_process, toy_train_args

    from finetuner.modeling import META_FILE

    common = toy_train_args(tmp_path, tiny_model_dir)
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
    code, _, _ = run_in_process(capsys, *common, "--contrastive-steps", "0", "--out", str(tmp_path / "off"))
    assert code == 0  # 0: off
    code, _, err = run_in_process(
        capsys, *common, "--contrastive-steps", "-2", "--out", str(tmp_path / "bad")
    )
    assert code != 0 and "contrastive_steps must be at least 1" in err


def test_pairs_are_grouped_by_length_into_steps_without_changing_which_are_drawn():
    labels = ["a", "b"] * 40
    lengths = [5 + (i * 37) % 60 for i in range(len(labels))]
    pairs = contrastive.sample_pairs(labels, seed=1)
    bucketed = contrastive.length_bucketed(pairs, lengths, seed=1)
    assert Counter(bucketed) == Counter(pairs)  # the same pairs, as many times each

    def padded(order):  # what the steps cost: each pads its 32 texts to the longest
        steps = [
            order[i : i + contrastive.PAIRS_PER_STEP]
            for i in range(0, len(order), contrastive.PAIRS_PER_STEP)
        ]
        return sum(len(s) * 2 * max(max(lengths[p.first], lengths[p.second]) for p in s) for s in steps)

    assert padded(bucketed) < 0.8 * padded(pairs)
    assert (
        bucketed
        == contrastive.length_bucketed(pairs, lengths, seed=1)
        != contrastive.length_bucketed(pairs, lengths, seed=2)
    )
