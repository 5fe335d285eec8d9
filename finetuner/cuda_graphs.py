"""Replay whole training steps as CUDA graphs, one graph per batch shape.

Why: a step of a small encoder (MiniLM: 6 layers, d=384) is hundreds of tiny kernels. Launched one by one from Python
the host is the bottleneck (about 25 ms a step on the H200 we measured, whatever the batch size), so the GPU idles.
A captured graph launches the same kernels — forward, loss, backward, clipping and the fused optimizer step — with one
call. Shapes stay few because batches are padded to a multiple of 8 and hold ``batch_size`` rows (only an epoch's last,
short batch differs); a shape seen for the first time runs eagerly once (a real training step, which also warms up
lazy state such as the optimizer's moments) and is captured for its next occurrences. Measured on the H200: 2.3-2.8x
the eager loop's steady-state throughput on MiniLM, 1.4-1.9x on a BERT-base-sized model (BENCHMARKS.md).

The step function must be graph-safe: no host syncs (``.item()``, printing tensors), gradients zeroed in place
(``zero_grad(set_to_none=False)``: the same gradient tensors serve every graph), a ``capturable`` optimizer whose lr
is a device tensor, and autocast without its weight cache.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Batch = dict[str, torch.Tensor]


class GraphedStep:
    """Call like the step function: ``loss = step(batch)``; captures and replays a CUDA graph per batch shape.

    Args:
        step: ``batch -> detached loss tensor``; does the forward, backward and optimizer step (graph-safe, see above).
        max_graphs: shapes beyond this many run eagerly (bounds memory: each graph keeps its own activations).
    """

    def __init__(self, step: Callable[[Batch], torch.Tensor], max_graphs: int = 32):
        self.step, self.max_graphs = step, max_graphs
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, Batch, torch.Tensor]] = {}
        self.eager_steps = 0  # steps run outside a graph (first sight of a shape, overflow): for benchmarks
        self.side_stream: torch.cuda.Stream | None = None

    def __call__(self, batch: Batch) -> torch.Tensor:
        key = tuple((name, tuple(t.shape), t.dtype) for name, t in sorted(batch.items()))
        entry = self.graphs.get(key)
        if entry is None:
            loss = self._eager(batch)
            if len(self.graphs) < self.max_graphs:
                self.graphs[key] = self._capture(batch)
            return loss
        graph, static_batch, static_loss = entry
        for name, tensor in batch.items():
            static_batch[name].copy_(tensor, non_blocking=True)
        graph.replay()
        return static_loss.clone()  # the next replay overwrites static_loss

    def _eager(self, batch: Batch) -> torch.Tensor:
        # On a side stream, as PyTorch's capture recipe asks of warm-up work before a capture.
        self.eager_steps += 1
        side = self.side_stream = self.side_stream or torch.cuda.Stream()  # one: its cached memory is reused
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            loss = self.step(batch)
        torch.cuda.current_stream().wait_stream(side)
        return loss

    def _capture(self, batch: Batch) -> tuple[torch.cuda.CUDAGraph, Batch, torch.Tensor]:
        static_batch = {name: tensor.clone() for name, tensor in batch.items()}
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels; nothing runs (that step was the eager one)
            static_loss = self.step(static_batch)
        return graph, static_batch, static_loss
