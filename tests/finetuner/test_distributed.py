"""Data-parallel training: 2 gloo ranks under torchrun against 1 process at the same global batch and seed.

Tolerance: the ranks add their gradients in a different order than one process sums a batch, so fp32 results
differ by rounding only. Per-step losses agree within 1e-5 relative. Saved weights agree within 1e-5 relative plus
an absolute WEIGHT_ATOL_LR x lr: Adam divides each gradient by its own running size, so an entry whose gradient is
near zero turns a rounding difference into a step of up to ~lr (measured: 8e-6 = 1.6% of lr 5e-4 on 214 of 147k
query weights after 6 steps; every other entry within 1e-6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_support import RUNS, train_runs

from finetuner import distributed
from finetuner.modeling import load_model_folder
from finetuner.predict import Predictor

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-5
WEIGHT_ATOL_LR = 0.05  # a twentieth of one Adam step: 3x the largest difference measured


def torchrun(nproc: int, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=N ARGS`` from the repo root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict:
    """Every run of RUNS trained by 2 gloo ranks under torchrun: rank 0's record, with each rank's labeled rows."""
    out = tmp_path_factory.mktemp("ddp2")
    torchrun(2, "tests/finetuner/ddp_support.py", str(out))
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for name, run in ranks[0]["runs"].items():
        run["labeled_per_rank"] = [r["runs"][name]["labeled"] for r in ranks]
    return ranks[0]["runs"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The same runs in this process (no launcher: WORLD_SIZE unset, no process group)."""
    assert not distributed.active()
    return train_runs(tmp_path_factory.mktemp("ddp1"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_two_ranks_follow_one_process(two_ranks, one_process, name):
    single, ranks = one_process[name], two_ranks[name]
    assert len(ranks["losses"]) == len(single["losses"]) > 0  # the same number of steps
    # each rank trained on its share only: between them every labeled row once, as one process did
    assert sum(ranks["labeled_per_rank"]) == single["labeled"]
    assert max(ranks["labeled_per_rank"]) < single["labeled"]
    torch.testing.assert_close(
        torch.tensor(ranks["losses"]), torch.tensor(single["losses"]), rtol=RTOL, atol=0
    )
    model_2, _, meta_2 = load_model_folder(ranks["folder"])
    model_1, _, _ = load_model_folder(single["folder"])
    state_1 = model_1.state_dict()
    for key, tensor in model_2.state_dict().items():
        atol = WEIGHT_ATOL_LR * RUNS[name]["lr"]
        torch.testing.assert_close(
            tensor, state_1[key], rtol=RTOL, atol=atol, msg=lambda m, k=key: f"{k}: {m}"
        )
    assert meta_2["history"] and not (Path(ranks["folder"]) / "checkpoint").exists()
    assert ranks["cancelled"] == single["cancelled"] == bool(RUNS[name].get("cancel_at"))
    predictor = Predictor.load(ranks["folder"])
    example = RUNS[name]["task"]
    assert predictor.predict(*_probe(example)) is not None


def _probe(task: str) -> tuple:
    if task == "pair":
        return ("how was the film ?", "it was good")
    if task == "token":
        return ("alice smith lives in paris", None)
    return ("the film was good", None)


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    batch = {"labels": torch.tensor([1, 0, 1]), "input_ids": torch.zeros(3, 4)}
    assert not distributed.active() and distributed.is_main()
    assert distributed.shard_batch(batch) is batch
    assert distributed.main_decides(True) is True
    assert distributed.encode_sharded(lambda items, cb: [i * 2 for i in items], [1, 2, 3], print) == [2, 4, 6]


@pytest.mark.slow
def test_cli_trains_once_under_torchrun(tmp_path, tiny_model_dir):
    """``torchrun -m finetuner train`` unchanged: one model folder, one progress bar and one JSON line (rank 0's)."""
    import csv

    from engine_toys import make_examples

    train_file = tmp_path / "train.csv"
    with train_file.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(make_examples("sequence", n=12))
    out = tmp_path / "model"
    done = torchrun(
        2, "-m", "finetuner", "train", "--task", "sequence", "--train", str(train_file), "--eval-split", "0.25",
        "--model", tiny_model_dir, "--mode", "frozen", "--epochs", "2", "--batch-size", "4", "--out", str(out),
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert json.loads(lines[-1])["accuracy"] >= 0  # the metrics line
    assert [line.split(":")[0] for line in lines[:-1]] == ["epoch 1", "epoch 2"], done.stdout  # once each
    assert done.stderr.count("saved ") == 1, done.stderr[-2000:]
    assert Predictor.load(str(out)).predict("the film was good")["label"] in {"pos", "neg"}


@pytest.mark.slow
def test_train_in_processes_relays_progress(make_examples, tiny_config):
    """The worker's path for a job with nproc 2: torchrun children, progress back through the callbacks."""
    from finetuner import Callbacks
    from finetuner.launch import train_in_processes
    from finetuner.training import EvalInfo, StepInfo

    steps, evals, phases = [], [], []
    hooks = Callbacks(
        on_step=steps.append, on_eval=evals.append, on_phase=lambda name, _f: phases.append(name)
    )
    data = make_examples("sequence", n=16)
    result = train_in_processes(tiny_config(epochs=2, lr=5e-4), data, data, hooks, nproc=2)
    assert all(isinstance(s, StepInfo) for s in steps) and all(isinstance(e, EvalInfo) for e in evals)
    assert [s.step for s in steps] == list(range(1, steps[-1].total_steps + 1))  # each step once: rank 0's
    assert [e.epoch for e in evals] == [1, 2] and "tokenizing" in phases
    assert result.epochs_run == 2 and not result.cancelled
    assert Predictor.load(result.output_dir).predict("the film was good")["label"] in {"pos", "neg"}


@pytest.mark.slow
def test_train_in_processes_cancels_and_reports_failures(make_examples, tiny_config):
    from finetuner import Callbacks
    from finetuner.launch import train_in_processes
    from finetuner.training import TrainingError

    steps = []
    stop_after_one = Callbacks(on_step=steps.append, should_stop=lambda: bool(steps))
    data = make_examples("sequence", n=16)
    result = train_in_processes(tiny_config(epochs=20), data, data, stop_after_one, nproc=2)
    assert result.cancelled and result.output_dir is None
    assert len(steps) < 20 * 2  # stopped long before the end; both ranks left (or torchrun would hang here)
    with pytest.raises(TrainingError, match="no-such-model"):
        train_in_processes(tiny_config(model="/no-such-model"), data, data, nproc=2)


@pytest.mark.parametrize(
    ("rows", "rank", "expected", "labeled"),
    [(3, 0, [0, 2], True), (3, 1, [1], True), (1, 1, [0], False)],  # last: a batch with no row for rank 1
)
def test_shard_batch_takes_every_world_th_row(monkeypatch, rows, rank, expected, labeled):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(rank))
    batch = {"input_ids": torch.arange(rows)[:, None].repeat(1, 4), "labels": torch.arange(rows)}
    mine = distributed.shard_batch(batch)
    assert mine["input_ids"][:, 0].tolist() == expected and mine["input_ids"].shape[1] == 4  # global padding
    assert (mine["labels"] != distributed.IGNORE).all().item() is labeled
    weight = torch.tensor([0.5, 2.0, 1.0])
    assert (
        distributed.loss_denominator(mine["labels"], weight).item()
        == sum(weight[i] for i in expected) * labeled
    )
