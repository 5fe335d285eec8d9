"""What each training mode costs a step: full fine-tuning vs top-N (embeddings and lower layers frozen), one process.

    .venv/bin/python bench/mode_speed.py                        # CPU: 1,024 SST-2 sentences, 1 epoch per run
    .venv/bin/python bench/mode_speed.py --modes full,top-6 --repeats 3

Each mode trains the same sentences with the same batch size and lr (the engine's own path, bench/ours.py); the runs
alternate (full, top-6, ..., full, top-6, ...) so that drift in the machine's speed falls on every mode alike.
Examples/s counts training steps only, as in bench/train_speed.py. Accuracy after one epoch of 1,024 sentences says
little; the full-data accuracy of a mode is bench/weight_average.py's business (``--mode top-6``). The last line is
one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import elapsed, log, machine, warm_up, write_json  # noqa: E402
from data import load_sst2, subset  # noqa: E402
from ours import run_ours  # noqa: E402
from reference import pick_device  # noqa: E402

from finetuner import TrainConfig, modeling  # noqa: E402  (ours puts the repo on sys.path)


def check_modes(modes: list[str], model_path: str) -> str | None:
    """Why these modes cannot run on this model, or None: said before any run starts, not after the first ones."""
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(model_path).num_hidden_layers
    for mode in modes:
        try:
            top = TrainConfig(task="sequence", output_dir="unused", mode=mode).top_layers
        except ValueError as error:
            return f"--modes: {error}"
        if top is not None and top > layers:
            return f"--modes: {mode} asks for {top} layers; the model has {layers}"
    return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modes", default="full,top-6,top-2", help="comma-separated; the first is the reference"
    )
    parser.add_argument("--n", type=int, default=1024, help="training sentences")
    parser.add_argument("--dev-n", type=int, default=128, help="dev sentences (one evaluation per run)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, alternating")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.n < 2 * args.batch_size:  # a step's time is the gap to the next step's start
        parser.error(f"--n must be at least two batches ({2 * args.batch_size}) to time a step")
    modes = args.modes.split(",")
    model_path = modeling.resolve_model(args.model)
    problem = check_modes(modes, model_path)
    if problem:
        parser.error(problem)

    device = str(pick_device(args.device))
    train_data = subset(load_sst2("train"), args.n, seed=args.seed)
    dev_data = subset(load_sst2("dev"), args.dev_n, seed=args.seed)
    info = machine(device)
    log(
        f"mode_speed: {modes}, {len(train_data)} sentences, batch {args.batch_size}, {info['torch_threads']} threads"
    )
    warm_up(model_path, device)

    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for repeat in range(args.repeats):
        for mode in modes:
            run = run_ours(
                "sequence",
                train_data,
                {"dev": dev_data},
                log=lambda m: None,
                model=args.model,
                mode=mode,
                lr=args.lr,
                batch_size=args.batch_size,
                epochs=1,
                seed=args.seed,
                device=device,
            )
            rates[mode].append(run["ex_per_s"])
            log(f"  {mode} (run {repeat + 1}): {run['ex_per_s']:.1f} ex/s")

    reference = statistics.median(rates[modes[0]])
    result = {
        "bench": "mode_speed",
        "device": device,
        "ex_per_s": {mode: statistics.median(r) for mode, r in rates.items()},
        "ex_per_s_runs": rates,
        "speedup_vs_" + modes[0]: {mode: statistics.median(r) / reference for mode, r in rates.items()},
        "n_train": len(train_data),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "cpu": info["cpu"],
        "torch_threads": info["torch_threads"],
        "date": info["date"],
        "elapsed_s": elapsed(),
    }
    path = write_json("mode_speed", result)
    log(f"wrote {path}")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
