"""Auto mode: its choices as plain functions of (size, balance, task, device), hand-set values winning, and a real
1-layer training run through it."""

from __future__ import annotations

import math

import pytest

from finetuner import TrainConfig, auto, train
from finetuner.training import class_weights


@pytest.mark.parametrize(
    ("n_train", "device", "mode"),
    [
        (16, "cpu", "frozen"),
        (500, "cpu", "frozen"),
        (auto.FULL_FROM["cpu"] - 1, "cpu", "frozen"),
        (auto.FULL_FROM["cpu"], "cpu", "full"),
        (67_349, "cpu", "full"),  # big data keeps today's recipe
        (67_349, "cuda", "full"),
        (16, "cuda", "frozen"),
    ],
)
@pytest.mark.parametrize("task", ["sequence", "pair"])
def test_the_method_follows_the_data_size(n_train, device, mode, task):
    assert auto.choose(task, n_train, {"a": n_train // 2, "b": n_train - n_train // 2}, device).mode == mode


@pytest.mark.parametrize(
    ("n_train", "mode", "lr"),
    [
        (10, "frozen", None),
        (auto.TOKEN_FULL_FROM - 1, "frozen", None),  # below the smallest size measured
        (auto.TOKEN_FULL_FROM, "full", auto.TOKEN_SMALL_LR),
        (1_999, "full", auto.TOKEN_SMALL_LR),
        (2_000, "full", None),  # from here today's recipe, its lr the mode's default
        (14_041, "full", None),
    ],
)
def test_token_tagging_fine_tunes_from_a_few_hundred_sentences(n_train, mode, lr):
    choice = auto.choose("token", n_train, {"O": 10 * n_train, "B-PER": n_train})
    # small sets fine-tune with each tag's loss weighted by its rarity (unweighted, LeNER-Br predicted O everywhere);
    # from 2,000 sentences today's unweighted recipe
    weighted = mode == "full" and n_train < 2_000
    assert (choice.mode, choice.lr, choice.class_weight) == (mode, lr, weighted)
    assert ("rarity" in choice.reason) is weighted
    assert ("sentences" in choice.reason) is (n_train < 2_000)
    config = TrainConfig(task="token", output_dir="x").resolved(n_train, n_eval=40)
    assert config.mode == mode and config.lr == (lr or (3e-3 if mode == "frozen" else 1e-4))
    if mode == "full":
        assert choice.epochs * math.ceil(n_train / 32) >= auto.FULL_MIN_STEPS


@pytest.mark.parametrize(
    ("n_train", "steps"),
    [(auto.TOKEN_FULL_FROM, auto.FULL_MIN_STEPS), (auto.TOKEN_MORE_STEPS_FROM - 1, auto.FULL_MIN_STEPS),
     (auto.TOKEN_MORE_STEPS_FROM, auto.TOKEN_MIN_STEPS), (1_999, auto.TOKEN_MIN_STEPS)],
)  # fmt: skip
def test_token_fine_tuning_takes_twice_the_steps_from_400_labeled_sentences(n_train, steps):
    """At least `steps` optimizer steps, and no more epochs than that needs."""
    choice = auto.choose("token", n_train, {"O": 10 * n_train, "B-PER": n_train})
    per_epoch = math.ceil(n_train / 32)
    assert choice.epochs * per_epoch >= steps and (choice.epochs - 1) * per_epoch < steps
    assert (f"at least {auto.TOKEN_MIN_STEPS} steps" in choice.reason) is (steps == auto.TOKEN_MIN_STEPS)
    hand = TrainConfig(task="token", output_dir="x", lr=5e-5).resolved(n_train, n_eval=40)
    assert hand.lr == 5e-5  # a hand-set lr wins


@pytest.mark.parametrize("n_train", [2, 16, 64, 500, 1_999, 2_000, 3_668, 67_349])
@pytest.mark.parametrize("batch_size", [8, 32])
def test_every_run_gets_enough_steps(n_train, batch_size):
    """3 optimizer steps is never a training run: the old full default gave 16 sentences exactly that."""
    choice = auto.choose("sequence", n_train, {"a": n_train}, "cpu", batch_size)
    steps = choice.epochs * math.ceil(n_train / batch_size)
    floor = auto.FROZEN_MIN_STEPS if choice.mode == "frozen" else auto.FULL_MIN_STEPS
    assert steps >= floor
    if choice.mode == "full" and n_train >= 20_000:
        assert choice.epochs == auto.FULL_EPOCHS  # the full-data recipe is unchanged


@pytest.mark.parametrize(
    ("counts", "weighted"),
    [
        ({"pos": 2070, "neg": 438}, True),  # ReLi
        ({"1": 8, "-1": 8}, False),
        ({"a": 30, "b": 29, "c": 31}, False),  # SST-2-like balance
        ({"a": 100, "b": 100, "c": 10}, True),  # one rare class among three
        ({"only": 12}, False),
    ],
)
def test_skewed_classes_get_a_weighted_loss(counts, weighted):
    choice = auto.choose("sequence", sum(counts.values()), counts)
    assert choice.class_weight is weighted
    assert ("class-weighted" in choice.reason) is weighted


@pytest.mark.parametrize(
    ("n_eval", "keep_best"), [(None, True), (2, False), (auto.MIN_EVAL_TO_SELECT - 1, False), (500, True)]
)
def test_a_best_is_picked_only_on_an_eval_set_big_enough(n_eval, keep_best):
    choice = auto.choose("sequence", 64, {"a": 32, "b": 32}, n_eval=n_eval)
    assert choice.keep_best is keep_best and ("too few to pick a best" in choice.reason) is not keep_best
    config = TrainConfig(task="sequence", output_dir="x").resolved(64, {"a": 32, "b": 32}, n_eval=n_eval)
    assert config.keep_best is keep_best
    assert TrainConfig(task="sequence", output_dir="x", mode="frozen").resolved(64, n_eval=2).keep_best


def test_token_tags_are_weighted_only_where_auto_fine_tunes_a_small_set():
    counts = {"O": 5000, "B-PER": 40, "I-PER": 20}
    assert auto.choose("token", auto.TOKEN_FULL_FROM - 1, counts).class_weight is False  # the frozen head
    assert auto.choose("token", 200, counts).class_weight is True
    assert auto.choose("token", 5_000, counts).class_weight is False
    hand = TrainConfig(task="token", output_dir="x", class_weight=False).resolved(200, counts, n_eval=20)
    assert (hand.mode, hand.class_weight) == ("full", False)  # a hand-set value wins


def test_label_counts_and_skew():
    examples = [{"text": "x", "label": lb} for lb in ["a", "a", "a", "b"]]
    assert auto.label_counts("sequence", examples) == {"a": 3, "b": 1}
    assert auto.label_counts("token", [{"tokens": ["A", "b"], "tags": ["B-X", "O"]}]) == {"B-X": 1, "O": 1}
    assert auto.skew({"a": 3, "b": 1}) == 3.0 and auto.skew({}) == 1.0


def test_class_weights_are_inverse_frequency_in_label_order():
    weights = class_weights(["neg", "pos"], {"pos": 300, "neg": 100})
    assert weights.tolist() == pytest.approx([2.0, 2 / 3])
    assert class_weights(["a", "b"], {"a": 5, "b": 5}).tolist() == [1.0, 1.0]


def test_config_resolves_auto_and_hand_set_values_win():
    config = TrainConfig(task="sequence", output_dir="x")
    assert config.mode == "auto" and config.epochs is None  # decided when the data is known
    small = config.resolved(n_train=16, label_counts={"a": 8, "b": 8})
    assert small.mode == "frozen" and small.epochs * math.ceil(16 / small.batch_size) >= auto.FROZEN_MIN_STEPS
    assert small.auto_choice.startswith("Auto: frozen") and small.class_weight is False
    big = config.resolved(n_train=67_349, label_counts={"a": 30_000, "b": 37_349})
    assert (big.mode, big.epochs, big.lr) == ("full", 3, 5e-5)  # today's full-data recipe
    hand = TrainConfig(task="sequence", output_dir="x", epochs=2, lr=0.01, class_weight=False)
    picked = hand.resolved(n_train=100, label_counts={"a": 90, "b": 10})
    assert (picked.epochs, picked.lr, picked.class_weight) == (2, 0.01, False)
    assert "set by hand: epochs, lr, class_weight" in picked.auto_choice
    # a named mode is not second-guessed, and has no class weighting unless asked for
    assert TrainConfig(task="sequence", output_dir="x", mode="full").resolved(16).epochs == 3
    assert TrainConfig(task="sequence", output_dir="x", mode="full").resolved(16).class_weight is False


def test_a_hand_set_fine_tuning_option_makes_auto_fine_tune():
    config = TrainConfig(task="sequence", output_dir="x", mask_tokens=0.1).resolved(16, {"a": 8, "b": 8})
    assert config.mode == "full" and "mask_tokens was set by hand" in config.auto_choice
    assert config.epochs * math.ceil(16 / config.batch_size) >= auto.FULL_MIN_STEPS


def test_token_class_weights_count_words_per_tag_and_train(tmp_path, make_examples):
    """The weights follow the tags' word counts (first sub-words, the rows the loss reads), and a weighted token run
    trains and saves."""
    examples = make_examples("token", n=24)
    counts = auto.label_counts("token", examples)
    labels = sorted(counts)
    weights = class_weights(labels, counts)
    assert weights[labels.index("O")] < weights[labels.index("I-PER")]  # O is the most frequent tag
    cfg = TrainConfig(task="token", output_dir=str(tmp_path / "m"), mode="full", epochs=1, class_weight=True,
                      model_overrides={"num_hidden_layers": 1})  # fmt: skip
    assert train(cfg, examples).output_dir


@pytest.mark.parametrize(
    ("mode", "measured", "source"),
    [
        ("frozen", None, "conservative"),
        ("full", None, "conservative"),
        ("full", {"full": 80.0}, "past jobs"),
        ("frozen", {"full": 80.0}, "conservative"),  # a full job's speed says nothing of an encoder pass
    ],
)
def test_estimated_time_names_its_source(mode, measured, source):
    seconds, said = auto.estimate_seconds(mode, 3, 900, 100, "cpu", measured)
    assert seconds > auto.STARTUP_S and source in said
    if measured and mode == "full":
        slower = auto.estimate_seconds(mode, 3, 900, 100, "cpu", {"full": 40.0})[0]
        assert slower > seconds


def test_a_one_layer_model_trains_through_auto(tiny_config, make_examples):
    """Nothing set: Auto picks the method and enough steps, records why, and the toy set is learnt."""
    data = make_examples("sequence", n=24)
    skewed = data + [ex for ex in data if ex["label"] == data[0]["label"]] * 3
    config = tiny_config(mode="auto")  # batch 8: 8 steps an epoch
    result = train(config, skewed, data)
    saved = result_config(result.output_dir)
    assert saved["mode"] == "frozen" and saved["class_weight"] is True
    assert "class-weighted" in saved["auto_choice"]
    assert result.epochs_run == saved["epochs"] >= auto.FROZEN_MIN_STEPS / math.ceil(len(skewed) / 8)
    assert saved["keep_best"] is False and result.metrics == result.history[-1]  # 24 eval examples: the last
    assert result.metrics["accuracy"] == 1.0
    meta = saved_meta(result.output_dir)  # too few to select, so the 24 eval examples trained the head too
    assert (
        saved["refit"] is True and meta["refit"] is True and result.refit_examples == len(skewed) + len(data)
    )
    assert meta["train_examples"] == len(skewed) + len(data) and meta["eval_examples"] == len(data)
    assert "trains again on all" in saved["auto_choice"]


@pytest.mark.parametrize(("n_eval", "refit"), [(None, False), (0, False), (2, True), (500, False)])
def test_auto_refits_a_frozen_head_when_the_eval_set_is_too_small_to_select(n_eval, refit):
    choice = auto.choose("sequence", 64, {"a": 32, "b": 32}, n_eval=n_eval)
    assert choice.refit is refit and ("trains again" in choice.reason) is refit
    config = TrainConfig(task="sequence", output_dir="x").resolved(64, {"a": 32, "b": 32}, n_eval=n_eval)
    assert config.refit is refit
    # fine-tuning the encoder twice is not a refit; a hand-set value wins where Auto picks frozen
    assert auto.choose("sequence", 5_000, {"a": 2_500, "b": 2_500}, n_eval=2).refit is False
    hand = TrainConfig(task="sequence", output_dir="x", refit=False).resolved(64, n_eval=2)
    assert hand.refit is False and hand.mode == "frozen"
    assert TrainConfig(task="sequence", output_dir="x", mode="frozen").resolved(64, n_eval=2).refit is False


def test_refit_is_refused_outside_frozen_mode():
    with pytest.raises(ValueError, match="refit"):
        TrainConfig(task="sequence", output_dir="x", mode="full", refit=True)


def test_a_refit_head_is_the_head_trained_on_train_and_eval_together(tiny_config, make_examples):
    """The refit restarts the head from its first weights and trains it on the eval rows too: with dropout off it
    ends where a run on the concatenated data ends, while the metrics stay the held-out run's."""
    import torch
    from safetensors.torch import load_file

    train_part, eval_part = make_examples("sequence", n=24), make_examples("sequence", n=8, seed=1)
    same = dict(mode="frozen", epochs=3, classifier_dropout=0.0, class_weight=False)
    refit = train(tiny_config(folder="refit", refit=True, **same), train_part, eval_part)
    held_out = train(tiny_config(folder="held", **same), train_part, eval_part)
    together = train(tiny_config(folder="together", **same), train_part + eval_part)

    def head(result):
        weights = load_file(f"{result.output_dir}/model.safetensors")
        return weights["classifier.weight"], weights["classifier.bias"]

    for a, b in zip(head(refit), head(together), strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(head(refit)[0], head(held_out)[0])
    assert refit.metrics == held_out.metrics == refit.history[-1]  # scored before the eval rows trained it
    assert saved_meta(refit.output_dir)["train_examples"] == 32


def saved_meta(folder: str) -> dict:
    import json
    from pathlib import Path

    from finetuner.modeling import META_FILE

    return json.loads(Path(folder, META_FILE).read_text())


def result_config(folder: str) -> dict:
    import json
    from pathlib import Path

    from finetuner.modeling import META_FILE

    return json.loads(Path(folder, META_FILE).read_text())["config"]


def test_the_cli_sets_refit_by_hand_or_leaves_it_to_auto():
    from finetuner.__main__ import build_parser

    base = ["train", "--task", "sequence", "--train", "t.csv", "--out", "o"]
    assert build_parser().parse_args(base).refit is None
    assert build_parser().parse_args([*base, "--refit", "off"]).refit is False
    assert build_parser().parse_args([*base, "--refit", "on"]).refit is True


@pytest.mark.parametrize(
    ("task", "n_train", "english", "problem", "hand_set", "steps"),
    [
        (
            "sequence",
            14,
            True,
            "single",
            False,
            None,
        ),  # 8 a class: below CONTRASTIVE_FROM (not measured to pay)
        ("sequence", 50, True, "single", False, 79),  # 25 a class: one pass over its 1,250 pairs
        ("sequence", 115, True, "single", False, 80),  # 64 a class: the budget's steps at SST-2's length
        ("sequence", 461, True, "single", False, 80),  # 256 a class: the same budget, whatever the size
        ("sequence", 115, False, "single", False, None),  # texts that do not look English
        ("sequence", auto.CONTRASTIVE_UNTIL + 1, True, "single", False, None),  # above the sizes measured
        ("sequence", 115, True, "multilabel", False, None),  # the pairs need one label an example
        ("pair", 115, True, "single", False, None),  # measured on sequence sets only
        ("token", 20, True, "single", False, None),
        ("sequence", 115, True, "single", True, None),  # set by hand (on or off): Auto leaves it alone
    ],
)
def test_auto_tunes_the_encoder_contrastively_on_small_english_sequence_sets(
    task, n_train, english, problem, hand_set, steps
):
    half = n_train // 2
    counts = {"pos": half, "neg": n_train - half}
    choice = auto.choose(
        task, n_train, counts, problem=problem, english=english, tokens=35.0, contrastive=hand_set
    )
    assert choice.contrastive_steps == steps
    assert (choice.feature_layers == 1) == bool(steps)  # the head reads the layer the step tunes
    assert ("SetFit-style" in choice.reason) == bool(steps)


def test_the_contrastive_step_fits_a_time_budget():
    counts = {"pos": 64, "neg": 64}
    short, long_ = (auto.contrastive_steps_for(counts, t) for t in (35.0, 120.0))
    assert short == 80 and 10 <= long_ < short  # longer texts: fewer steps for the same seconds
    assert auto.contrastive_steps_for(counts, 1_000.0) == 0  # too few steps to move the encoder: none
    assert auto.contrastive_steps_for(counts, 35.0, "cuda") == auto.CONTRASTIVE_MAX_STEPS
    assert auto.contrastive_steps_for({"pos": 30}, 35.0) == 0  # one class: nothing to contrast
    seconds = [
        auto.estimate_seconds("frozen", 300, 115, 13, tokens=35.0, contrastive_steps=n)[0] for n in (0, 80)
    ]
    assert seconds[1] - seconds[0] == pytest.approx(80 * 32 * 35.0 / auto.CPU_SPEED["full"])
    assert seconds[1] - seconds[0] <= auto.CONTRASTIVE_BUDGET_S
