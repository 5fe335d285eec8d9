"""Training speed: Finetuner's loop vs the Hugging Face Trainer on SST-2, equal batch size, lr and epochs.

    .venv/bin/python bench/train_speed.py            # CPU: 1,024 training sentences, 1 epoch, batch 32
    .venv/bin/python bench/train_speed.py --gpu      # GPU: all 67,349, 3 epochs, time to 89.5% dev accuracy

Examples/s counts training steps only (the gaps between consecutive step starts within an epoch, on both sides), so
tokenizing, model loading and eval stay out of it. Time-to-accuracy is the training time up to the end of the first
epoch whose dev accuracy reaches the target. Frozen mode: epoch 1 pays one encoder pass, later epochs train the head
on cached features; their ratio is reported. The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import elapsed, epoch_seconds, log, machine, warm_up, write_json  # noqa: E402
from data import load_sst2, subset  # noqa: E402
from ours import run_ours  # noqa: E402
from reference import Recipe, pick_device, run_reference  # noqa: E402

from finetuner import modeling  # noqa: E402  (ours puts the repo on sys.path)


def time_to(history: list[dict], target: float | None) -> float | None:
    """Training seconds at the first evaluation whose dev accuracy reaches target; None if none did."""
    if target is None:
        return None
    return next((h["train_s"] for h in history if h.get("accuracy", 0) >= target), None)


def frozen_epochs(result: dict, n_train: int, n_dev: int) -> dict:
    """Epoch 1 (the encoder pass over the training set + one head epoch) vs the mean later epoch (head only)."""
    per_epoch = epoch_seconds(result["history"])
    encode_train_s = (
        (result["encode_s"] or 0.0) * n_train / max(n_train + n_dev, 1)
    )  # the pass covers train + dev
    later = per_epoch[1:]
    later_s = sum(later) / len(later) if later else None
    epoch1_s = encode_train_s + (per_epoch[0] if per_epoch else 0.0)
    return {
        "encode_s": result["encode_s"],
        "encode_train_s": encode_train_s,
        "epoch1_s": epoch1_s,
        "later_epoch_s": later_s,
        "epoch1_over_later": epoch1_s / later_s if later_s else None,
        "accuracy": result["metrics"]["dev"]["accuracy"],
        "epochs": result["epochs"],
        "wall_s": result["wall_s"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpu", action="store_true", help="full SST-2 train set, 3 epochs, device cuda")
    parser.add_argument("--n", type=int, help="training sentences (default: 1024 on CPU, all with --gpu)")
    parser.add_argument("--dev-n", type=int, help="dev sentences (default: all 872)")
    parser.add_argument("--epochs", type=int, help="default: 1 on CPU, 3 with --gpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument(
        "--target",
        type=float,
        help="time-to-accuracy target (default: 0.895 with --gpu, else the Trainer's final dev accuracy)",
    )
    parser.add_argument(
        "--device", default=None, help="auto, cpu or cuda (default: cuda with --gpu, else cpu)"
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model name or folder (default: bundled)")
    parser.add_argument("--trainer-bf16", action="store_true", help="Trainer with bf16 (an issue-6 variant)")
    parser.add_argument("--trainer-group-by-length", action="store_true", help="Trainer with group_by_length")
    parser.add_argument("--no-frozen", action="store_true", help="skip the frozen-mode epoch timing")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out-dir", help="also write the JSON result here (e.g. $OUT)")
    args = parser.parse_args(argv)

    device = args.device or ("cuda" if args.gpu else "cpu")
    device = str(pick_device(device))
    n = args.n if args.n is not None else (None if args.gpu else 1024)
    epochs = args.epochs or (3 if args.gpu else 1)
    model_path = modeling.resolve_model(args.model)
    train_data = subset(load_sst2("train"), n, seed=args.seed)
    dev_data = subset(load_sst2("dev"), args.dev_n, seed=args.seed)
    info = machine(device)
    log(
        f"train_speed: SST-2 {len(train_data)} train / {len(dev_data)} dev, {epochs} epoch(s), batch "
        f"{args.batch_size}, lr {args.lr}, device {device} ({info.get('gpu') or info['cpu']}, "
        f"{info['torch_threads']} threads)"
    )
    warm_up(model_path, device)

    recipe = Recipe(
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=epochs,
        seed=args.seed,
        bf16=args.trainer_bf16,
        group_by_length=args.trainer_group_by_length,
    )
    log("Trainer reference: training")
    ref = run_reference("sequence", train_data, {"dev": dev_data}, model_path, recipe, device=device, log=log)
    log(
        f"Trainer: {ref['ex_per_s']:.1f} ex/s, dev accuracy {ref['metrics']['dev']['accuracy']:.4f}, "
        f"train {ref['train_s']:.1f}s, wall {ref['wall_s']:.1f}s"
    )

    name = "train_speed_gpu" if args.gpu else "train_speed_cpu"
    write_json(
        name, {"partial": True, "trainer": ref, "machine": info}, args.out_dir
    )  # survives a kill below
    log("Finetuner (same batch size, lr, epochs): training")
    ours = run_ours(
        "sequence",
        train_data,
        {"dev": dev_data},
        log=log,
        model=args.model,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=epochs,
        seed=args.seed,
        device=device,
    )
    log(
        f"Finetuner: {ours['ex_per_s']:.1f} ex/s, dev accuracy {ours['metrics']['dev']['accuracy']:.4f} "
        f"(last epoch {ours['last'].get('accuracy', float('nan')):.4f}), train {ours['train_s']:.1f}s, "
        f"wall {ours['wall_s']:.1f}s"
    )

    target = (
        args.target if args.target is not None else (0.895 if args.gpu else ref["metrics"]["dev"]["accuracy"])
    )
    frozen = None
    if not args.no_frozen:
        log("Finetuner frozen mode (its defaults): encoder pass once, then the head on cached features")
        run = run_ours(
            "sequence",
            train_data,
            {"dev": dev_data},
            log=lambda m: None,
            model=args.model,
            mode="frozen",
            seed=args.seed,
            device=device,
        )
        frozen = frozen_epochs(run, len(train_data), len(dev_data))
        log(
            f"frozen: epoch 1 {frozen['epoch1_s']:.2f}s (encoder pass {frozen['encode_train_s']:.2f}s), later "
            f"epochs {frozen['later_epoch_s']:.4f}s each: ratio {frozen['epoch1_over_later']:.0f}x; dev accuracy "
            f"{frozen['accuracy']:.4f} after {frozen['epochs']} epochs"
        )

    result = {
        "bench": "train_speed",
        "device": device,
        "gpu": info.get("gpu"),
        "ours_ex_per_s": ours["ex_per_s"],
        "trainer_ex_per_s": ref["ex_per_s"],
        "speedup": ours["ex_per_s"] / ref["ex_per_s"],
        "ours_ex_per_s_median_step": ours["ex_per_s_median"],
        "trainer_ex_per_s_median_step": ref["ex_per_s_median"],
        "speedup_median_step": ours["ex_per_s_median"] / ref["ex_per_s_median"],
        "load_avg_after": {"trainer": ref["load_avg"], "ours": ours["load_avg"]},
        "ours_accuracy": ours["metrics"]["dev"]["accuracy"],
        "ours_last_epoch_accuracy": ours["last"].get("accuracy"),
        "trainer_accuracy": ref["metrics"]["dev"]["accuracy"],
        "target_accuracy": target,
        "ours_time_to_target_s": time_to(ours["history"], target),
        "trainer_time_to_target_s": time_to(ref["history"], target),
        "ours_train_s": ours["train_s"],
        "trainer_train_s": ref["train_s"],
        "ours_wall_s": ours["wall_s"],
        "trainer_wall_s": ref["wall_s"],
        "ours_history": ours["history"],
        "trainer_history": ref["history"],
        "n_train": len(train_data),
        "n_dev": len(dev_data),
        "epochs": epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "trainer_bf16": args.trainer_bf16,
        "trainer_group_by_length": args.trainer_group_by_length,
        "frozen": frozen,
        "machine": info,
        "elapsed_s": elapsed(),
    }
    path = write_json(name, result, args.out_dir)
    log(
        f"speedup {result['speedup']:.2f}x (ours {result['ours_ex_per_s']:.1f} vs Trainer "
        f"{result['trainer_ex_per_s']:.1f} ex/s); wrote {path}"
    )
    headline = {k: v for k, v in result.items() if k not in ("ours_history", "trainer_history", "machine")}
    headline["cpu"], headline["date"] = info["cpu"], info["date"]
    print(__import__("json").dumps(headline, default=str), flush=True)
    return result


if __name__ == "__main__":
    main()
