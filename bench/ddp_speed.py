"""Data-parallel speed: training examples/s of the engine in 1 process vs N processes under torchrun.

    .venv/bin/python bench/ddp_speed.py                       # CPU: 1 vs 2 gloo processes, 512 SST-2 sentences
    python bench/ddp_speed.py --device cuda --nprocs 1 --examples 16384 --batch-size 256   # one GPU (gpu_run.sh)

Each run is ``python -m torch.distributed.run --standalone --nproc_per_node=N bench/ddp_speed.py --rank-run ...``:
the engine's own path (``finetuner.train``) at the same *global* batch and seed, so N processes take the same steps
as one (finetuner/distributed.py). Examples/s counts training steps after the first WARM_STEPS (thread pools,
allocator) from rank 0's step reports. On the CPU the cores are split evenly: 1 process gets every core as intra-op
threads, N processes cores/N each, so the ratio says what splitting the batch across processes buys on the same
hardware (on a 2-core box: nothing; the all-reduce only adds). ``--threads 1`` gives every process one thread: on a
box shared with other work, 2 threads in one process wait at barriers for a preempted core, which flatters N
processes. On CUDA each process drives its own GPU (LOCAL_RANK);
N can be at most the GPU count. The last line is one JSON object with the figures and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WARM_STEPS = 3  # the first steps pay one-time costs: left out of the rate


def _data(n: int) -> list[dict]:
    """SST-2 training sentences when the data is here (bench/data.py), else seeded synthetic ones of similar length."""
    try:
        from data import load_sst2, subset

        return subset(load_sst2("train"), n)
    except (OSError, FileNotFoundError, ImportError):
        import random

        rng = random.Random(0)
        words = [
            "the",
            "a",
            "film",
            "movie",
            "story",
            "was",
            "is",
            "good",
            "bad",
            "great",
            "awful",
            "really",
            "quite",
            "not",
            "very",
            "plot",
            "acting",
        ]
        return [
            {
                "text": " ".join(rng.choice(words) for _ in range(rng.randint(5, 30))),
                "label": ("neg", "pos")[i % 2],
            }
            for i in range(n)
        ]


def rank_run(args) -> None:
    """One rank of a run: train, and on rank 0 write the step times to args.result."""
    import torch

    from finetuner import Callbacks, TrainConfig, distributed, train

    if args.threads:
        torch.set_num_threads(args.threads)
    times: list[tuple[float, int, int]] = []  # (time, step, examples in the window)
    config = TrainConfig(
        task="sequence", output_dir=args.out, mode=args.mode, epochs=1, batch_size=args.batch_size, lr=5e-5,
        seed=0, eval_split=0.0, log_every=1, device=args.device, model_overrides=json.loads(args.overrides),
    )  # fmt: skip

    def on_step(info) -> None:
        times.append((time.perf_counter(), info.step, info.examples_per_s))

    train(config, _data(args.n), [], Callbacks(on_step=on_step))
    if distributed.is_main():
        Path(args.result).write_text(json.dumps({"times": times, "world_size": distributed.world_size()}))


def measure(nproc: int, args, threads: int) -> dict:
    """Run one configuration under torchrun; its examples/s over the steps after the warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", __file__,
            "--rank-run", "--out", str(Path(tmp) / "model"), "--result", str(result), "--examples", str(args.n),
            "--batch-size", str(args.batch_size), "--device", args.device, "--mode", args.mode,
            "--overrides", args.overrides, "--threads", str(threads),
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{nproc} processes failed:\n{done.stderr[-3000:]}")
        record = json.loads(result.read_text())
    times = record["times"]
    t0, step0 = times[WARM_STEPS - 1][0], times[WARM_STEPS - 1][1]
    t1, step1 = times[-1][0], times[-1][1]
    steps = step1 - step0
    examples = steps * args.batch_size  # every step but possibly the last is a full global batch
    return {
        "nproc": nproc, "threads_per_process": threads, "steps_timed": steps,
        "examples_per_s": round(examples / (t1 - t0), 1), "wall_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nprocs", default="1,2", help="process counts to compare; the first is the reference"
    )
    parser.add_argument("--examples", dest="n", type=int, default=512, help="training examples (one epoch)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch: split across the processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="full")
    parser.add_argument(
        "--overrides", default="{}", help='model overrides as JSON, e.g. {"num_hidden_layers": 1}'
    )
    parser.add_argument("--out-dir", help="also write the JSON here (e.g. $OUT on a GPU machine)")
    parser.add_argument("--rank-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads per process (default: the cores split evenly)",
    )
    args = parser.parse_args(argv)
    if args.rank_run:
        rank_run(args)
        return {}

    from common import log, machine, write_json

    cores = os.cpu_count() or 1
    runs = []
    for nproc in [int(x) for x in args.nprocs.split(",")]:
        threads = args.threads or (max(1, cores // nproc) if args.device == "cpu" else 1)
        log(f"{nproc} process(es), {threads} thread(s) each ...")
        runs.append(measure(nproc, args, threads))
        log(json.dumps(runs[-1]))
    ref = runs[0]["examples_per_s"]
    for run in runs:
        run["ratio_vs_first"] = round(run["examples_per_s"] / ref, 3)
    summary = {
        "bench": "ddp_speed", "n": args.n, "global_batch": args.batch_size, "mode": args.mode,
        "overrides": json.loads(args.overrides), "runs": runs, "machine": machine(args.device),
    }  # fmt: skip
    write_json("ddp_speed", summary, args.out_dir)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
