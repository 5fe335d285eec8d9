"""Where the loop's batches come from: the encoder every step (full / top-N), or cached features (frozen).

Both sources answer the same three questions, so the loop in train.py is one loop:
- ``train_batches(epoch)``: shuffled batches for one epoch (the order depends only on seed and epoch, so a resumed run
  sees the same order);
- ``scores(batch)``: flat logits [N, K] and gold labels [N] (IGNORE where unlabeled);
- ``eval_batches()``: (item indices, batch) in a fixed order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import torch
from torch.nn import functional as F

from finetuner import modeling
from finetuner.tasks import IGNORE, Task

BUCKET_BATCHES = 50  # sort by length within windows of 50 batches: little padding, order still random


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else the CPU; anything else is taken as a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (weights stay fp32); plain fp32 on CPU, where bf16 matmuls are not faster here."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
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


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class EncoderBatches:
    """Full / top-N fine-tuning: tokenized items, padded per batch, run through the whole model every step."""

    def __init__(
        self,
        model,
        task: Task,
        train_items,
        eval_items,
        pad_id: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        device: torch.device,
    ):
        self.model, self.task, self.pad_id, self.device = model, task, pad_id, device
        self.train_items, self.eval_items = train_items, eval_items
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.lengths = [_length(it) for it in train_items]

    @property
    def trainable(self):
        return self.model

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_items) // self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[tuple[int, dict]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        for idx in length_bucketed_order(self.lengths, self.batch_size, generator):
            batch = self.task.collate([self.train_items[i] for i in idx], self.pad_id)
            yield len(idx), to_device(batch, self.device)

    def eval_batches(self) -> Iterator[tuple[list[int], dict]]:
        order = sorted(range(len(self.eval_items)), key=lambda i: _length(self.eval_items[i]))
        for start in range(0, len(order), self.eval_batch_size):
            idx = order[start : start + self.eval_batch_size]
            yield (
                idx,
                to_device(self.task.collate([self.eval_items[i] for i in idx], self.pad_id), self.device),
            )

    def scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = self.model(**inputs).logits
        return logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1)


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
        pad_id: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        device: torch.device,
        dropout: float,
        on_progress=None,
        cache: dict | None = None,
    ):
        self.model, self.device, self.batch_size, self.seed, self.dropout = (
            model,
            device,
            batch_size,
            seed,
            dropout,
        )
        self.eval_batch_size = eval_batch_size
        if cache is None:
            encode = EncoderBatches(model, task, [], [], pad_id, batch_size, eval_batch_size, seed, device)
            total = len(train_items) + len(eval_items)
            cache = {
                "train": encode_rows(encode, train_items, lambda n: on_progress and on_progress(n / total)),
                "eval": encode_rows(
                    encode, eval_items, lambda n: on_progress and on_progress((len(train_items) + n) / total)
                ),
            }
        self.cache = cache
        self.train_x, self.train_y = _flatten(cache["train"])
        self.eval_rows = cache["eval"]

    @property
    def trainable(self):
        return modeling.head_of(self.model)

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_y) // self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[tuple[int, dict]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.train_y), generator=generator)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = {"features": self.train_x[idx], "labels": self.train_y[idx]}
            yield len(idx), to_device(batch, self.device)

    def eval_batches(self) -> Iterator[tuple[list[int], dict]]:
        for start in range(0, len(self.eval_rows), self.eval_batch_size):
            idx = list(range(start, min(start + self.eval_batch_size, len(self.eval_rows))))
            rows = [self.eval_rows[i] for i in idx]
            x, y = _flatten(rows)
            counts = torch.tensor([len(r[1]) for r in rows])
            yield idx, to_device({"features": x, "labels": y, "row_counts": counts}, self.device)

    def scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        features = F.dropout(batch["features"], p=self.dropout, training=self.trainable.training)
        return self.trainable(features), batch["labels"]


@torch.inference_mode()
def encode_rows(
    source: EncoderBatches, items: list[dict], on_progress
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One encoder pass over items: per item, (rows of head input [n, D], gold labels [n]) on the CPU in float32."""
    source.eval_items = items
    out: list = [None] * len(items)
    done = 0
    source.model.eval()
    for idx, batch in source.eval_batches():
        with autocast_for(source.device):
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
