"""Data-parallel training under ``torchrun`` / ``accelerate launch``: ranks from the environment, the process group,
how a global batch is split, and the few collectives the loop needs.

Semantics: ``batch_size`` is the *global* batch. Every rank builds the same length-bucketed batch order (it depends
only on seed and epoch) and trains on its rows of each global batch (rows ``rank::world``), so every rank takes the
same number of steps and N processes follow the single-process run step for step: each rank back-propagates the
*sum* of its rows' losses, one all-reduce adds the gradients, the losses and the loss denominators of all ranks,
and the gradients are divided by the global denominator -- the gradient of the global batch's mean loss, class
weights and ignored tokens included. (Dropout draws differ by rank, so runs with dropout agree in distribution, not
bit for bit.) Rank 0 alone reports, evaluates, writes checkpoints and saves the model folder.

With WORLD_SIZE unset (or 1) every helper here is a no-op: no process group, no collective, no overhead.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist

from finetuner.problems import IGNORE, Problem

# Gradients are all-reduced in flat fp32 buckets of at most 64 MB: few calls, and a bounded extra copy.
BUCKET_ELEMENTS = 1 << 24


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def active() -> bool:
    """True under a launcher with more than one process (``ensure_process_group`` joins its group)."""
    return world_size() > 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that reports, evaluates and writes files."""
    return rank() == 0


def device_for(device: torch.device) -> torch.device:
    """Each rank's own GPU (LOCAL_RANK) under a launcher; the given device otherwise."""
    if active() and device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)  # NCCL and autocast use the current device (set_device needs an index)
    return device


def ensure_process_group(device: torch.device) -> None:
    """Join the launcher's process group (NCCL on CUDA, gloo on CPU) once per process; a no-op for one process.

    The group stays open until the process exits: a second ``init_process_group`` in the same torchrun worker hangs
    on the launcher's store (seen with torch 2.13), so several trainings in one process share the first group. A
    group set up by the caller (``accelerate``, a test) is used as it is.
    """
    if not active() or dist.is_initialized():
        return
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        device_id=device if device.type == "cuda" else None,
    )
    atexit.register(_close)


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _comm_device(like: torch.device) -> torch.device:
    return like if dist.get_backend() == "nccl" else torch.device("cpu")


def shard_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This rank's rows (``rank::world``) of a collated global batch; the whole batch for one process.

    Slicing after collating keeps the global batch's padding, so shapes (and sums) match the single-process run. A
    rank left without rows (a last batch smaller than the world) gets row 0 with every label IGNORE (NaN for float
    targets): it runs the same
    forward and backward as the others but adds nothing to the loss, the gradient or the denominator.
    """
    if not active():
        return batch
    rows = len(batch["labels"])
    if rank() < rows:
        return {k: v[rank() :: world_size()] for k, v in batch.items()}
    empty = {k: v[:1].clone() for k, v in batch.items()}
    # float targets (multi-hot, scores) have no IGNORE index: NaN marks them unlabeled (finetuner/problems.py)
    empty["labels"].fill_(float("nan") if empty["labels"].is_floating_point() else IGNORE)
    return empty


def loss_denominator(
    gold: torch.Tensor, weight: torch.Tensor | None, problem: Problem | None = None
) -> torch.Tensor:
    """What the mean loss divides by for these rows (the problem's rule, single-label by default): for cross_entropy
    the count of labeled rows or their class weights' sum; for multi-label BCE every (row, label) cell; for MSE rows."""
    return (problem or Problem()).loss_denominator(gold, weight)


def reduce_gradients(
    params: list[torch.nn.Parameter], loss_sum: torch.Tensor, denominator: torch.Tensor
) -> torch.Tensor:
    """Turn every rank's summed-loss gradients into the global mean's, in place; return the global mean loss.

    One all-reduce per bucket, the loss and denominator riding with the first, so a step costs no extra round trip.
    """
    # the same parameters hold gradients on every rank: same model, same code path
    grads = [p.grad for p in params if p.grad is not None]
    comm = _comm_device(loss_sum.device)
    totals = None
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1).float() for g in bucket]).to(comm)
        if totals is None:
            flat = torch.cat([torch.stack([loss_sum.float(), denominator.float()]).to(comm), flat])
        dist.all_reduce(flat)
        if totals is None:
            totals, flat = flat[:2], flat[2:]
        # a global batch without a labeled row leaves the gradients zero rather than dividing by 0
        scale = 1.0 / totals[1].clamp(min=1e-12)
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_((flat[offset : offset + n] * scale).view_as(g).to(g.device, g.dtype))
            offset += n
    if totals is None:  # nothing trainable received a gradient: still reduce the loss, the ranks stay in step
        totals = torch.stack([loss_sum.float(), denominator.float()]).to(comm)
        dist.all_reduce(totals)
    return (totals[0] / totals[1].clamp(min=1e-12)).to(loss_sum.device)


def _buckets(grads: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    bucket, size = [], 0
    for g in grads:
        if bucket and size + g.numel() > BUCKET_ELEMENTS:
            yield bucket
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel()
    if bucket:
        yield bucket


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (a randomly initialised head must start the same)."""
    if not active():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            buf = t.detach().to(_comm_device(t.device))
            dist.broadcast(buf, src=0)
            t.copy_(buf.to(t.device))


def main_decides(flag: bool) -> bool:
    """Rank 0's answer on every rank (cancel, early stopping): the ranks leave the loop at the same step."""
    if not active():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier() -> None:
    """Wait for every rank (the others wait here while rank 0 writes the model folder)."""
    if active():
        dist.barrier()


def encode_sharded(encode: Callable[[list], list], items: list, on_progress: Callable[[int], None]) -> list:
    """``encode(items, on_progress)`` split across ranks (rows ``rank::world``), every rank getting all results.

    The frozen mode's encoder pass: each rank encodes its share, an all-gather puts the rows back in item order.
    """
    if not active():
        return encode(items, on_progress)
    w, r = world_size(), rank()
    mine = encode(items[r::w], lambda n: on_progress(min(n * w, len(items))))
    parts: list = [None] * w
    dist.all_gather_object(parts, mine)
    out: list = [None] * len(items)
    for part_rank, part in enumerate(parts):
        out[part_rank::w] = part
    return out


def rank_seed(seed: int, step: int) -> int:
    """A seed per (seed, rank, step) for dropout: ranks draw different masks, and a resumed run draws them again."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank(), step]).generate_state(1)[0])
