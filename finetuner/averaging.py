"""A moving average of the trainable weights: what is evaluated, kept and saved.

Why: the weights after any one step carry that step's noise; an average over the recent steps sits nearer the middle
of the region the optimizer is moving through and scores better on held-out data (Polyak averaging; BENCHMARKS.md,
"Weight averaging", measures it on SST-2 with the pair of curves from one run). Training itself is untouched: the
optimizer keeps stepping the raw weights, the average only follows them.

The decay at step t is ``min(decay, (1 + t) / (4 + t))``: the new weights count ``3 / (4 + t)``, so until the cap
step s weighs in proportion to about s squared (polynomial-decay averaging, Shamir & Zhang 2013): the last fifth of
the steps so far holds half the weight, the random head of step 1 soon none, and a long run at most about
``1 / (1 - decay)`` steps. It was TensorFlow's warm-up ``(1 + t) / (10 + t)`` first (the last fourteenth holding half
the weight); on SST-2 the longer span scored the same or better at 13 of 15 epoch ends over five runs, each pair on
one run (BENCHMARKS.md, "Weight averaging: a longer tail").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

SPAN = 4  # the new weights count (SPAN - 1) / (SPAN + t) at step t: a larger SPAN, a shorter tail


class WeightAverage:
    """``average.update()`` after each optimizer step; ``with average.applied(): ...`` to evaluate or save it.

    Args:
        params: the trained parameters (the tensors the optimizer steps, updated in place).
        decay: the cap on the decay (0.9999: a long run averages about its last 10,000 steps).
    """

    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.params, self.decay, self.updates = params, decay, 0
        self.targets = [
            p.detach() for p in params
        ]  # views of the same storage, made once: update() runs every step
        self.shadow = [p.clone() for p in self.targets]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (SPAN + self.updates))
        torch._foreach_lerp_(self.shadow, self.targets, 1.0 - decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold the average inside the block and their own values again after it."""
        with torch.no_grad():
            own = [p.clone() for p in self.targets]
            torch._foreach_copy_(self.targets, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.targets, own)

    def state_dict(self) -> dict:
        return {"shadow": [t.to("cpu", copy=True) for t in self.shadow], "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.shadow, [t.to(self.shadow[0].device) for t in state["shadow"]])
        self.updates = state["updates"]
