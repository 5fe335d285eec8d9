"""Benchmark data: SST-2, MRPC and CoNLL-2003 read from ../shared/data into Finetuner's example dicts.

The data stays where it is (never copied into the repo). Set FINETUNER_DATA to another folder holding the same
layout (sst2/, mrpc/, conll2003/), e.g. on a rented GPU machine.
"""

from __future__ import annotations

import csv
import os
import random
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = (REPO.parent / "shared" / "data", REPO / "shared" / "data", Path("/work/shared/data"))


def data_dir() -> Path:
    """FINETUNER_DATA if set, else the first of ../shared/data, shared/data, /work/shared/data that exists."""
    if os.environ.get("FINETUNER_DATA"):
        return Path(os.environ["FINETUNER_DATA"])
    for path in _CANDIDATES:
        if (path / "sst2").is_dir():
            return path
    raise FileNotFoundError(
        f"benchmark data not found in {[str(p) for p in _CANDIDATES]}; set FINETUNER_DATA"
    )


def _rows(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    # Quoting off: SST-2 and MRPC hold literal, unbalanced '"' characters (see each SOURCE.md).
    with open(path, encoding=encoding, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def load_sst2(split: str) -> list[dict]:
    """split: "train" or "dev". -> [{"text", "label"}] with labels "0" (negative) / "1" (positive)."""
    return [
        {"text": r["sentence"].strip(), "label": r["label"]}
        for r in _rows(data_dir() / "sst2" / f"{split}.tsv")
    ]


def load_mrpc(split: str) -> list[dict]:
    """split: "train", "dev" or "test". -> [{"text", "text_pair", "label"}], label "1" = paraphrase."""
    rows = _rows(data_dir() / "mrpc" / f"{split}.tsv", encoding="utf-8-sig")  # the files start with a BOM
    return [{"text": r["#1 String"], "text_pair": r["#2 String"], "label": r["Quality"]} for r in rows]


def _read_conll(path) -> list[dict]:
    """Word-per-line files, tag last, blank lines (and -DOCSTART- lines) between sentences -> [{"tokens", "tags"}]."""
    sentences, tokens, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    sentences.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
                continue
            tokens.append(parts[0])
            tags.append(parts[-1])
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags})
    return sentences


def load_conll(split: str) -> list[dict]:
    """split: "train", "valid" or "test". -> [{"tokens", "tags"}] (IOB2, -DOCSTART- skipped)."""
    return _read_conll(data_dir() / "conll2003" / f"{split}.txt")


def subset(examples: list[dict], n: int | None, seed: int = 0) -> list[dict]:
    """A seeded random sample of n examples, stratified by label where there is one; None or n >= len: all.

    Order is shuffled; the same (data, n, seed) always gives the same sample.
    """
    if n is None or n >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    if "label" not in examples[0]:
        return rng.sample(examples, n)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for ex in examples:
        by_label[str(ex["label"])].append(ex)
    picked: list[dict] = []
    labels = sorted(by_label)
    for i, label in enumerate(labels):
        group = by_label[label]
        # proportional share; the last label takes the remainder so the total is exactly n
        k = n - len(picked) if i == len(labels) - 1 else round(n * len(group) / len(examples))
        picked += rng.sample(group, min(k, len(group)))
    rng.shuffle(picked)
    return picked


def load_reli(split: str) -> list[dict]:
    """split: "train" or "test". -> [{"text", "label"}], labels "1" / "-1" (Portuguese book reviews, 82% "1")."""
    with open(data_dir() / "reli_sentiment" / f"{split}.csv", encoding="utf-8", newline="") as f:
        return [{"text": r["text"].strip(), "label": r["label"]} for r in csv.DictReader(f)]


def load_assin(split: str) -> list[dict]:
    """split: "train" or "test" (pt-BR). -> [{"text", "text_pair", "label"}], labels None / Entailment / Paraphrase."""
    rows = _rows(data_dir() / "assin" / f"ptbr_{split}.tsv")
    return [{"text": r["premise"], "text_pair": r["hypothesis"], "label": r["entailment"]} for r in rows]


def load_lener(split: str) -> list[dict]:
    """split: "train", "dev" or "test". -> [{"tokens", "tags"}] (2-column IOB2, blank lines between sentences)."""
    return _read_conll(data_dir() / "lener_br" / f"{split}.conll")


def per_class(examples: list[dict], k: int, seed: int) -> list[dict]:
    """k examples of every label (all of a label that has fewer), seeded and shuffled: the few-shot subsets."""
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for ex in examples:
        by_label[str(ex["label"])].append(ex)
    picked = []
    for label in sorted(by_label):
        picked += rng.sample(by_label[label], min(k, len(by_label[label])))
    rng.shuffle(picked)
    return picked


LOADERS = {
    "sst2": load_sst2,
    "mrpc": load_mrpc,
    "conll": load_conll,
    "reli": load_reli,
    "assin": load_assin,
    "lener": load_lener,
}
