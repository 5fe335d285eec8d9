"""English MiniLM against the converted multilingual-e5-small on Portuguese (and English) data, in one script.

Same settings and seeds for both models: TrainConfig's defaults for the mode (frozen by default: the CPU is shared),
seed 42, max_length 128, the same seeded subsets. Rows:

- ReLi (pt-BR book reviews, 82% positive): macro-F1 on the test split
- SST-2 pt (PLUE, machine-translated): accuracy on dev
- ASSIN pt-BR (entailment / paraphrase / none, pairs): accuracy on test
- LeNER-Br (legal NER): entity F1 on test
- SST-2 (English): accuracy on dev, what the English side costs

The eval subset is also the set the engine keeps its best epoch on (as the app does with its eval split), for both
models alike. Then training and prediction speed (examples/s, full fine-tuning) of each model on this machine, and
``--prefix``: e5 with its ``query: `` prefix on ReLi and SST-2 pt, against the rows without it.

    python bench/languages.py                     # 500 train / 500 eval per set, frozen, both models
    python bench/languages.py --train 0 --eval 0  # full sets (a GPU's job)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo's finetuner/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import _rows, data_dir, load_assin, load_lener, load_reli, load_sst2, subset  # noqa: E402

from finetuner import Callbacks, TrainConfig, train  # noqa: E402
from finetuner.config import DEFAULT_MODEL, MULTILINGUAL_MODEL  # noqa: E402

PREFIX = "query: "  # e5's prefix for symmetric tasks (its model card): "passage: " is for retrieval documents


def load_sst2_pt(split: str) -> list[dict]:
    """split: "train" or "dev". -> [{"text", "label"}]: PLUE's Portuguese SST-2, row-aligned with sst2/."""
    return [
        {"text": r["sentence"].strip(), "label": r["label"]}
        for r in _rows(data_dir() / "sst2_pt" / f"{split}.tsv")
    ]


# name -> (task, train loader + split, eval loader + split, headline metric)
SETS = {
    "reli": ("sequence", (load_reli, "train"), (load_reli, "test"), "macro_f1"),  # class-weighted: below
    "sst2_pt": ("sequence", (load_sst2_pt, "train"), (load_sst2_pt, "dev"), "accuracy"),
    "assin": ("pair", (load_assin, "train"), (load_assin, "test"), "accuracy"),
    "lener": ("token", (load_lener, "train"), (load_lener, "test"), "f1"),
    "sst2_en": ("sequence", (load_sst2, "train"), (load_sst2, "dev"), "accuracy"),
}


def with_prefix(examples: list[dict], prefix: str) -> list[dict]:
    out = []
    for ex in examples:
        ex = dict(ex)
        ex["text"] = prefix + ex["text"]
        if "text_pair" in ex:
            ex["text_pair"] = prefix + ex["text_pair"]
        out.append(ex)
    return out


def run(model: str, name: str, args, prefix: str = "") -> dict:
    task, (load_train, train_split), (load_eval, eval_split), metric = SETS[name]
    train_data = subset(load_train(train_split), args.train or None, seed=args.seed)
    eval_data = subset(load_eval(eval_split), args.eval or None, seed=args.seed)
    if prefix:
        train_data, eval_data = with_prefix(train_data, prefix), with_prefix(eval_data, prefix)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-languages-") as out:
        config = TrainConfig(
            task=task, output_dir=out, model=model, mode=args.mode, seed=args.seed, max_length=args.max_length,
            class_weight=metric == "macro_f1" or None,  # ReLi is 82% positive: unweighted, both models say "1"
        )  # fmt: skip
        result = train(config, train_data, eval_data)
    return {
        "model": model, "set": name, "prefix": prefix, "metric": metric, "value": result.metrics[metric],
        "accuracy": result.metrics.get("accuracy"), "train": len(train_data), "eval": len(eval_data),
        "mode": args.mode, "class_weight": config.class_weight, "wall_s": round(time.perf_counter() - start, 1), "load_avg": os.getloadavg()[0],
    }  # fmt: skip


def speed(model: str, args) -> dict:
    """Full fine-tuning and prediction examples/s on SST-2 pt sentences (median step; the first step is warm-up)."""
    from finetuner.predict import Predictor

    data = subset(load_sst2_pt("train"), args.speed_n, seed=args.seed)
    rates = []
    with tempfile.TemporaryDirectory(prefix="bench-languages-speed-") as out:
        config = TrainConfig(
            task="sequence", output_dir=out, model=model, mode="full", epochs=1, batch_size=16,
            max_length=64, seed=args.seed, eval_split=0.0, log_every=1,
        )  # fmt: skip
        train(config, data, None, Callbacks(on_step=lambda info: rates.append(info.examples_per_s)))
        predictor = Predictor.load(out)
        texts = [ex["text"] for ex in data]
        predictor.predict_many(texts[:16])  # warm-up
        start = time.perf_counter()
        predictor.predict_many(texts, batch_size=32)
        predict_rate = len(texts) / (time.perf_counter() - start)
    rates = sorted(rates[1:]) or rates
    return {
        "model": model, "train_ex_s": rates[len(rates) // 2], "predict_ex_s": predict_rate,
        "examples": len(data), "load_avg": os.getloadavg()[0],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, MULTILINGUAL_MODEL])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--train", type=int, default=500, help="train examples per set (0: all)")
    p.add_argument("--eval", type=int, default=500, help="eval examples per set (0: all)")
    p.add_argument("--mode", default="frozen")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--speed-n", type=int, default=96, help="sentences for the speed runs (0: skip speed)")
    p.add_argument(
        "--prefix", action="store_true", help="also e5 with the 'query: ' prefix on ReLi and SST-2 pt"
    )
    p.add_argument("--skip-rows", action="store_true", help="only the --prefix and speed runs")
    p.add_argument("--out", default="bench/out/languages.json")
    args = p.parse_args(argv)
    results: dict = {"rows": [], "speed": [], "prefix": [], "args": vars(args)}
    save = lambda: Path(args.out).write_text(json.dumps(results, indent=2))  # noqa: E731 - after every run
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for name in [] if args.skip_rows else args.sets:
        for model in args.models:
            results["rows"].append(run(model, name, args))
            print(json.dumps(results["rows"][-1]), flush=True)
            save()
    if args.prefix:  # against the rows above without it (same data, settings and seed)
        for name in ("reli", "sst2_pt"):
            results["prefix"].append(run(MULTILINGUAL_MODEL, name, args, PREFIX))
            print(json.dumps(results["prefix"][-1]), flush=True)
            save()
    if args.speed_n:
        for model in args.models:
            results["speed"].append(speed(model, args))
            print(json.dumps(results["speed"][-1]), flush=True)
            save()
    print_table(results)
    headline = {r["set"]: {} for r in results["rows"]}
    for r in results["rows"]:
        headline[r["set"]][r["model"]] = round(r["value"], 4)
    speeds = {s["model"]: [round(s["train_ex_s"], 2), round(s["predict_ex_s"], 2)] for s in results["speed"]}
    print(json.dumps({"rows": headline, "train_predict_ex_s": speeds, "prefix": results["prefix"]}))
    return results


def print_table(results: dict) -> None:
    rows = results["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("\n| set | metric | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for name in dict.fromkeys(r["set"] for r in rows):
        got = {r["model"]: r for r in rows if r["set"] == name}
        metric = next(iter(got.values()))["metric"]
        print(
            f"| {name} | {metric} | "
            + " | ".join(f"{got[m]['value']:.4f}" if m in got else "-" for m in models)
            + " |"
        )
    for s in results["speed"]:
        print(f"speed {s['model']}: train {s['train_ex_s']:.1f} ex/s, predict {s['predict_ex_s']:.1f} ex/s "
              f"(load {s['load_avg']:.1f})")  # fmt: skip
    for r in results["prefix"]:
        print(f"prefix {r['set']} {r['prefix']!r}: {r['metric']} {r['value']:.4f}")


if __name__ == "__main__":
    main()
