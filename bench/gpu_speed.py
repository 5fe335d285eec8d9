"""GPU levers for the engine, one at a time, and the sweeps behind its defaults (issue 6).

Every variant runs in this one process on the same card, so rows compare directly. Groups:
- speed (1 epoch of full SST-2): ``b256_bf16_eager`` (no CUDA graphs: the previous engine), ``b256_bf16`` and
  ``b256_fp32`` (graphs, the default on CUDA), ``b32_bf16`` (the Trainer recipe's batch size), ``bertbase_b256_bf16``
  (a BERT-base-sized config, random weights: speed only), ``b256_bf16_compile`` (torch.compile instead of graphs);
- time to 89.5% SST-2 dev accuracy: ``tta_*`` (batch size and lr pairs, evaluated every epoch);
- defaults: ``def_*`` (batch 32, the candidate learning rates) on SST-2, and the same lr on MRPC (cross-encoder) and
  CoNLL-2003, since a default must hold on all three.

    python bench/gpu_speed.py [--model DIR] [--variants b256_bf16,b256_fp32] [--no-graphs] [--smoke]

``--smoke`` runs every variant on 256 examples on the CPU, to check the script before a GPU session.
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

from common import elapsed, epoch_seconds, log, machine, write_json  # noqa: E402
from data import load_conll, load_mrpc, load_sst2, subset  # noqa: E402
from ours import run_ours  # noqa: E402

TARGET = 0.895
FAST = {"precision": "auto", "epochs": 1}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
EQUIV = {
    "n_train": 4096,
    "batch_size": 64,
    "lr": 5e-5,
    "epochs": 2,
    "precision": "bf16",
    "classifier_dropout": 0.0,
}
EQUIV["model_overrides"] = NO_DROPOUT
VARIANTS = {
    # speed
    "b256_bf16_eager": {**FAST, "batch_size": 256, "lr": 3e-4, "cuda_graphs": False},
    "b256_bf16": {**FAST, "batch_size": 256, "lr": 3e-4},
    "b256_fp32": {**FAST, "batch_size": 256, "lr": 3e-4, "precision": "fp32"},
    "b32_bf16": {**FAST, "batch_size": 32, "lr": 5e-5},
    "bertbase_b256_bf16": {**FAST, "batch_size": 256, "lr": 1e-4, "bert_base": True},
    "bertbase_b256_bf16_eager": {
        **FAST,
        "batch_size": 256,
        "lr": 1e-4,
        "bert_base": True,
        "cuda_graphs": False,
    },
    "b256_bf16_compile": {**FAST, "batch_size": 256, "lr": 3e-4, "compile": True},
    # steady state: later epochs replay graphs captured in the first
    "b256_bf16_eager_e3": {"batch_size": 256, "lr": 3e-4, "cuda_graphs": False},
    "bertbase_b256_bf16_e3": {"batch_size": 256, "lr": 1e-4, "bert_base": True},
    "bertbase_b256_bf16_eager_e3": {"batch_size": 256, "lr": 1e-4, "bert_base": True, "cuda_graphs": False},
    # graphs vs eager on BERT-base size: no dropout, so both runs should give the same losses
    "equiv_bertbase_graphs": {**EQUIV, "bert_base": True},
    "equiv_bertbase_eager": {**EQUIV, "bert_base": True, "cuda_graphs": False},
    # time to accuracy
    "tta_b64_lr1e-4": {"batch_size": 64, "lr": 1e-4, "epochs": 2},
    "tta_b128_lr2e-4": {"batch_size": 128, "lr": 2e-4, "epochs": 2},
    "tta_b256_lr3e-4": {"batch_size": 256, "lr": 3e-4, "epochs": 3},
    # default candidates (batch 32, 3 epochs: the app's)
    "def_lr1e-4": {"lr": 1e-4},
    "def_lr5e-5": {"lr": 5e-5},
    "def_lr3e-5": {"lr": 3e-5},
    "def_lr5e-5_e5": {"lr": 5e-5, "epochs": 5},
    "def_lr5e-5_e2": {"lr": 5e-5, "epochs": 2},
    "def_lr5e-5_seed1": {"lr": 5e-5, "seed": 1},
    "def_lr3e-5_e2": {"lr": 3e-5, "epochs": 2},
    "def_lr5e-5_cls": {"lr": 5e-5, "pooling": "cls"},
    "def_lr1e-4_e1": {"lr": 1e-4, "epochs": 1},
    "def_b128_lr1e-4": {"batch_size": 128, "lr": 1e-4},
    "def_lr5e-5_warmup10": {"lr": 5e-5, "warmup": 0.1},
    "def_lr5e-5_seed7": {"lr": 5e-5, "seed": 7},
    "def_lr1e-4_seed7": {"lr": 1e-4, "seed": 7},
    "mrpc_lr1e-4": {"data": "mrpc", "lr": 1e-4},
    "conll_lr1e-4": {"data": "conll", "lr": 1e-4},
    "mrpc_lr5e-5": {"data": "mrpc", "lr": 5e-5},
    "mrpc_lr3e-5": {"data": "mrpc", "lr": 3e-5},
    "conll_lr5e-5": {"data": "conll", "lr": 5e-5},
    "conll_lr3e-5": {"data": "conll", "lr": 3e-5},
}
DATA = {
    "sst2": ("sequence", lambda: (load_sst2("train"), load_sst2("dev"))),
    "mrpc": ("pair", lambda: (load_mrpc("train"), load_mrpc("dev"))),
    "conll": ("token", lambda: (load_conll("train"), load_conll("valid"))),
}


def bert_base_folder(tokenizer_source: str, out: str) -> str:
    """A BERT-base-sized model folder (12 layers, d=768) with random weights and the bundled tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    BertModel(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(out)
    return out


def _per_epoch_rate(history: list[dict], n_train: int) -> list[float]:
    """Examples/s of each epoch on its own (epoch 1 pays the graph captures; later epochs replay them)."""
    return [n_train / s if s > 0 else None for s in epoch_seconds(history)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--smoke", action="store_true", help="256 examples on the CPU: check the script")
    parser.add_argument("--no-graphs", action="store_true", help="every variant without CUDA graphs")
    parser.add_argument("--out-dir")
    parser.add_argument("--name", default="gpu_speed", help="JSON file name (one per group of variants)")
    args = parser.parse_args(argv)

    from finetuner.modeling import resolve_model

    device = "cpu" if args.smoke else "cuda"
    model_path = resolve_model(args.model)
    results: dict = {"bench": "gpu_speed", "device": device, "machine": machine(device), "variants": {}}
    loaded: dict = {}
    bert_base = None
    with tempfile.TemporaryDirectory(prefix="bert-base-") as scratch:
        for name in args.variants.split(","):
            settings = dict(VARIANTS[name])
            key = settings.pop("data", "sst2")
            task, load = DATA[key]
            if key not in loaded:
                loaded[key] = load()
            train_data, dev_data = loaded[key]
            model = model_path
            if settings.pop("bert_base", False):
                bert_base = bert_base or bert_base_folder(model_path, scratch)
                model = bert_base
            if "n_train" in settings:
                train_data = subset(train_data, settings.pop("n_train"))
            elif model != model_path and not args.smoke:
                train_data = subset(train_data, 20_000)
            if args.smoke:
                train_data, dev_data = subset(train_data, 256), subset(dev_data, 64)
                settings["epochs"] = 1
            if args.no_graphs:
                settings["cuda_graphs"] = False
            log(f"{name}: {settings}, {key} {len(train_data)} train")
            try:
                run = run_ours(
                    task,
                    train_data,
                    {"dev": dev_data},
                    log=lambda m: None,
                    model=model,
                    device=device,
                    **settings,
                )
            except Exception as exc:  # noqa: BLE001 - one failing lever must not lose the others' figures
                log(f"{name}: FAILED {type(exc).__name__}: {exc}")
                results["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                write_json(args.name, results, args.out_dir)
                continue
            reached = [h for h in run["history"] if key == "sst2" and h.get("accuracy", 0) >= TARGET]
            row = {
                "settings": settings,
                "data": key,
                "n_train": len(train_data),
                "ex_per_s": run["ex_per_s"],
                "train_s": run["train_s"],
                "wall_s": run["wall_s"],
                "kept_epoch": run["kept_epoch"],
                "kept": run["metrics"].get("dev"),
                # one entry per evaluation: several an epoch from 20,000 examples (eval_epochs says where)
                "eval_epochs": [h["epoch"] for h in run["history"]],
                "accuracy_per_epoch": [h.get("accuracy") for h in run["history"]],
                "f1_per_epoch": [h.get("f1") for h in run["history"]],
                "loss_per_epoch": [h["loss"] for h in run["history"]],
                "train_s_per_epoch": [h["train_s"] for h in run["history"]],
                "ex_per_s_by_epoch": _per_epoch_rate(run["history"], len(train_data)),
                "wall_s_per_epoch": [h["wall_s"] for h in run["history"]],
                "time_to_target_s": reached[0]["train_s"] if reached else None,
                "time_to_target_wall_s": reached[0]["wall_s"] if reached else None,
            }
            results["variants"][name] = row
            log(
                f"{name}: {row['ex_per_s'] or 0:.0f} ex/s, kept {row['kept']} (epoch {row['kept_epoch']}), "
                f"acc/epoch {row['accuracy_per_epoch']}, f1/epoch {row['f1_per_epoch']}, "
                f"time to {TARGET:.1%}: {row['time_to_target_s']} (wall {row['time_to_target_wall_s']})"
            )
            write_json(args.name, results, args.out_dir)
    results["elapsed_s"] = elapsed()
    write_json(args.name, results, args.out_dir)
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, default=str), flush=True)
    return results


if __name__ == "__main__":
    main()
