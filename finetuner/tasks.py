"""The three task kinds: how examples become tensors, and how predictions become metrics.

Examples are plain dicts (what storage hands the worker and what the CLI reads from files):
- sequence: ``{"text": str, "label": str}``
- pair:     ``{"text": str, "text_pair": str, "label": str}``
- token:    ``{"tokens": [str, ...], "tags": [str, ...]}`` with IOB2 tags
Sequence and pair tasks also take the other problems (finetuner/problems.py): ``"label"`` is a list of label names
for "multilabel" (``[]``: none applies) and a number for "regression".

Everything task-specific lives here, so the training loop has no ``if task == ...``. Every task reduces a batch to
*rows* of (logits, gold): one row per example for sequence/pair, one row per word (its first sub-word) for tokens,
where gold != -100. The task's problem says what gold is (a class index, a multi-hot vector, a score) and which loss
applies; for tokens the cross-entropy over rows is the mean over labeled tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from finetuner import metrics as metric_fns
from finetuner.config import SEPARATE_ENCODINGS
from finetuner.problems import (  # noqa: F401 - IGNORE and DataValidationError are imported from here too
    IGNORE,
    DataValidationError,
    Problem,
    Regression,
    problem_class,
    problem_from_meta,
)

PAD_MULTIPLE = 8  # padded lengths in multiples of 8 keep tensor-core / SIMD kernels on their fast path


def two_inputs(pair_encoding: str | None) -> bool:
    """Whether a pair model with this encoding takes its two texts as two inputs (concat, siamese), not one (cross).

    >>> two_inputs("siamese"), two_inputs("cross"), two_inputs(None)
    (True, False, False)
    """
    return pair_encoding in SEPARATE_ENCODINGS


@dataclass
class Task:
    """Shared behaviour; subclasses say how to read labels and tokenize."""

    kind: str
    labels: list[str]  # the model's outputs: label names, IOB2 tags for tokens, ["score"] for regression
    problem: Problem = field(default_factory=Problem)  # single label, multi-label or regression

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
            batch["labels"] = self.collate_labels([it["labels"] for it in items], batch["input_ids"].shape[1])
        return batch

    def collate_labels(self, targets: list, width: int) -> torch.Tensor:
        """One example's target per row: [B] class indices or scores, or [B, K] multi-hot (the problem's)."""
        return self.problem.collate(targets)

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
        return self.problem.label_names(example["label"])


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
            item["labels"] = self.problem.target(ex["label"], self.labels)
        return item

    def metrics(self, pred_rows, gold_rows, examples, items) -> dict:
        return self.problem.metrics(pred_rows, gold_rows, self.labels)


class PairTask(SequenceTask):
    """Cross: one sequence ``[CLS] a [SEP] b [SEP]``. Concat (the reference's W_P) and siamese: a and b tokenized
    separately, each encoded on its own."""

    text_fields = ("text", "text_pair")

    def __init__(self, kind: str, labels: list[str], pair_encoding: str, problem: Problem | None = None):
        super().__init__(kind, labels, problem or Problem())
        self.pair_encoding = pair_encoding

    def encode(
        self, examples: list[dict], tokenizer, max_length: int, with_labels: bool = True
    ) -> list[dict]:
        first = [ex["text"] for ex in examples]
        second = [ex["text_pair"] for ex in examples]
        if not two_inputs(self.pair_encoding):
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

    def collate_labels(self, targets: list, width: int) -> torch.Tensor:
        """Per-position tag indices, padded with IGNORE to the batch's width."""
        return _pad(targets, IGNORE, width=width)[0]

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
    kind: str,
    examples: list[dict],
    labels: list[str] | None = None,
    pair_encoding: str = "cross",
    problem: str = "single",
) -> Task:
    """Build the task for these training examples and check every example.

    Args:
        kind: "sequence", "pair" or "token".
        examples: training examples (dicts, see the module docstring).
        labels: fixed label order (entity types for token); None takes the sorted labels found in the examples
            (for multilabel their sorted union; regression has the one output "score").
        pair_encoding: "cross", "concat" or "siamese" (pair only).
        problem: "single", "multilabel" or "regression" (sequence and pair; token is always single).

    >>> make_task("sequence", [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]).labels
    ['neg', 'pos']
    >>> make_task("sequence", [{"text": "a", "label": 1}, {"text": "b", "label": "2.5"}], problem="regression").labels
    ['score']
    """
    if kind == "token" and problem != "single":
        raise DataValidationError(f"a token task tags one label per word: problem {problem!r} does not apply")
    validate_examples(kind, examples, "training", problem)
    if kind == "token":
        types = labels or sorted({t.split("-", 1)[1] for ex in examples for t in ex["tags"] if t != "O"})
        task: Task = TokenTask(kind, entity_types_to_tags(types))
        task.check_labels(examples, "training")
        return task
    cls = problem_class(problem)
    solver = cls.from_examples(examples)
    task = PairTask(kind, [], pair_encoding, solver) if kind == "pair" else SequenceTask(kind, [], solver)
    if labels is not None and cls is not Regression:
        task.labels = list(labels)
        task.check_labels(examples, "training")
        solver.label_set(examples)  # still refuses data the problem cannot learn from
    else:
        task.labels = solver.label_set(examples)
    return task


def validate_examples(kind: str, examples: list[dict], what: str, problem: str = "single") -> None:
    """Check the fields every example needs, naming the first bad example (1-based) and field."""
    if not examples:
        raise DataValidationError(f"{what} data is empty")
    needed = {
        "sequence": ("text",),
        "pair": ("text", "text_pair"),
        "token": ("tokens", "tags"),
    }[kind]
    label_check = problem_class(problem)() if kind != "token" else None
    for i, ex in enumerate(examples, start=1):
        for key in needed:
            value = ex.get(key)
            if value is None or (isinstance(value, str | list) and len(value) == 0):
                raise DataValidationError(f"{what} example {i}: field {key!r} is missing or empty")
        if label_check is not None:
            label_check.check_value(ex.get("label"), f"{what} example {i}")
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
    problem = problem_from_meta(meta)
    if kind == "pair":
        return PairTask(kind, labels, meta.get("pair_encoding") or "cross", problem)
    return SequenceTask(kind, labels, problem)
