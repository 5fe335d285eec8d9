"""Real training on a 1-layer copy of the bundled model: every task kind and mode learns a separable toy set."""

from __future__ import annotations

import pytest
import torch

from finetuner import Callbacks, TrainConfig, train
from finetuner.batches import EncoderBatches
from finetuner.predict import Predictor
from finetuner.training import TrainingError, checkpoint_info

# Per mode: enough steps and a large enough step for a 1-layer encoder to separate the toy sets.
MODE_SETTINGS = {
    "full": {"lr": 5e-4, "epochs": 6},
    "top-1": {"lr": 5e-4, "epochs": 6},
    "frozen": {"lr": 2e-2, "epochs": 40},
}


@pytest.mark.parametrize("mode", ["full", "top-1", "frozen"])
@pytest.mark.parametrize("task", ["sequence", "pair", "token"])
def test_training_learns_a_separable_set(make_examples, tiny_config, task, mode):
    data = make_examples(task, n=24)
    losses = []
    config = tiny_config(task, mode=mode, pooling="mean", **MODE_SETTINGS[mode])
    result = train(config, data, data, Callbacks(on_step=lambda s: losses.append(s.loss)))
    assert losses[-1] < losses[0]
    metric = "f1" if task == "token" else "accuracy"
    assert result.metrics[metric] == 1.0, result.metrics
    assert result.output_dir and result.epochs_run == config.epochs


def test_concat_pair_learns(make_examples, tiny_config):
    data = make_examples("pair", n=24)
    result = train(tiny_config("pair", pair_encoding="concat", lr=5e-4, epochs=6), data, data)
    assert result.metrics["accuracy"] == 1.0


def test_frozen_mode_runs_the_encoder_once_per_example(make_examples, tiny_config, monkeypatch):
    seen = []
    original = EncoderBatches.eval_batches

    def counting(self):
        for idx, batch in original(self):
            seen.extend(idx)
            yield idx, batch

    monkeypatch.setattr(EncoderBatches, "eval_batches", counting)
    train_data, eval_data = make_examples("sequence", 16), make_examples("sequence", 8, seed=1)
    train(tiny_config(mode="frozen", epochs=5), train_data, eval_data)
    assert len(seen) == len(train_data) + len(eval_data)  # not 5x: the epochs read the cache


def test_full_mode_trains_the_encoder_frozen_does_not(make_examples, tiny_config):
    import torch

    from finetuner.modeling import load_model_folder

    data = make_examples("sequence", 16)
    base = None
    for mode in ("frozen", "full"):
        out = train(tiny_config(mode=mode, epochs=1, folder=mode), data).output_dir
        model, _, _ = load_model_folder(out)
        weight = model.encoder.embeddings.word_embeddings.weight
        if base is None:
            base = weight.clone()
        else:
            assert not torch.equal(base, weight)  # full mode moved the embeddings
    from finetuner.modeling import build_model, resolve_model

    fresh = build_model(
        "sequence",
        resolve_model(""),
        2,
        pooling="mean",
        pair_encoding="cross",
        overrides={"num_hidden_layers": 1},
    )
    assert torch.equal(fresh.encoder.embeddings.word_embeddings.weight, base)  # frozen kept them


def test_resume_continues_where_it_stopped(make_examples, tiny_config):
    data = make_examples("sequence", 16)
    full_run = train(tiny_config(epochs=3, folder="ref"), data, data)

    steps = []
    config = tiny_config(epochs=3)

    def stop_in_epoch_2() -> bool:
        return bool(steps) and steps[-1].epoch == 2

    cancelled = train(config, data, data, Callbacks(on_step=steps.append, should_stop=stop_in_epoch_2))
    assert cancelled.cancelled and cancelled.output_dir is None

    resumed_steps = []
    resumed = train(
        TrainConfig(**{**config.to_dict(), "resume": True}),
        data,
        data,
        Callbacks(on_step=resumed_steps.append),
    )
    assert resumed_steps[0].step == 3  # epoch 1 (2 steps) came from the checkpoint
    assert resumed.epochs_run == 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    # Same seed, same data order per epoch, restored RNG: the resumed run ends where the uninterrupted one did.
    assert resumed.metrics["loss"] == pytest.approx(full_run.metrics["loss"], rel=1e-4)


@pytest.mark.parametrize(("every_s", "written"), [(0.0, [1, 2, 3, 4]), (3600.0, [1])])
def test_checkpoints_follow_the_clock_after_the_first_epoch(
    make_examples, tiny_config, monkeypatch, every_s, written
):
    """Every epoch when each takes the interval; with an hour's interval only the first (a resume needs one)."""
    from finetuner import checkpoints, training

    saved = []
    real_save = training.save_checkpoint
    monkeypatch.setattr(checkpoints, "CHECKPOINT_EVERY_S", every_s)
    monkeypatch.setattr(
        training, "save_checkpoint", lambda d, state: (saved.append(state["epoch"]), real_save(d, state))
    )
    result = train(tiny_config(mode="frozen", epochs=4), make_examples("sequence", 16))
    assert saved == written and result.epochs_run == 4 and result.output_dir


def test_resume_refuses_a_checkpoint_of_another_head_shape(make_examples, tiny_config):
    """A frozen run checkpointed with 1-layer features cannot resume as a 2-layer feature head: a clear error."""
    data = make_examples("sequence", 16)
    config = tiny_config(mode="frozen", epochs=3, feature_layers=1, model_overrides={"num_hidden_layers": 2})
    cancelled = train(
        config, data, data, Callbacks(should_stop=lambda: bool(checkpoint_info(config.output_dir)))
    )
    assert cancelled.cancelled and checkpoint_info(config.output_dir)
    changed = TrainConfig(**{**config.to_dict(), "feature_layers": 2, "resume": True})
    with pytest.raises(
        TrainingError, match=r"cannot resume: .*weight has shape \[2, 384\].*\[2, 768\].*feature_layers"
    ):
        train(changed, data, data)
    assert checkpoint_info(config.output_dir)  # the checkpoint is kept for a resume with the old settings


def test_early_stopping_stops(make_examples, tiny_config):
    data = make_examples("sequence", 16)
    # A tiny learning rate never improves accuracy after the first epoch: patience 1 stops at epoch 2.
    result = train(tiny_config(mode="frozen", lr=1e-9, epochs=10, early_stopping_patience=1), data, data)
    assert result.stopped_early and result.epochs_run == 2


def _scripted_accuracies(monkeypatch, accuracies: list[float]) -> list[dict]:
    """Make the engine's evaluations report these accuracies in turn; returns the weights seen at each one."""
    from finetuner import training

    scores, weights, real = iter(accuracies), [], training.evaluate

    def scripted(source, task, examples, items):
        weights.append({n: t.detach().clone() for n, t in source.trainable.state_dict().items()})
        return {**real(source, task, examples, items), "accuracy": next(scores)}

    monkeypatch.setattr(training, "evaluate", scripted)
    return weights


def test_evaluations_inside_an_epoch_can_be_the_kept_weights(make_examples, tiny_config, monkeypatch):
    from finetuner.modeling import load_model_folder

    data = make_examples("sequence", 16)  # batch 8: 2 steps an epoch
    seen = _scripted_accuracies(monkeypatch, [0.5, 0.6, 0.9, 0.7])
    result = train(tiny_config(epochs=2, evals_per_epoch=2, lr=1e-3), data, data)
    assert [(h["epoch"], h["step"]) for h in result.history] == [(0.5, 1), (1, 2), (1.5, 3), (2, 4)]
    assert result.best_epoch == 1.5 and result.metrics["accuracy"] == 0.9
    saved = load_model_folder(result.output_dir)[0].state_dict()
    kept, last = seen[2], seen[3]
    # the weights scored half-way through epoch 2, not the last ones
    assert all(torch.equal(saved[n], t) for n, t in kept.items())
    assert not all(torch.equal(saved[n], t) for n, t in last.items())


def test_early_stopping_counts_epochs_in_which_no_evaluation_improved(
    make_examples, tiny_config, monkeypatch
):
    data = make_examples("sequence", 16)
    # epoch 1: 0.5, 0.6; epoch 2 improves half-way (0.7) then drops; epoch 3 does not improve: stop after 3.
    _scripted_accuracies(monkeypatch, [0.5, 0.6, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6])
    result = train(tiny_config(epochs=5, evals_per_epoch=2, early_stopping_patience=1), data, data)
    assert result.stopped_early and result.epochs_run == 3 and len(result.history) == 6


def test_deterministic_on_cpu(make_examples, tiny_config):
    data = make_examples("sequence", 16)
    a = train(tiny_config(epochs=1, folder="a"), data, data)
    b = train(tiny_config(epochs=1, folder="b"), data, data)
    assert a.metrics["loss"] == b.metrics["loss"]


@pytest.mark.parametrize("optimizer,schedule", [("adam", "cosine"), ("sgd", "constant")])
def test_other_optimizers_and_schedules_learn(make_examples, tiny_config, optimizer, schedule):
    data = make_examples("sequence", 16)
    lr = 5e-2 if optimizer == "sgd" else 2e-2
    result = train(
        tiny_config(mode="frozen", optimizer=optimizer, schedule=schedule, lr=lr, epochs=40), data, data
    )
    assert result.metrics["accuracy"] == 1.0


def test_eval_split_holds_out_examples(make_examples, tiny_config):
    data = make_examples("sequence", 20)
    result = train(tiny_config(mode="frozen", epochs=1, eval_split=0.2), data)
    assert sum(c["support"] for c in result.metrics["per_class"].values()) == 4


def test_a_tie_on_the_metric_keeps_the_epoch_with_the_lower_eval_loss(make_examples, tiny_config):
    data = make_examples("sequence", 16)
    result = train(tiny_config(mode="frozen", lr=2e-2, epochs=30), data, data)
    accuracies = [h["accuracy"] for h in result.history]
    assert accuracies.count(1.0) > 1  # several epochs tie on accuracy...
    losses = {h["epoch"]: h["loss"] for h in result.history if h["accuracy"] == 1.0}
    # ...and the lowest loss among them is kept (to 4 decimals: smaller changes are noise, see training_parts.eval_rank)
    assert round(losses[result.best_epoch], 4) == round(min(losses.values()), 4)
    assert result.best_epoch > accuracies.index(1.0) + 1


def test_label_smoothing_caps_the_confidence_training_aims_for(make_examples, tiny_config):
    data = make_examples("sequence", 16)
    confidence = {}
    for smoothing in (0.0, 0.8):
        config = tiny_config(
            mode="frozen",
            lr=2e-2,
            epochs=40,
            label_smoothing=smoothing,
            folder=f"smoothing-{smoothing}",
        )
        predictor = Predictor(train(config, data, data).output_dir)
        predictions = predictor.predict_many([e["text"] for e in data])
        confidence[smoothing] = sum(max(p["probabilities"].values()) for p in predictions) / len(data)
    # With 2 labels and smoothing 0.8 the loss is lowest where the gold label gets 1 - 0.8 + 0.8 / 2 = 0.6 (measured:
    # 0.67 on average, against 0.99 unsmoothed).
    assert confidence[0.8] < 0.75 and confidence[0.0] > 0.9, confidence


def test_token_masking_hides_text_tokens_only_and_replays_with_the_seed():
    from finetuner.batches import TokenMasking

    cls, sep, pad, mask = 101, 102, 0, 103
    ids = torch.tensor([[cls] + list(range(1000, 1030)) + [sep, pad, pad]] * 200)
    batch = {"input_ids": ids, "pair_input_ids": ids.clone(), "labels": torch.zeros(200)}
    masking = TokenMasking(0.25, mask, (cls, sep, pad, mask))
    out = masking(dict(batch), torch.Generator().manual_seed(0))
    for key in ("input_ids", "pair_input_ids"):
        hit = out[key] == mask
        assert not hit[:, [0, 31, 32, 33]].any()  # [CLS], [SEP] and padding are never masked
        assert 0.23 < hit[:, 1:31].float().mean() < 0.27  # about the asked fraction of the text
    again = masking(dict(batch), torch.Generator().manual_seed(0))
    assert torch.equal(out["input_ids"], again["input_ids"])  # a resumed epoch replays its masks
    assert not torch.equal(out["input_ids"], out["pair_input_ids"])  # each text draws its own


def test_mask_tokens_reaches_training_batches_not_evaluation(make_examples, tiny_config, monkeypatch):
    from finetuner.modeling import load_tokenizer, resolve_model

    mask_id = load_tokenizer(resolve_model("")).mask_token_id
    masked_in = {True: 0, False: 0}  # training mode -> batches holding a mask token
    original = EncoderBatches.scores

    def spying(self, batch):
        masked_in[self.model.training] += int((batch["input_ids"] == mask_id).any())
        return original(self, batch)

    monkeypatch.setattr(EncoderBatches, "scores", spying)
    data = make_examples("sequence", 16)
    train(tiny_config(epochs=2, mask_tokens=0.3), data, data)
    assert masked_in[True] > 0 and masked_in[False] == 0


def test_the_reported_lr_is_the_set_lr_not_the_heads(make_examples, tiny_config):
    seen = []
    data = make_examples("sequence", 16)
    config = tiny_config(epochs=1, lr=1e-3, head_lr_scale=20.0, schedule="constant", warmup=0.0)
    train(config, data, data, Callbacks(on_step=lambda info: seen.append(info.lr)))
    assert seen and all(lr == pytest.approx(1e-3) for lr in seen)  # the head trains at 2e-2 meanwhile
