"""GPU speed levers for the engine, one at a time, on full SST-2 (issue 6): examples/s and time to 89.5% dev accuracy.

Every variant runs in this one process on the same data and card, so the rows compare directly:
- ``b32 bf16``: the engine at the Trainer recipe's batch size and lr (the Trainer itself: bench/train_speed.py);
- ``b256 bf16``: large batches, scaled lr (the fast recipe);
- ``b256 fp32``: the same without bf16 autocast (what bf16 buys);
- ``b256 bf16 compile``: plus torch.compile (dynamic shapes);
- ``bert-base b256 bf16``: throughput of a BERT-base-sized config (random weights: speed only, no accuracy claim).

    python bench/gpu_speed.py [--model DIR] [--variants b256_bf16,b256_fp32] [--smoke]

``--smoke`` runs every variant on 256 sentences on the CPU, to check the script before a GPU session.
The last line is one JSON object with every variant's figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import elapsed, log, machine, write_json  # noqa: E402
from data import load_sst2, subset  # noqa: E402
from ours import run_ours  # noqa: E402

TARGET = 0.895
VARIANTS = {
    "b32_bf16": {"batch_size": 32, "lr": 5e-5, "epochs": 1, "precision": "auto"},
    "b256_bf16": {"batch_size": 256, "lr": 3e-4, "epochs": 3, "precision": "auto"},
    "b256_fp32": {"batch_size": 256, "lr": 3e-4, "epochs": 1, "precision": "fp32"},
    "b256_bf16_compile": {"batch_size": 256, "lr": 3e-4, "epochs": 1, "precision": "auto", "compile": True},
    "bertbase_b256_bf16": {
        "batch_size": 256,
        "lr": 1e-4,
        "epochs": 1,
        "precision": "auto",
        "bert_base": True,
    },
}


def bert_base_folder(tokenizer_source: str, out: str) -> str:
    """A BERT-base-sized model folder (12 layers, d=768) with random weights and the bundled tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    BertModel(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--smoke", action="store_true", help="256 sentences on the CPU: check the script")
    parser.add_argument("--out-dir")
    args = parser.parse_args(argv)

    from finetuner.modeling import resolve_model

    device = "cpu" if args.smoke else "cuda"
    train_data = load_sst2("train")
    dev_data = load_sst2("dev")
    if args.smoke:
        train_data, dev_data = subset(train_data, 256), subset(dev_data, 64)
    model_path = resolve_model(args.model)
    results: dict = {"bench": "gpu_speed", "device": device, "machine": machine(device), "variants": {}}
    with tempfile.TemporaryDirectory(prefix="bert-base-") as scratch:
        for name in args.variants.split(","):
            settings = dict(VARIANTS[name])
            model = bert_base_folder(model_path, scratch) if settings.pop("bert_base", False) else model_path
            data = subset(train_data, 20_000) if model != model_path and not args.smoke else train_data
            if args.smoke:
                settings["epochs"] = 1
            log(f"{name}: {settings}, {len(data)} sentences")
            try:
                run = run_ours(
                    "sequence",
                    data,
                    {"dev": dev_data},
                    log=lambda m: None,
                    model=model,
                    device=device,
                    pooling="mean",
                    **settings,
                )
            except Exception as exc:  # noqa: BLE001 - one failing lever must not lose the others' figures
                log(f"{name}: FAILED {type(exc).__name__}: {exc}")
                results["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            reached = [h["train_s"] for h in run["history"] if h.get("accuracy", 0) >= TARGET]
            row = {
                "settings": settings,
                "n_train": len(data),
                "ex_per_s": run["ex_per_s"],
                "train_s": run["train_s"],
                "wall_s": run["wall_s"],
                "accuracy_per_epoch": [h.get("accuracy") for h in run["history"]],
                "train_s_per_epoch": [h["train_s"] for h in run["history"]],
                "time_to_target_s": reached[0] if reached else None,
            }
            results["variants"][name] = row
            log(
                f"{name}: {row['ex_per_s'] or 0:.0f} ex/s, accuracy per epoch {row['accuracy_per_epoch']}, "
                f"time to {TARGET:.1%}: {row['time_to_target_s']}"
            )
            write_json("gpu_speed", results, args.out_dir)
    results["elapsed_s"] = elapsed()
    write_json("gpu_speed", results, args.out_dir)
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, default=str), flush=True)
    return results


if __name__ == "__main__":
    main()
