"""Multi-label (GoEmotions) and score regression (ASSIN PT-BR): the engine's defaults against the Trainer (issue 24).

Two rows, each run on the same seeded data by both sides in this script:

- ``goemotions``: 28 emotions, 1-5 labels a Reddit comment, multi-label over ``sequence`` inputs; test macro-F1
  (and micro-F1, subset accuracy). Published: BERT-base 0.46 test macro-F1 (Demszky et al. 2020, Table 4).
  Train: a seeded sample of ``--train-n`` comments of train.tsv; dev: a fixed sample of ``--dev-n`` of dev.tsv
  (thresholds and the kept evaluation); test: ``--test-n`` of test.tsv (0: all 5,427).
- ``assin``: ASSIN PT-BR similarity (1-5), regression over ``pair`` inputs (cross-encoded); test Pearson (and
  Spearman, RMSE). Published baselines are around 0.6-0.7 Pearson. The release has no dev file: ``--dev-n`` pairs
  of ptbr_train.tsv are held out by a fixed seed, and ``--train-n`` are sampled from the rest; test: ptbr_test.tsv.

Sides:

- ``ours``: finetuner.train(TrainConfig(task, problem, output_dir, seed)) with nothing else set (Auto mode, the
  bundled all-MiniLM-L6-v2, as the app), eval_data = the dev data; the saved folder is scored on the test data by
  finetuner.evaluation.evaluate_folder (which applies the thresholds stored with the model).
- ``hf``: AutoModelForSequenceClassification on the same bundled folder with the same ``problem_type``, trained by
  transformers.Trainer with bench/reference.py's recipe (lr 5e-5, batch 32, 3 epochs, AdamW, linear schedule after
  6% warmup, the last weights). Multi-label is scored twice: at the standard threshold 0.5, and at thresholds tuned
  per label on the dev data by the engine's own function (finetuner.metrics.tune_thresholds: grid 0.05..0.95, each
  label's best F1, ties to the value nearest 0.5, 0.5 for a label with no dev positive). Both sides' figures come
  from finetuner.metrics, so they are computed alike.

Each run is appended to bench/out/multilabel_regression_runs.jsonl as it ends (a run already there is skipped);
``--summary`` prints the markdown tables for BENCHMARKS.md from that file.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/multilabel_regression.py --row goemotions --side both
    .venv/bin/python bench/multilabel_regression.py --summary
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, log, machine  # noqa: E402
from bench.data import _rows, data_dir  # noqa: E402

RUNS = OUT_DIR / "multilabel_regression_runs.jsonl"
HELD_OUT_SEED = 12345  # dev and test samples stay the same whatever --seed: only the training sample moves


@dataclass(frozen=True)
class Row:
    task: str  # input shape
    problem: str
    headline: str  # the metric the tables lead with
    train_n: int  # CPU default, sized so one side of the row runs in ~10 minutes on 2 shared cores
    dev_n: int
    published: str


ROWS = {
    "goemotions": Row("sequence", "multilabel", "macro_f1", train_n=4000, dev_n=2000, published="BERT-base "
                      "(110M, full train set): 0.46 test macro-F1 (Demszky et al. 2020, Table 4)"),
    "assin": Row("pair", "regression", "pearson", train_n=2500, dev_n=500,
                 published="ASSIN PT-BR similarity baselines: about 0.6-0.7 Pearson"),
}  # fmt: skip


def goemotions_labels() -> list[str]:
    """The 28 names of labels.txt, in its order (line i = index i)."""
    return (data_dir() / "goemotions" / "labels.txt").read_text(encoding="utf-8").split()


def load_goemotions(split: str) -> list[dict]:
    """split: "train", "dev" or "test". -> [{"text", "label": [names]}], the indices mapped through labels.txt."""
    names = goemotions_labels()
    with open(data_dir() / "goemotions" / f"{split}.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))  # no header; texts hold quotes
    return [{"text": text, "label": [names[int(i)] for i in labels.split(",")]} for text, labels, _ in rows]


def load_assin_scores(split: str) -> list[dict]:
    """split: "train" or "test" (pt-BR). -> [{"text", "text_pair", "label": similarity 1.0-5.0}]."""
    rows = _rows(data_dir() / "assin" / f"ptbr_{split}.tsv")
    return [
        {"text": r["premise"], "text_pair": r["hypothesis"], "label": float(r["similarity"])} for r in rows
    ]


def _sample(examples: list[dict], n: int, seed: int) -> list[dict]:
    return list(examples) if n <= 0 or n >= len(examples) else random.Random(seed).sample(examples, n)


def row_data(name: str, train_n: int, dev_n: int, test_n: int, seed: int) -> tuple[list, list, list]:
    """(train, dev, test) example dicts of a row: the training sample seeded by seed, dev and test fixed."""
    if name == "goemotions":
        train, dev, test = load_goemotions("train"), load_goemotions("dev"), load_goemotions("test")
    else:
        pool = load_assin_scores("train")
        order = list(range(len(pool)))
        random.Random(HELD_OUT_SEED).shuffle(order)
        dev = [pool[i] for i in order[:dev_n]]
        train = [pool[i] for i in order[dev_n:]]
        test = load_assin_scores("test")
    return (
        _sample(train, train_n, seed),
        _sample(dev, dev_n, HELD_OUT_SEED),
        _sample(test, test_n, HELD_OUT_SEED),
    )


def multi_hot(examples: list[dict], labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    gold = np.zeros((len(examples), len(labels)), dtype=bool)
    for row, ex in enumerate(examples):
        gold[row, [index[name] for name in ex["label"]]] = True
    return gold


def multilabel_scores(probs: np.ndarray, gold: np.ndarray, labels: list[str], thresholds: dict) -> dict:
    """The engine's multi-label metrics (finetuner.metrics) at these thresholds, per-label F1 kept short."""
    from finetuner.metrics import multilabel_metrics

    m = multilabel_metrics(gold.astype(float).tolist(), probs.tolist(), labels, thresholds)
    return {**{k: m[k] for k in ("macro_f1", "micro_f1", "subset_accuracy", "thresholds")},
            "per_label_f1": {k: round(v["f1"], 4) for k, v in m["per_class"].items()}}  # fmt: skip


def _hf_items(examples: list[dict], tokenizer, row: Row, labels: list[str], max_length: int) -> list[dict]:
    pairs = [ex["text_pair"] for ex in examples] if row.task == "pair" else None
    enc = tokenizer([ex["text"] for ex in examples], pairs, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    # the float targets each problem_type's loss reads: multi-hot rows (BCE) or the score (MSE)
    targets = multi_hot(examples, labels).astype(float).tolist() if row.problem == "multilabel" else None
    return [
        {**{k: enc[k][i] for k in keys}, "labels": targets[i] if targets else float(ex["label"])}
        for i, ex in enumerate(examples)
    ]


def run_hf(
    row: Row, labels: list[str], train: list[dict], dev: list[dict], test: list[dict], seed: int, device: str
) -> dict:
    """bench/reference.py's Trainer recipe with problem_type set; multi-label scored at 0.5 and at dev-tuned cuts."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from bench.reference import Recipe, _sampling
    from finetuner.metrics import regression_metrics, tune_thresholds
    from finetuner.modeling import resolve_model

    hf_logging.set_verbosity_error()
    recipe, wall_start = Recipe(seed=seed), time.perf_counter()
    model_path = resolve_model("")
    set_seed(recipe.seed)  # before from_pretrained: the fresh head's init is seeded too
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    problem_type = {"multilabel": "multi_label_classification", "regression": "regression"}[row.problem]
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)}, problem_type=problem_type, dtype=torch.float32,
    )  # fmt: skip
    items = {
        name: _hf_items(exs, tokenizer, row, labels, recipe.max_length)
        for name, exs in (("train", train), ("dev", dev), ("test", test))
    }
    total = math.ceil(len(train) / recipe.batch_size) * recipe.epochs
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as out_dir:
        args = TrainingArguments(
            output_dir=out_dir, per_device_train_batch_size=recipe.batch_size,
            per_device_eval_batch_size=recipe.eval_batch_size, num_train_epochs=recipe.epochs,
            learning_rate=recipe.lr, lr_scheduler_type="linear", warmup_steps=math.ceil(recipe.warmup * total),
            weight_decay=recipe.weight_decay, **_sampling(TrainingArguments, False), eval_strategy="no",
            save_strategy="no", logging_strategy="no", report_to=[], seed=recipe.seed, use_cpu=device == "cpu",
            disable_tqdm=True, dataloader_num_workers=0,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=items["train"],
                          data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        train_start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - train_start
        logits = {name: trainer.predict(items[name]).predictions for name in ("dev", "test")}
    out = {"train_s": train_s, "steps": total, "recipe": recipe.__dict__}
    if row.problem == "regression":
        for name, exs in (("dev", dev), ("test", test)):
            out[name] = regression_metrics([ex["label"] for ex in exs], logits[name].reshape(-1).tolist())
    else:
        # one rule for both sides: the engine's own threshold tuning (finetuner.metrics.tune_thresholds)
        probs = {name: 1 / (1 + np.exp(-logits[name])) for name in logits}
        gold_dev, gold_test = multi_hot(dev, labels), multi_hot(test, labels)
        tuned = tune_thresholds(probs["dev"].tolist(), gold_dev.astype(float).tolist(), labels)
        standard = dict.fromkeys(labels, 0.5)
        out["test"] = multilabel_scores(probs["test"], gold_test, labels, standard)
        out["test_tuned"] = multilabel_scores(probs["test"], gold_test, labels, tuned)
        dev_scores = multilabel_scores(probs["dev"], gold_dev, labels, tuned)
        out["dev_tuned"] = {k: dev_scores[k] for k in ("macro_f1", "micro_f1", "subset_accuracy")}
    return {**out, "wall_s": time.perf_counter() - wall_start}


def run_ours(
    row: Row,
    labels: list[str],
    train: list[dict],
    dev: list[dict],
    test: list[dict],
    seed: int,
    settings: dict,
    device: str,
) -> dict:
    """The engine with the app's defaults, or with TrainConfig fields set by hand (a probe: settings); the saved
    folder scored on the test data with its stored thresholds."""
    from finetuner import TrainConfig
    from finetuner import train as ft_train
    from finetuner.modeling import META_FILE
    from finetuner.training import evaluate_folder

    wall_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as out:
        labels_set = labels if row.problem == "multilabel" else None
        config = TrainConfig(row.task, out, problem=row.problem, seed=seed, labels=labels_set, device=device,
                             **settings)  # fmt: skip
        train_start = time.perf_counter()
        result = ft_train(config, train, dev)
        train_s = time.perf_counter() - train_start
        meta = json.loads(Path(out, META_FILE).read_text())
        metrics = evaluate_folder(out, test, device=device)
    keys = (
        ("macro_f1", "micro_f1", "subset_accuracy")
        if row.problem == "multilabel"
        else ("pearson", "spearman", "rmse", "mse")
    )
    test_scores = {k: float(metrics[k]) for k in keys}
    if row.problem == "multilabel":
        test_scores["per_label_f1"] = {k: round(v["f1"], 4) for k, v in metrics["per_class"].items()}
        test_scores["thresholds"] = meta.get("thresholds")
    else:
        test_scores["score_range"] = meta.get("score_range")
    return {
        "train_s": train_s,
        "test": test_scores,
        "dev": {k: result.metrics.get(k) for k in keys},
        "kept_epoch": result.best_epoch,
        "history": [{k: h.get(k) for k in ("epoch", "step", "loss", *keys)} for h in result.history],  # dev
        "auto_choice": meta["config"].get("auto_choice"),
        "config": {
            k: meta["config"].get(k)
            for k in ("mode", "lr", "epochs", "batch_size", "keep_best", "metric_for_best", "evals_per_epoch")
        },
        "wall_s": time.perf_counter() - wall_start,
    }


def run_key(r: dict) -> tuple:
    settings = json.dumps(r.get("settings") or {}, sort_keys=True)
    return r["row"], r["n_train"], r["n_dev"], r["n_test"], r["seed"], r["side"], settings


def read_runs(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def bench(args) -> None:
    from bench.reference import pick_device

    runs = Path(args.runs)
    runs.parent.mkdir(parents=True, exist_ok=True)
    done = {run_key(r) for r in read_runs(runs)}
    device = pick_device(args.device).type
    facts = machine(device)
    log(json.dumps(facts))
    for name in ROWS if args.row == "all" else [args.row]:
        row = ROWS[name]
        train_n = args.train_n if args.train_n is not None else row.train_n
        dev_n = args.dev_n if args.dev_n is not None else row.dev_n
        train, dev, test = row_data(name, train_n, dev_n, args.test_n, args.seed)
        labels = goemotions_labels() if row.problem == "multilabel" else ["score"]
        for side in ("ours", "hf") if args.side == "both" else (args.side,):
            settings = args.ours_settings if side == "ours" else {}
            key = (name, len(train), len(dev), len(test), args.seed, side,
                   json.dumps(settings, sort_keys=True))  # fmt: skip
            if key in done:
                log(f"{name} {side}: already in {runs}, skipped")
                continue
            log(f"{name} {side}: {len(train)} train, {len(dev)} dev, {len(test)} test, seed {args.seed}")
            if side == "ours":
                result = {
                    "settings": settings,
                    **run_ours(row, labels, train, dev, test, args.seed, settings, device),
                }
            else:
                result = run_hf(row, labels, train, dev, test, args.seed, device)
            record = {
                "row": name,
                "task": row.task,
                "problem": row.problem,
                "side": side,
                "seed": args.seed,
                "n_train": len(train),
                "n_dev": len(dev),
                "n_test": len(test),
                **result,
                "machine": facts,
                "command": shlex.join(["python", *sys.argv]),
            }
            with runs.open("a") as f:
                f.write(json.dumps(record) + "\n")
            log(json.dumps({k: record[k] for k in ("row", "side", "wall_s", "test")}))


COLUMNS = {
    "multilabel": (("macro_f1", "macro-F1"), ("micro_f1", "micro-F1"), ("subset_accuracy", "subset acc.")),
    "regression": (("pearson", "Pearson"), ("spearman", "Spearman"), ("rmse", "RMSE")),
}


def _lines(r: dict) -> list[tuple[str, dict]]:
    """(side label, test scores) lines of one run: the Trainer's multi-label run gives two (0.5 and tuned cuts)."""
    if r["side"] == "ours":
        by_hand = ", ".join(f"{k} {v}" for k, v in (r.get("settings") or {}).items())
        mode = f"{by_hand} set by hand" if by_hand else "Auto"
        return [(f"ours ({mode}; thresholds tuned on dev)" if r["problem"] == "multilabel" else f"ours ({mode})",
                 r["test"])]  # fmt: skip
    if r["problem"] == "multilabel":
        return [
            ("HF Trainer, threshold 0.5", r["test"]),
            ("HF Trainer, thresholds tuned on dev", r["test_tuned"]),
        ]
    return [("HF Trainer", r["test"])]


def no_learning(name: str, r: dict) -> tuple[str, dict]:
    """The floor a model that learned nothing from the texts reaches on this run's test data (a table line)."""
    from finetuner.metrics import regression_metrics

    train, _, test = row_data(name, r["n_train"], r["n_dev"], r["n_test"], r["seed"])
    if ROWS[name].problem == "regression":
        mean = float(np.mean([ex["label"] for ex in train]))  # correlations of a constant are reported as 0
        return "no learning: the training mean for every pair", regression_metrics(
            [ex["label"] for ex in test], [mean] * len(test)
        )
    labels = goemotions_labels()
    gold = multi_hot(test, labels)
    every = multilabel_scores(np.ones(gold.shape), gold, labels, dict.fromkeys(labels, 0.5))
    return "no learning: every label for every comment", every


def summary(path: Path = RUNS) -> dict:
    """Markdown tables (one per row) for BENCHMARKS.md, and a last line of JSON with the headline figures."""
    runs, headline = read_runs(path), {}
    for name in dict.fromkeys(r["row"] for r in runs):
        row, rs = ROWS[name], [r for r in runs if r["row"] == name]
        cols = COLUMNS[row.problem]
        print(f"\n### {name} ({row.problem}, {row.task} inputs)\n")
        print(
            "| side | train / dev / test | seed | " + " | ".join(c[1] for c in cols) + " | wall s (train) |"
        )
        print("|---|---|---|" + "---|" * len(cols) + "---|")
        for r in rs:
            for label, scores in _lines(r):
                vals = " | ".join(f"{scores[k]:.4f}" for k, _ in cols)
                sizes = f"{r['n_train']:,} / {r['n_dev']:,} / {r['n_test']:,}"
                print(
                    f"| {label} | {sizes} | {r['seed']} | {vals} | {r['wall_s']:.0f} ({r['train_s']:.0f}) |"
                )
                headline[f"{name}/{r['n_train']}/{r['seed']}/{label}"] = round(scores[row.headline], 4)
        for r in {(r["n_train"], r["n_dev"], r["n_test"], r["seed"]): r for r in rs}.values():
            label, scores = no_learning(name, r)
            vals = " | ".join(f"{scores[k]:.4f}" for k, _ in cols)
            print(
                f"| {label} | {r['n_train']:,} / {r['n_dev']:,} / {r['n_test']:,} | {r['seed']} | {vals} | - |"
            )
        print(f"\nPublished: {row.published}.")
        if row.problem == "multilabel":
            for r in rs:
                for label, scores in _lines(r):
                    print(
                        f"Gap to 0.46, {label}, {r['n_train']:,} train: {scores['macro_f1'] - 0.46:+.3f} macro-F1."
                    )
        for r in rs:
            if r["side"] == "ours":
                picked = r["auto_choice"] or f"set by hand: {r['config']}"
                print(f"Ours, {r['n_train']:,} train: {picked}; kept epoch {r['kept_epoch']}.")
        m = rs[0]["machine"]
        print(
            f"\nMachine: {m['cpu']}, {m['nproc']} cores, {m['torch_threads']} torch thread(s), torch "
            f"{m['torch']}, transformers {m['transformers']}; runs from {min(r['machine']['date'] for r in rs)}."
        )
        for command in dict.fromkeys(r["command"] for r in rs):
            print(f"Command: `{command}`")
    print(json.dumps(headline))
    return headline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--row", choices=[*ROWS, "all"], default="all")
    p.add_argument("--side", choices=("ours", "hf", "both"), default="both")
    p.add_argument("--train-n", type=int, default=None, help="training examples; default: the row's CPU size")
    p.add_argument("--dev-n", type=int, default=None, help="dev examples; default: the row's CPU size")
    p.add_argument("--test-n", type=int, default=0, help="test examples; 0: the whole test split")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (both sides)")
    p.add_argument("--ours-settings", type=json.loads, default={}, help="TrainConfig fields set by hand on our "
                   'side, a probe beside the defaults: e.g. \'{"mode": "frozen"}\'')  # fmt: skip
    p.add_argument("--runs", default=str(RUNS), help="the JSON-lines file of finished runs")
    p.add_argument("--summary", action="store_true", help="print the tables from the runs file and exit")
    args = p.parse_args()
    if not args.summary:
        bench(args)
    summary(Path(args.runs))


if __name__ == "__main__":
    main()
