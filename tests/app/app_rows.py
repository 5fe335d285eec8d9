"""Tiny training data the app tests share (a module, not conftest: `from conftest import` is ambiguous when pytest
runs several test folders at once)."""

from __future__ import annotations

import random

TINY = {"num_hidden_layers": 1}  # real bundled weights, one layer: fast enough to train in a test
WORDS = {
    "pos": ["great", "lovely", "superb", "wonderful", "fun", "brilliant"],
    "neg": ["awful", "boring", "terrible", "dull", "bad", "horrible"],
}
FEW_WORDS = {"pos": ["great", "lovely", "superb", "fun"], "neg": ["awful", "boring", "dull", "bad"]}


def sentiment_rows(n: int = 24, seed: int = 0, words: dict = WORDS) -> list[dict]:
    """n labeled sentences, pos and neg in turn, that a 1-layer model can learn a little in a few steps."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        rows.append(
            {"text": f"a {rng.choice(words[label])} film, really {rng.choice(words[label])}", "label": label}
        )
    return rows
