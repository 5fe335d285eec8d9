"""Weight averaging: the EMA's arithmetic, its swap in and out, and that training keeps the average, not the last step."""

from __future__ import annotations

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from finetuner import Callbacks, train
from finetuner.averaging import WeightAverage
from finetuner.modeling import load_model_folder


def test_the_average_follows_the_warm_up_rule_then_the_decay():
    p = torch.nn.Parameter(torch.zeros(3))
    average = WeightAverage([p], decay=0.5)
    expected = torch.zeros(3)
    for t, value in enumerate([1.0, 2.0, 4.0, 8.0], start=1):
        with torch.no_grad():
            p.fill_(value)
        average.update()
        decay = min(0.5, (1 + t) / (4 + t))  # t=1: 2/5, then 3/6 = 0.5: the cap from t=2
        expected = decay * expected + (1 - decay) * value
        assert average.shadow[0] == pytest.approx(expected)
    assert p[0].item() == 8.0  # the parameters themselves are never touched by update()


def test_applied_swaps_the_average_in_and_the_own_values_back_even_on_error():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    average = WeightAverage([p], decay=0.9)
    with torch.no_grad():
        p.add_(10.0)
    average.update()
    shadow = average.shadow[0].clone()
    assert not torch.equal(shadow, p.detach())
    with average.applied():
        assert torch.equal(p.detach(), shadow)
    assert p.tolist() == [11.0, 12.0]
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("eval failed")
    assert p.tolist() == [11.0, 12.0]


def test_state_round_trips():
    p = torch.nn.Parameter(torch.randn(4))
    a = WeightAverage([p], decay=0.99)
    for _ in range(3):
        with torch.no_grad():
            p.add_(1.0)
        a.update()
    b = WeightAverage([p], decay=0.99)
    b.load_state_dict(a.state_dict())
    assert b.updates == 3 and torch.equal(b.shadow[0], a.shadow[0])


def test_training_saves_the_average_and_leaves_the_trajectory_alone(make_examples, tiny_config):
    """The head saved by a frozen run equals an EMA of the head after every step, recomputed here independently."""
    data = make_examples("sequence", 16)
    seen: list[torch.Tensor] = []  # the head's weight before the first step, then after each step

    def head(optimizer) -> torch.Tensor:
        return [p for g in optimizer.param_groups for p in g["params"] if p.ndim == 2][0].detach().clone()

    def record_start(optimizer, *_):
        if not seen:
            seen.append(head(optimizer))

    def record(optimizer, *_):
        seen.append(head(optimizer))

    runs = {}
    for decay in (0.0, 0.9):
        losses = []
        seen.clear()
        handles = register_optimizer_step_pre_hook(record_start), register_optimizer_step_post_hook(record)
        try:
            config = tiny_config(
                mode="frozen",
                lr=1e-2,
                epochs=3,
                ema_decay=decay,
                folder=f"decay-{decay}",
            )
            out = train(config, data, callbacks=Callbacks(on_step=lambda s, acc=losses: acc.append(s.loss)))
        finally:
            for handle in handles:
                handle.remove()
        model, _, _ = load_model_folder(out.output_dir)
        runs[decay] = (losses, list(seen), model.classifier.weight.detach())

    (raw_losses, raw_steps, raw_saved), (ema_losses, ema_steps, ema_saved) = runs[0.0], runs[0.9]
    assert ema_losses == raw_losses  # averaging only follows the optimizer: the same steps, the same losses
    assert len(ema_steps) == len(raw_steps) == 7  # start + 2 steps a epoch x 3
    assert torch.equal(raw_saved, raw_steps[-1])  # off: the last step's head is saved
    expected = ema_steps[0]  # the average starts at the untrained head and follows every step
    for t, weights in enumerate(ema_steps[1:], start=1):
        decay = min(0.9, (1 + t) / (4 + t))
        expected = decay * expected + (1 - decay) * weights
    assert torch.allclose(ema_saved, expected, atol=1e-6)
    assert not torch.allclose(ema_saved, ema_steps[-1], atol=1e-4)
