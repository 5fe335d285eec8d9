"""Where the loop's batches come from: the encoder every step (full / top-N), or cached features (frozen).

Both sources answer the same three questions, so the loop in train.py is one loop:
- ``train_batches(epoch)``: shuffled batches for one epoch (the order depends only on seed and epoch, so a resumed run
  sees the same order);
- ``scores(batch)``: flat logits [N, K] and gold labels [N] (IGNORE where unlabeled; [N, K] multi-hot for multilabel);
- ``eval_batches()``: (item indices, batch) in a fixed order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from finetuner import distributed, modeling
from finetuner.tasks import IGNORE, Task

BUCKET_BATCHES = 50  # sort by length within windows of 50 batches: little padding, order still random


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else the CPU; anything else is taken as a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device, precision: str = "auto"):
    """bf16 autocast (weights stay fp32) on CUDA by default; fp32 on CPU, where bf16 matmuls are not faster here."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        # No weight-cast cache: a CUDA graph must recast inside the graph (cuda_graphs.py), and a step uses each
        # weight once anyway (twice for a concat pair).
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return nullcontext()


def length_bucketed_order(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Random batches of similar length: shuffle, sort each window of BUCKET_BATCHES batches, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


@dataclass
class TokenMasking:
    """Training-time input noise: each text token (not [CLS], [SEP] or padding) becomes the mask token with
    probability ``prob``. Draws come from the epoch's generator, so a resumed run replays the same masks."""

    prob: float
    mask_id: int
    special_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        self._special = torch.tensor(self.special_ids)  # built once, not per batch

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        for key in ("input_ids", "pair_input_ids"):
            if key in batch:
                ids = batch[key]
                text = ~torch.isin(ids, self._special.to(ids.dtype))
                hit = (torch.rand(ids.shape, generator=generator) < self.prob) & text
                batch[key] = ids.masked_fill(hit, self.mask_id)
        return batch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a CPU batch to the device; to CUDA from pinned memory, so the copy does not make the host wait."""
    if device.type == "cuda":
        return {
            k: (v.pin_memory() if v.device.type == "cpu" else v).to(device, non_blocking=True)
            for k, v in batch.items()
        }
    return {k: v.to(device) for k, v in batch.items()}


@dataclass
class BatchSettings:
    """What every batch source needs besides the data: padding, sizes, seed, device and precision."""

    pad_id: int
    batch_size: int
    eval_batch_size: int
    seed: int
    device: torch.device
    precision: str = "auto"

    def autocast(self):
        return autocast_for(self.device, self.precision)

    def generator(self, epoch: int) -> torch.Generator:
        """The data order depends only on (seed, epoch): a resumed run replays the same order."""
        return torch.Generator().manual_seed(self.seed * 1000 + epoch)


class EncoderBatches:
    """Full / top-N fine-tuning: tokenized items, padded per batch, run through the whole model every step."""

    def __init__(
        self,
        model,
        task: Task,
        train_items,
        eval_items,
        settings: BatchSettings,
        forward=None,
        masking: TokenMasking | None = None,
    ):
        self.model, self.task, self.settings, self.masking = model, task, settings, masking
        # A torch.compile'd model when asked for (compare with None: a compiled module has no truth value);
        # self.model stays the plain one, for saving and for eval.
        self.forward = model if forward is None else forward
        self.train_items, self.eval_items = train_items, eval_items
        self.lengths = [_length(it) for it in train_items]

    @property
    def trainable(self):
        return self.model

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_items) // self.settings.batch_size)

    def train_batches(self, epoch: int) -> Iterator[tuple[int, dict]]:
        s = self.settings
        generator = s.generator(epoch)
        for idx in length_bucketed_order(self.lengths, s.batch_size, generator):
            batch = self.task.collate([self.train_items[i] for i in idx], s.pad_id)
            if self.masking:
                batch = self.masking(batch, generator)
            # under several processes, this rank's rows of the global batch (len(idx) stays the global count)
            yield len(idx), to_device(distributed.shard_batch(batch), s.device)

    def eval_batches(self) -> Iterator[tuple[list[int], dict]]:
        s = self.settings
        order = sorted(range(len(self.eval_items)), key=lambda i: _length(self.eval_items[i]))
        for start in range(0, len(order), s.eval_batch_size):
            idx = order[start : start + s.eval_batch_size]
            yield idx, to_device(self.task.collate([self.eval_items[i] for i in idx], s.pad_id), s.device)

    def scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = self.forward(**inputs).logits
        labels = batch["labels"]
        # one gold per logits row: [N] (class, tag or score) or [N, K] (multi-hot), N = B or B x T for tokens
        return logits.reshape(-1, logits.shape[-1]), labels.reshape(-1, *labels.shape[logits.dim() - 1 :])


class FeatureBatches:
    """Frozen encoder: run it once over every example, cache what the head reads, train the head on the cache.

    Rows are examples (sequence / pair) or words (token: the first sub-word's hidden state), so one epoch over
    the cache costs a d x K matrix product per batch instead of a transformer forward pass.
    """

    def __init__(
        self,
        model,
        task: Task,
        train_items,
        eval_items,
        settings: BatchSettings,
        dropout: float,
        on_progress=None,
        cache: dict | None = None,
    ):
        self.model, self.settings, self.dropout = model, settings, dropout
        if cache is None:
            encoder = EncoderBatches(model, task, [], [], settings)
            total = max(len(train_items) + len(eval_items), 1)
            report = on_progress or (lambda _fraction: None)
            encode = distributed.encode_sharded  # each rank encodes its share under several processes
            rows = lambda items, cb: encode_rows(encoder, items, cb)  # noqa: E731
            cache = {
                "train": encode(rows, train_items, lambda n: report(n / total)),
                "eval": encode(rows, eval_items, lambda n: report((len(train_items) + n) / total)),
            }
        self.cache = cache
        self.train_x, self.train_y = _flatten(cache["train"])
        self.eval_rows = cache["eval"]

    @property
    def trainable(self):
        return modeling.head_of(self.model)

    def include_eval(self) -> None:
        """Train on the eval rows too from here on (a refit: see TrainConfig.refit)."""
        self.train_x, self.train_y = _flatten(self.cache["train"] + self.cache["eval"])

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_y) // self.settings.batch_size)

    def train_batches(self, epoch: int) -> Iterator[tuple[int, dict]]:
        s = self.settings
        order = torch.randperm(len(self.train_y), generator=s.generator(epoch))
        for start in range(0, len(order), s.batch_size):
            idx = order[start : start + s.batch_size]
            batch = distributed.shard_batch({"features": self.train_x[idx], "labels": self.train_y[idx]})
            yield len(idx), to_device(batch, s.device)

    def eval_batches(self) -> Iterator[tuple[list[int], dict]]:
        s = self.settings
        for start in range(0, len(self.eval_rows), s.eval_batch_size):
            idx = list(range(start, min(start + s.eval_batch_size, len(self.eval_rows))))
            rows = [self.eval_rows[i] for i in idx]
            x, y = _flatten(rows)
            counts = torch.tensor([len(r[1]) for r in rows])
            yield idx, to_device({"features": x, "labels": y, "row_counts": counts}, s.device)

    def scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        features = F.dropout(batch["features"], p=self.dropout, training=self.trainable.training)
        return self.trainable(features), batch["labels"]


@torch.inference_mode()
def encode_rows(
    source: EncoderBatches, items: list[dict], on_progress
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One encoder pass over items: per item, (rows of head input [n, D], gold labels [n] or [n, K]) on the CPU."""
    source.eval_items = items
    out: list = [None] * len(items)
    done = 0
    source.model.eval()
    for idx, batch in source.eval_batches():
        with source.settings.autocast():
            rep = modeling.represent(source.model, batch).float()
        labels = batch["labels"]
        for j, i in enumerate(idx):
            if rep.dim() == 3:  # token: keep the first sub-word of every word
                keep = labels[j] != IGNORE
                out[i] = (rep[j][keep].cpu(), labels[j][keep].cpu())
            else:
                out[i] = (rep[j : j + 1].cpu(), labels[j : j + 1].cpu())
        done += len(idx)
        on_progress(done)
    return out


def _flatten(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if not rows:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat([x for x, _ in rows]), torch.cat([y for _, y in rows])


def _length(item: dict) -> int:
    return len(item["input_ids"]) + len(item.get("pair_input_ids", ()))
