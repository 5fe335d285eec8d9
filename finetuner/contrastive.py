"""A SetFit-style contrastive step: tune the encoder on sentence pairs before a head is fitted on its features.

SetFit (Tunstall et al. 2022) draws pairs from the labeled examples, same label -> target cosine 1, different -> 0,
and fine-tunes the sentence encoder with the MSE between the pair's cosine similarity and that target
(sentence-transformers' CosineSimilarityLoss) on mean-pooled last hidden states. The frozen head then reads an
encoder whose space already separates the classes. Plain torch on the model the engine builds: no setfit import.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from finetuner import distributed, modeling
from finetuner.batches import autocast_for, to_device
from finetuner.hf_model import pool

# SetFit 1.2's defaults for its contrastive phase (setfit/training_args.py): 16 pairs a batch, body lr 2e-5, 10%
# warmup, one pass over the pairs; grad clipping at 1 and weight decay 0.01 as sentence-transformers' fit.
PAIRS_PER_STEP = 16
LR = 2e-5
WARMUP = 0.1
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
BUCKET_STEPS = 8  # pairs are sorted by length within windows of this many steps (length_bucketed)
# The top transformer layers the step tunes; None: the whole encoder, as SetFit. MiniLM's top 4 of 6 made a step
# 0.59x as costly (bench/step_cost.py: no backward or AdamW for the embeddings and the two layers below), but 200
# such steps scored SST-2 as the ~130 whole-encoder steps the same seconds buy (BENCHMARKS.md "Small data,
# fourteenth session"): only bench/few_shot.py sets it.
TUNED_LAYERS: int | None = None


@dataclass(frozen=True)
class Pair:
    first: int  # index into the training examples
    second: int
    target: float  # 1.0: same label, 0.0: different labels


def sample_pairs(labels: list[str], max_pairs: int | None = None, seed: int = 42) -> list[Pair]:
    """SetFit's "oversampling" pairs: every unordered pair of distinct examples, shuffled, split into positives
    (same label) and negatives; the smaller side is cycled up to the larger one's count and the two interleave,
    so any prefix is balanced. ``max_pairs`` cuts the list (pairs grow with the square of the data).

    SetFit also pairs each example with itself; those are dropped here: under a cap every pair should teach
    something, and an example against itself already has cosine ~1.

    >>> [p.target for p in sample_pairs(["a", "a", "b"])]
    [1.0, 0.0, 1.0, 0.0]
    """
    combos = [(i, j) for i in range(len(labels)) for j in range(i + 1, len(labels))]
    random.Random(seed).shuffle(combos)
    positives = [Pair(i, j, 1.0) for i, j in combos if labels[i] == labels[j]]
    negatives = [Pair(i, j, 0.0) for i, j in combos if labels[i] != labels[j]]
    if not positives or not negatives:
        return []  # one class (nothing to contrast) or one example per class (no positive pair)
    n = max(len(positives), len(negatives))
    pairs = [p for k in range(n) for p in (positives[k % len(positives)], negatives[k % len(negatives)])]
    return pairs[:max_pairs] if max_pairs is not None else pairs


def length_bucketed(pairs: list[Pair], lengths: list[int], seed: int = 42) -> list[Pair]:
    """The same pairs in steps of similar length: each window of BUCKET_STEPS steps is sorted by the pair's longer
    text, cut into steps, and the steps are shuffled. A step pads its 32 texts to the longest, and random pairs
    of SST-2 phrases padded to 2.7x their mean length; which pairs are drawn, and how many, is unchanged.

    >>> [p.first for p in length_bucketed([Pair(0, 1, 1.0), Pair(2, 3, 0.0)], [5, 9, 2, 3])]
    [2, 0]
    """
    window = PAIRS_PER_STEP * BUCKET_STEPS
    steps = []
    for start in range(0, len(pairs), window):
        chunk = sorted(pairs[start : start + window], key=lambda p: max(lengths[p.first], lengths[p.second]))
        steps += [chunk[i : i + PAIRS_PER_STEP] for i in range(0, len(chunk), PAIRS_PER_STEP)]
    random.Random(seed).shuffle(steps)
    return [p for step in steps for p in step]


def cosine_loss(first: torch.Tensor, second: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the rows' cosine similarity and the 1 / 0 targets (CosineSimilarityLoss).

    >>> float(cosine_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([1.0])))
    1.0
    """
    return F.mse_loss(F.cosine_similarity(first, second, dim=-1), targets)


def embed(encoder: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Mean-pooled last hidden states [B, d]: the sentence embedding SetFit's MiniLM body trains."""
    extra = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
    out = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra)
    return pool(out.last_hidden_state, batch["attention_mask"], "mean")


def natural_steps(n_pairs: int) -> int:
    """Steps of one pass over n_pairs pairs."""
    return math.ceil(n_pairs / PAIRS_PER_STEP)


def tune_encoder(
    model: torch.nn.Module,
    task,
    items: list[dict],
    labels: list[str],
    max_steps: int,
    *,
    pad_id: int,
    device: torch.device,
    precision: str = "auto",
    seed: int = 42,
    on_progress: Callable[[float], None] = lambda _f: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict:
    """Contrastive fine-tuning of ``model``'s encoder in place, at most ``max_steps`` steps of 16 pairs.

    Args:
        model: the engine's sequence / pair model (its encoder is tuned; the head is left alone).
        task: the run's Task (collates the encoded items).
        items: the training examples, encoded (``task.encode``), in the order of ``labels``.
        labels: each example's label name.
        max_steps: a cap; data with fewer pairs gets one pass over them (SetFit's single epoch).

    Returns:
        {"steps", "pairs", "loss_first", "loss_last", "cancelled"}; steps 0 when the data has no pair to contrast.

    >>> tune_encoder(model, task, items, ["pos", "neg", "pos", "neg"], 50, pad_id=0,  # doctest: +SKIP
    ...              device=torch.device("cpu"))["steps"]
    1
    """
    pairs = sample_pairs(labels, max_steps * PAIRS_PER_STEP, seed)
    pairs = length_bucketed(pairs, [len(item["input_ids"]) for item in items], seed)
    steps = natural_steps(len(pairs))
    report = {"steps": 0, "pairs": len(pairs), "loss_first": None, "loss_last": None, "cancelled": False}
    if not steps:
        return report
    encoder = modeling.encoder_of(model)
    was_trainable = {name: p.requires_grad for name, p in encoder.named_parameters()}
    tuned = _tuned_parameters(encoder, TUNED_LAYERS)
    for name, p in encoder.named_parameters():
        p.requires_grad = name in tuned  # frozen mode froze it; the flags are put back below
    params = list(tuned.values())
    decayed = [p for n, p in tuned.items() if not (p.ndim < 2 or "LayerNorm" in n)]
    plain = [p for n, p in tuned.items() if p.ndim < 2 or "LayerNorm" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": WEIGHT_DECAY}, {"params": plain, "weight_decay": 0.0}], lr=LR
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    torch.manual_seed(seed)  # dropout masks
    encoder.train()  # dropout on, as sentence-transformers trains
    try:
        for step in range(steps):
            if should_stop():
                report["cancelled"] = True
                break
            chunk = pairs[step * PAIRS_PER_STEP : (step + 1) * PAIRS_PER_STEP]
            rows = [items[p.first] for p in chunk] + [items[p.second] for p in chunk]
            batch = to_device(task.collate(rows, pad_id), device)
            targets = torch.tensor([p.target for p in chunk], device=device)
            with autocast_for(device, precision):
                emb = embed(encoder, batch).float()
            loss = cosine_loss(emb[: len(chunk)], emb[len(chunk) :], targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
            optimizer.step()
            scheduler.step()
            value = loss.item()
            if report["loss_first"] is None:
                report["loss_first"] = value
            report["loss_last"], report["steps"] = value, step + 1
            on_progress((step + 1) / steps)
    finally:
        for name, p in encoder.named_parameters():
            p.requires_grad = was_trainable[name]
        optimizer.zero_grad(set_to_none=True)
        model.eval()
    return report


def _tuned_parameters(encoder: torch.nn.Module, top_layers: int | None) -> dict[str, torch.nn.Parameter]:
    """The encoder's parameters the step updates, by name: all of them, or those of its top ``top_layers`` layers
    (the layers below and the embeddings then get no gradient, and the backward pass stops above them)."""
    named = dict(encoder.named_parameters())
    if top_layers is None:
        return named
    layers = modeling.transformer_layers(encoder)
    keep = {id(p) for layer in layers[len(layers) - top_layers :] for p in layer.parameters()}
    return {n: p for n, p in named.items() if id(p) in keep}


TUNED_ENCODER_FILE = "contrastive_encoder.pt"  # in the run's checkpoint folder, for a resume


def prepare_encoder(model, task, items, examples, config, *, pad_id, device, ckpt_dir, callbacks) -> bool:
    """The training loop's hook: tune the encoder (or, resuming, reload the tuned one) before features are cached.

    A resumed frozen run reads features cached from the tuned encoder, and the saved folder must hold that encoder,
    so the tuned weights are kept beside the checkpoint until the run ends. False when cancelled.
    """
    encoder = modeling.encoder_of(model)
    saved = Path(ckpt_dir) / TUNED_ENCODER_FILE
    if config.resume and saved.exists():
        encoder.load_state_dict(torch.load(saved, map_location=device))
        return True
    report = tune_encoder(
        model,
        task,
        items,
        [str(ex["label"]) for ex in examples],
        config.contrastive_steps,
        pad_id=pad_id,
        device=device,
        precision=config.precision,
        seed=config.seed,
        on_progress=lambda f: callbacks.on_phase("contrastive tuning", f),
        should_stop=callbacks.should_stop,
    )
    if report["cancelled"]:
        return False
    if not distributed.is_main():
        return (
            True  # under torchrun every rank tuned the same encoder (same pairs, same seed); rank 0 keeps it
        )
    saved.parent.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_suffix(".tmp")
    torch.save(encoder.state_dict(), tmp)
    tmp.replace(saved)  # write then rename: a crash never leaves half a file to resume from
    return True
