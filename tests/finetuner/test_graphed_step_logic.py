"""GraphedStep's bookkeeping on the CPU, with CUDA's graph API replaced by a recorder.

What is checked: a new batch shape runs eagerly once and is captured (capturing runs nothing); the same shape later
replays the capture with the new batch copied into the captured buffers; shapes past max_graphs stay eager.
The real CUDA path is tests/finetuner/test_cuda_graphs.py (GPU only).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from finetuner import cuda_graphs


class FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replay() re-runs what the step recorded while capturing."""

    capturing: FakeGraph | None = None

    def __init__(self):
        self.recorded = []

    def replay(self):
        for work in self.recorded:
            work()


@contextlib.contextmanager
def fake_capture(graph):
    FakeGraph.capturing = graph
    try:
        yield
    finally:
        FakeGraph.capturing = None


@pytest.fixture
def fake_cuda(monkeypatch):
    class Stream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_capture)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", Stream)


def make_step(log: list):
    """A step that sums its batch into a persistent output, as a captured kernel writes a static tensor."""
    out = torch.zeros(())

    def run(batch):
        log.append(batch["x"].shape)
        out.copy_(batch["x"].sum())

    def step(batch):
        if FakeGraph.capturing is not None:  # record, do not run: what stream capture does
            FakeGraph.capturing.recorded.append(lambda: run(batch))
        else:
            run(batch)
        return out

    return step


def test_each_shape_runs_eagerly_once_then_replays_with_new_data(fake_cuda):
    log = []
    graphed = cuda_graphs.GraphedStep(make_step(log))
    first = {"x": torch.ones(2, 8)}
    assert (
        float(graphed(first)) == 16.0 and graphed.eager_steps == 1 and len(log) == 1
    )  # eager, then captured
    assert float(graphed({"x": torch.full((2, 8), 2.0)})) == 32.0  # replay sees the new batch's values
    assert graphed.eager_steps == 1 and len(log) == 2
    assert float(graphed({"x": torch.ones(2, 16)})) == 32.0 and graphed.eager_steps == 2  # a new shape
    assert float(graphed({"x": torch.full((2, 16), 3.0)})) == 96.0 and graphed.eager_steps == 2
    assert len(graphed.graphs) == 2
    assert first["x"].sum() == 16.0  # the caller's batch is copied, never written


def test_shapes_beyond_the_limit_stay_eager(fake_cuda):
    graphed = cuda_graphs.GraphedStep(make_step([]), max_graphs=1)
    graphed({"x": torch.ones(1, 8)})
    for _ in range(3):
        assert float(graphed({"x": torch.ones(1, 24)})) == 24.0
    assert len(graphed.graphs) == 1 and graphed.eager_steps == 4


def test_the_returned_loss_survives_the_next_replay(fake_cuda):
    graphed = cuda_graphs.GraphedStep(make_step([]))
    graphed({"x": torch.ones(4)})
    a = graphed({"x": torch.ones(4)})
    b = graphed({"x": torch.zeros(4)})
    assert float(a) == 4.0 and float(b) == 0.0
