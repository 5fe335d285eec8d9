"""Data-parallel multi-label and regression training: 2 gloo ranks follow 1 process (tolerances as in
test_distributed.py), the last global batch leaving rank 1 a padding row whose float targets are NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ddp_problems_support import RUNS, train_runs
from test_distributed import RTOL, WEIGHT_ATOL_LR, torchrun

from finetuner.modeling import load_model_folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("ddp2-problems")
    torchrun(2, "tests/finetuner/ddp_problems_support.py", str(out))
    two = json.loads((out / "rank0.json").read_text())["runs"]
    return two, train_runs(tmp_path_factory.mktemp("ddp1-problems"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_two_ranks_follow_one_process(runs, name):
    two, one = runs[0][name], runs[1][name]
    assert len(two["losses"]) == len(one["losses"]) > 0
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one["losses"]), rtol=RTOL, atol=0)
    state_1 = load_model_folder(one["folder"])[0].state_dict()
    for key, tensor in load_model_folder(two["folder"])[0].state_dict().items():
        atol = WEIGHT_ATOL_LR * RUNS[name]["lr"]
        torch.testing.assert_close(
            tensor, state_1[key], rtol=RTOL, atol=atol, msg=lambda m, k=key: f"{k}: {m}"
        )
    meta = json.loads(Path(two["folder"], "finetuner.json").read_text())
    assert meta["problem"] == RUNS[name]["problem"]
