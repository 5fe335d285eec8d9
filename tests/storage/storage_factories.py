"""Test-data factories shared by the storage tests (a plain module: tests import it, fixtures wrap it)."""

from __future__ import annotations

from storage import repo

WORDS = ["good", "bad", "film", "plot", "actor", "slow", "fun", "long"]


def example_dict(kind: str, i: int, labeled: bool = True) -> dict:
    """The i-th synthetic example of a task kind, in the engine's format (label None when unlabeled)."""
    label = ("pos", "neg")[i % 2] if labeled else None
    if kind == "token":
        tags = ["B-PER", "O", "B-ORG", "I-ORG"] if i % 2 else ["O", "B-ORG", "O", "O"]
        return {"tokens": [f"w{i}", WORDS[i % 8], "Acme", "Corp"], "tags": tags if labeled else None}
    ex = {"text": f"{WORDS[i % 8]} example {i}", "label": label}
    if kind == "pair":
        ex["text_pair"] = f"pair {i}"
    return ex


def make_dataset(session, kind: str, n: int = 8, labeled: bool = True, name: str | None = None):
    """Create a dataset of `kind` with n examples alternating between two labels (pos/neg, or PER/ORG)."""
    labels = ["PER", "ORG"] if kind == "token" else ["pos", "neg"]
    ds = repo.create_dataset(session, name or f"{kind}-{n}", kind, labels)
    repo.add_examples(
        session, ds.id, [example_dict(kind, i, labeled) for i in range(n)], source_file="factory"
    )
    return ds
