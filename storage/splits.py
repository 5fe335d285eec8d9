"""Split names as files spell them: train / dev / validation / eval / test, mapped onto the stored `SPLITS`.

The database keeps the three names of `storage.models.SPLITS` (``train``, ``eval``, ``test``). ``dev`` and
``validation`` are the same held-out set as ``eval`` (the set that picks the best weights), so they map to it;
keeping one stored name means no migration and every query (`training_plan`, the worker) stays as it is.
"""

from __future__ import annotations

# case-insensitive, surrounding spaces ignored; the value is the stored split
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "eval",
    "development": "eval",
    "val": "eval",
    "valid": "eval",
    "validation": "eval",
    "eval": "eval",
    "evaluation": "eval",
    "test": "test",
    "testing": "test",
}
# column names that hold a split, most specific first (compared case-insensitively)
SPLIT_COLUMNS = ["split", "subset", "partition", "set", "fold"]
# how the UI and messages name the stored splits: "eval" is what the issue and most datasets call dev
SPLIT_LABELS = {"train": "train", "eval": "dev (eval)", "test": "test"}
ACCEPTED = "train, dev / validation / eval, test"


def split_name(value) -> str | None:
    """The stored split for a cell or choice: None when blank; ValueError naming the accepted values.

    >>> split_name(" Validation "), split_name("TEST"), split_name("")
    ('eval', 'test', None)
    """
    if value is None or (isinstance(value, float) and value != value):  # NaN: an empty spreadsheet cell
        return None
    text = str(value).strip().lower()
    if not text:
        return None
    if text not in SPLIT_ALIASES:
        raise ValueError(f"split {str(value)!r} is not one of {ACCEPTED}")
    return SPLIT_ALIASES[text]


def guess_split_column(columns: list[str]) -> str | None:
    """The column that holds each row's split, by name; None when the file has none.

    >>> guess_split_column(["text", "label", "Split"])
    'Split'
    """
    lower = {c.strip().lower(): c for c in columns if c != "__row__"}
    return next((lower[n] for n in SPLIT_COLUMNS if n in lower), None)
