"""The three task kinds: how examples become tensors, and how predictions become metrics.

Examples are plain dicts (what storage hands the worker and what the CLI reads from files):
- sequence: ``{"text": str, "label": str}``
- pair:     ``{"text": str, "text_pair": str, "label": str}``
- token:    ``{"tokens": [str, ...], "tags": [str, ...]}`` with IOB2 tags

Everything task-specific lives here, so the training loop has no ``if task == ...``. Every task reduces a batch to
*rows* of (logits, gold) where gold != -100: one row per example for sequence/pair, one row per word (its first
sub-word) for tokens. The loss is cross-entropy over rows: for tokens that is the mean over labeled tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finetuner import metrics as metric_fns

IGNORE = -100  # label index cross_entropy skips: special tokens and non-first sub-words
PAD_MULTIPLE = 8  # padded lengths in multiples of 8 keep tensor-core / SIMD kernels on their fast path


class DataValidationError(ValueError):
    """Examples the engine cannot train on, with the example's position (1-based) and field named."""


@dataclass
class Task:
    """Shared behaviour; subclasses say how to read labels and tokenize."""

    kind: str
    labels: list[str]  # the model's output classes: label names, or IOB2 tags for tokens

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def collate(self, items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
        """Pad a list of encoded items into a batch (dynamic padding: to the longest item, rounded up to 8)."""
        batch: dict[str, torch.Tensor] = {}
        for key, mask_key in (("input_ids", "attention_mask"), ("pair_input_ids", "pair_attention_mask")):
            if key not in items[0]:
                continue
            ids, mask = _pad([it[key] for it in items], pad_id)
            batch[key], batch[mask_key] = ids, mask
        if "token_type_ids" in items[0]:
            batch["token_type_ids"], _ = _pad([it["token_type_ids"] for it in items], 0)
        if "labels" in items[0]:
            if isinstance(items[0]["labels"], list):
                batch["labels"], _ = _pad(
                    [it["labels"] for it in items], IGNORE, width=batch["input_ids"].shape[1]
                )
            else:
                batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        return batch

    def check_labels(self, examples: list[dict], what: str) -> None:
        """Raise DataValidationError for a label outside the label set (1-based example numbers)."""
        known = set(self.labels)
        for i, ex in enumerate(examples, start=1):
            for label in self.gold_labels(ex):
                if label not in known:
                    raise DataValidationError(
                        f"{what} example {i}: label {label!r} is not in the label set {sorted(known)}"
                    )

    def gold_labels(self, example: dict) -> list[str]:
        return [str(example["label"])]


class SequenceTask(Task):
    text_fields = ("text",)

    def encode(
        self, examples: list[dict], tokenizer, max_length: int, with_labels: bool = True
    ) -> list[dict]:
        enc = tokenizer([ex["text"] for ex in examples], truncation=True, max_length=max_length)
        return [self._item(enc, i, ex, with_labels) for i, ex in enumerate(examples)]

    def _item(self, enc, i: int, ex: dict, with_labels: bool) -> dict:
        item = {"input_ids": enc["input_ids"][i]}
        if with_labels:
            item["labels"] = self.labels.index(str(ex["label"]))
        return item

    def metrics(self, pred_rows, gold_rows, examples, items) -> dict:
        return metric_fns.classification_metrics(gold_rows, pred_rows, self.labels)


class PairTask(SequenceTask):
    """Cross: one sequence ``[CLS] a [SEP] b [SEP]``. Concat: a and b tokenized separately (the reference's W_P)."""

    text_fields = ("text", "text_pair")

    def __init__(self, kind: str, labels: list[str], pair_encoding: str):
        super().__init__(kind, labels)
        self.pair_encoding = pair_encoding

    def encode(
        self, examples: list[dict], tokenizer, max_length: int, with_labels: bool = True
    ) -> list[dict]:
        first = [ex["text"] for ex in examples]
        second = [ex["text_pair"] for ex in examples]
        if self.pair_encoding == "cross":
            enc = tokenizer(first, second, truncation="longest_first", max_length=max_length)
            items = [self._item(enc, i, ex, with_labels) for i, ex in enumerate(examples)]
            for i, item in enumerate(items):
                item["token_type_ids"] = enc["token_type_ids"][i] if "token_type_ids" in enc else None
            if items and items[0]["token_type_ids"] is None:
                for item in items:
                    del item["token_type_ids"]
            return items
        enc_a = tokenizer(first, truncation=True, max_length=max_length)
        enc_b = tokenizer(second, truncation=True, max_length=max_length)
        items = [self._item(enc_a, i, ex, with_labels) for i, ex in enumerate(examples)]
        for i, item in enumerate(items):
            item["pair_input_ids"] = enc_b["input_ids"][i]
        return items


class TokenTask(Task):
    """Word-level IOB2 tagging; the label of a word sits on its first sub-word, the others get IGNORE."""

    text_fields = ("tokens",)

    def gold_labels(self, example: dict) -> list[str]:
        return list(example["tags"])

    def encode(
        self, examples: list[dict], tokenizer, max_length: int, with_labels: bool = True
    ) -> list[dict]:
        enc = tokenizer(
            [ex["tokens"] for ex in examples],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        tag_index = {tag: i for i, tag in enumerate(self.labels)}
        items = []
        for i, ex in enumerate(examples):
            word_ids = enc.word_ids(i)
            first_positions, words = first_subwords(word_ids)
            labels = [IGNORE] * len(word_ids)
            for pos, word in zip(first_positions, words, strict=True):
                labels[pos] = tag_index[ex["tags"][word]] if with_labels else 0
            # Without gold tags the first sub-words still carry a dummy 0, so rows mark the words to predict.
            items.append({"input_ids": enc["input_ids"][i], "labels": labels, "words": words})
        return items

    def metrics(self, pred_rows, gold_rows, examples, items) -> dict:
        true_seqs, pred_seqs = [], []
        offset = 0
        for ex, item in zip(examples, items, strict=True):
            n = len(item["words"])
            pred_seqs.append(
                words_to_tags(len(ex["tokens"]), item["words"], pred_rows[offset : offset + n], self.labels)
            )
            true_seqs.append(list(ex["tags"]))
            offset += n
        return metric_fns.entity_metrics(true_seqs, pred_seqs)


def first_subwords(word_ids: list[int | None]) -> tuple[list[int], list[int]]:
    """Positions of each word's first sub-word, and the word index at each: words cut off by truncation are absent."""
    positions, words, previous = [], [], None
    for pos, word in enumerate(word_ids):
        if word is not None and word != previous:
            positions.append(pos)
            words.append(word)
        previous = word
    return positions, words


def words_to_tags(n_words: int, words: list[int], predicted: list[int], tag_names: list[str]) -> list[str]:
    """Map first-sub-word predictions back to one tag per word; words the model never saw (truncated) get 'O'."""
    tags = ["O"] * n_words
    for word, tag_id in zip(words, predicted, strict=True):
        tags[word] = tag_names[tag_id]
    return tags


def entity_types_to_tags(types: list[str]) -> list[str]:
    """IOB2 tag set for entity types: O, then B-/I- for each type in the given order."""
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def make_task(
    kind: str, examples: list[dict], labels: list[str] | None = None, pair_encoding: str = "cross"
) -> Task:
    """Build the task for these training examples and check every example.

    Args:
        kind: "sequence", "pair" or "token".
        examples: training examples (dicts, see the module docstring).
        labels: fixed label order (entity types for token); None takes the sorted labels found in the examples.

    >>> make_task("sequence", [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]).labels
    ['neg', 'pos']
    """
    validate_examples(kind, examples, "training")
    if kind == "token":
        types = labels or sorted({t.split("-", 1)[1] for ex in examples for t in ex["tags"] if t != "O"})
        task: Task = TokenTask(kind, entity_types_to_tags(types))
    else:
        names = labels or sorted({str(ex["label"]) for ex in examples})
        task = PairTask(kind, names, pair_encoding) if kind == "pair" else SequenceTask(kind, names)
    task.check_labels(examples, "training")
    if kind != "token" and len({str(ex["label"]) for ex in examples}) < 2:
        raise DataValidationError("training data has only one label: a classifier needs at least two classes")
    return task


def validate_examples(kind: str, examples: list[dict], what: str) -> None:
    """Check the fields every example needs, naming the first bad example (1-based) and field."""
    if not examples:
        raise DataValidationError(f"{what} data is empty")
    needed = {
        "sequence": ("text", "label"),
        "pair": ("text", "text_pair", "label"),
        "token": ("tokens", "tags"),
    }[kind]
    for i, ex in enumerate(examples, start=1):
        for key in needed:
            value = ex.get(key)
            if value is None or (isinstance(value, str | list) and len(value) == 0):
                raise DataValidationError(f"{what} example {i}: field {key!r} is missing or empty")
        if kind == "token" and len(ex["tokens"]) != len(ex["tags"]):
            raise DataValidationError(
                f"{what} example {i}: {len(ex['tokens'])} tokens but {len(ex['tags'])} tags"
            )


def _pad(rows: list[list[int]], value: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(r) for r in rows)
    width = width or -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE
    out = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return out, mask


def task_from_meta(meta: dict) -> Task:
    """Rebuild the task of a saved model folder from its finetuner.json (labels are the model's output classes)."""
    kind, labels = meta["task"], meta["labels"]
    if kind == "token":
        return TokenTask(kind, labels)
    if kind == "pair":
        return PairTask(kind, labels, meta.get("pair_encoding") or "cross")
    return SequenceTask(kind, labels)
