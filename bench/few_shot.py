"""Small data: Auto (nothing set) against SetFit, the Hugging Face Trainer recipe and a tuned oracle (issue 22).

Every side trains on the same seeded subsets (k examples per class for sequence / pair, n sentences for token) and
is scored on the same seeded sample of the dev/test split. Each run is appended to a JSON-lines file as it ends, so
the script can be stopped and re-run: finished runs are skipped. ``--summary`` prints the tables and a last line of
JSON from that file.

    nohup nice -n 5 .venv/bin/python bench/few_shot.py --datasets sst2,reli --sizes 8,16,32,64 > few_shot.log &
    .venv/bin/python bench/few_shot.py --summary

Sides:
- ``auto``: finetuner.train with TrainConfig(task, output_dir) and nothing else set (10% held out, as in the app).
- ``setfit``: SetFit 1.2 (bench/requirements.txt), its default TrainingArguments on the same bundled MiniLM body;
  ``--setfit-max-steps`` caps its contrastive steps where its pairs (growing with the square of the data) are out of
  reach on this CPU. Pairs are given as "text [SEP] text_pair". Not run for token tasks.
- ``contrastive``: ``auto`` plus ``contrastive_steps`` (finetuner/contrastive.py: SetFit's pair tuning of the
  encoder before the head, at most ``--contrastive-steps`` steps of 16 pairs). Not run for token tasks.
  ``contrastive_last``: the same with the head on the last layer only (feature_layers 1), the layer the step tunes.
- ``full``, ``full_lr3e-4``, ``full_lr3e-4_cw``: Auto's fine-tuning recipe (full mode, >= auto.FULL_MIN_STEPS steps)
  at sizes where Auto may pick the frozen head, at lr 1e-4, 3e-4, and 3e-4 with a class-weighted loss (token tasks:
  each tag weighted by its rarity). ``full_lr3e-4_cw_200steps``: the last with >= 200 steps (twice the epochs).
- ``auto_logreg``: ``auto``, then SetFit's head (logistic regression on L2-normalised vectors of all training
  examples) on the body it saved; the row also holds Auto's own head from the same run (``head_accuracy``).
  ``auto_logreg_200steps``: the same with the contrastive step's 200 steps (SetFit's capped count here).
- ``hf``: bench/reference.py's Trainer recipe (lr 5e-5, batch 32, 3 epochs).
- ``oracle``: the best test score over a small grid (a ceiling, not a fair opponent): the engine's full fine-tuning
  at lr in ORACLE_FULL_LRS, and its frozen head at lr in ORACLE_FROZEN_LRS, each scored on the test sample after
  every epoch (so the grid's epochs axis is every epoch up to the run's last).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, head_inputs, log, machine  # noqa: E402
from bench.data import LOADERS, per_class  # noqa: E402

TASKS = {"sst2": "sequence", "reli": "sequence", "mrpc": "pair", "assin": "pair", "conll": "token",
         "lener": "token"}  # fmt: skip
SPLITS = {"sst2": ("train", "dev"), "reli": ("train", "test"), "mrpc": ("train", "test"),
          "assin": ("train", "test"), "conll": ("train", "test"), "lener": ("train", "test")}  # fmt: skip
ORACLE_FULL_LRS = (1e-4, 3e-4)
ORACLE_FULL_EPOCHS = 8  # per-epoch test scores: 1..8
ORACLE_FROZEN_LRS = (3e-3, 1e-2)
ORACLE_FROZEN_STEPS = 600
RUNS = OUT_DIR / "few_shot_runs.jsonl"
# ~one pass over 32 a class's pairs (106 steps); a step costs ~1.1 CPU s on SST-2 sentences, ~2.5 on ReLi reviews
CONTRASTIVE_STEPS = 100
# the head on Auto's features (the last 4 layers), or on the last layer alone: the one the contrastive loss shapes,
# as SetFit's head reads it
# Auto with one setting changed: the encoder reads up to 256 tokens (the bundled MiniLM's trained limit) for long
# texts; Auto without its contrastive step (what it ran before the sixth session); Auto with the step's size range
# (auto.CONTRASTIVE_UNTIL: 256 training examples until the eighth session, now 500) raised to 1,000; the step's ~128
# steps (what its budget buys at 256 SST-2 sentences a class), then the whole model fine-tuned, not a frozen head;
# Auto with its head trained again on the training and eval examples together at any eval size (auto.MIN_EVAL_TO_SELECT);
# Auto with nothing held out (SetFit has no eval split), its contrastive step up to 1,000 training examples;
# Auto with the contrastive step's lr doubled (SetFit's 2e-5 is set for its 200 capped steps; Auto's budget buys ~130);
# Auto with the head it trained before SetFit's (epochs of AdamW on the cached features, not the logistic regression);
# Auto with its step tuning only the top 4 of MiniLM's 6 layers (0.59x a step in bench/step_cost.py: no backward
# or AdamW for the embeddings and the two lower layers), at a budget that buys SST-2 the 200-step cap (90 s: ~130)
AUTO_SIDES = {"auto": {}, "auto_len256": {"max_length": 256}, "auto_no_contrastive": {"contrastive_steps": 0},
              "auto_contrastive_to_1000": {"contrastive_until": 1000},
              "contrastive_then_full": {"mode": "full", "contrastive_steps": 128},
              "auto_refit": {"refit": True}, "auto_no_eval": {"eval_split": 0.0, "contrastive_until": 1000},
              "auto_contrastive_lr4e-5": {"contrastive_lr": 4e-5}, "auto_epochs_head": {"head_fit": "epochs"},
              "auto_step_top4_200": {"contrastive_layers": 4, "contrastive_budget_s": 145.0}}  # fmt: skip
# SetFit's head on Auto's body: as Auto tunes it, or with the step's 200 steps (SetFit's capped count here) in
# place of the ~130 its 90 s budget buys: the two levers that each gained 0.2-0.8 at 64 / 256 a class, together
LOGREG_SIDES = {"auto_logreg": {}, "auto_logreg_200steps": {"contrastive_steps": 200, "feature_layers": 1}}
CONTRASTIVE_SIDES = {"contrastive": {}, "contrastive_last": {"feature_layers": 1}}
# Auto's fine-tuning recipe (full mode, >= auto.FULL_MIN_STEPS steps) forced below the size where Auto picks it, at
# the mode's lr (1e-4) or the oracle's usual pick (3e-4): the token lever of issue 22
# "_cw": each tag's loss weighted by its rarity (class_weight), Auto's guard against predicting O everywhere
FULL_SIDES = {"full": {}, "full_cw": {"class_weight": True}, "full_lr3e-4": {"lr": 3e-4},
              "full_lr3e-4_cw": {"lr": 3e-4, "class_weight": True},
              "full_lr3e-4_cw_200steps": {"lr": 3e-4, "class_weight": True, "min_steps": 200},
              "full_200steps": {"min_steps": 200}}  # fmt: skip


def metric_names(task: str) -> tuple[str, str]:
    return ("f1", "f1") if task == "token" else ("accuracy", "macro_f1")


def train_subset(name: str, size: int, seed: int) -> list[dict]:
    data = LOADERS[name](SPLITS[name][0])
    if TASKS[name] == "token":
        return random.Random(seed).sample(data, size)
    return per_class(data, size, seed)


def eval_sample(name: str, n: int) -> list[dict]:
    data = LOADERS[name](SPLITS[name][1])
    return data if n <= 0 or n >= len(data) else random.Random(12345).sample(data, n)


def scores(task: str, metrics: dict) -> dict:
    """The two reported figures: accuracy and macro-F1 (sequence, pair), entity F1 and its per-type F1 (token)."""
    if task == "token":
        per_type = {k: [round(v["f1"], 4), v["support"]] for k, v in metrics.get("per_class", {}).items()}
        return {"f1": metrics["f1"], "per_type": per_type}  # type -> [F1, entities in the test sample]
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def run_auto(
    task: str,
    train: list[dict],
    test: list[dict],
    seed: int,
    contrastive_until: int | None = None,
    contrastive_lr: float | None = None,
    contrastive_layers: int | None = None,
    contrastive_budget_s: float | None = None,
    **settings,
) -> dict:
    from finetuner import TrainConfig, auto, contrastive
    from finetuner import train as ft_train
    from finetuner.modeling import META_FILE

    kept = auto.CONTRASTIVE_UNTIL, contrastive.LR, contrastive.TUNED_LAYERS, auto.CONTRASTIVE_BUDGET_S
    with tempfile.TemporaryDirectory() as out:
        start = time.process_time()
        try:
            auto.CONTRASTIVE_UNTIL = contrastive_until or kept[0]
            contrastive.LR = contrastive_lr or kept[1]
            contrastive.TUNED_LAYERS = contrastive_layers or kept[2]
            auto.CONTRASTIVE_BUDGET_S = contrastive_budget_s or kept[3]
            ft_train(TrainConfig(task=task, output_dir=out, seed=seed, **settings), train)
        finally:
            auto.CONTRASTIVE_UNTIL, contrastive.LR, contrastive.TUNED_LAYERS, auto.CONTRASTIVE_BUDGET_S = kept
        cpu = time.process_time() - start
        picked = json.loads(Path(out, META_FILE).read_text())["config"]
        metrics = score_folder(task, out, test)
    return {**scores(task, metrics), "cpu_s": cpu, "choice": picked.get("auto_choice")}


def run_auto_logreg(task: str, train: list[dict], test: list[dict], seed: int, **settings) -> dict:
    """Auto (with ``settings``), then SetFit's head on the body Auto saved: scikit-learn's logistic regression (C=1)
    on the L2-normalised pooled vectors of every training example (SetFit's head, which has no eval split), against
    Auto's own head from the same run (``head_*``). Sequence tasks only."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from finetuner import Predictor, TrainConfig
    from finetuner import train as ft_train
    from finetuner.modeling import META_FILE

    def vectors(predictor, texts: list[str]) -> np.ndarray:
        unit = head_inputs(predictor, texts)[1]
        return unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)

    with tempfile.TemporaryDirectory() as out:
        start = time.process_time()
        ft_train(TrainConfig(task=task, output_dir=out, seed=seed, **settings), train)
        cpu = time.process_time() - start
        head = scores(task, score_folder(task, out, test))
        picked = json.loads(Path(out, META_FILE).read_text())["config"]
        predictor = Predictor.load(out)
        start = time.process_time()
        clf = LogisticRegression(max_iter=1000).fit(
            vectors(predictor, [ex["text"] for ex in train]), [str(ex["label"]) for ex in train]
        )
        pred = clf.predict(vectors(predictor, [ex["text"] for ex in test]))
        cpu += time.process_time() - start
    gold = [str(ex["label"]) for ex in test]
    return {"accuracy": float(accuracy_score(gold, pred)),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)), "cpu_s": cpu,
            "head_accuracy": head["accuracy"], "head_macro_f1": head["macro_f1"],
            "choice": picked.get("auto_choice")}  # fmt: skip


def score_folder(task: str, folder: str, test: list[dict]) -> dict:
    """The engine's metrics of a saved folder on the test sample. A token model trained on a small sample may never
    have seen a type the test holds (LeNER-Br's LOCAL in 50 sentences): its entities then count as missed, where the
    engine's evaluation refuses the unknown tag."""
    from finetuner import Predictor
    from finetuner.metrics import entity_metrics
    from finetuner.training import evaluate_folder

    if task != "token":
        return evaluate_folder(folder, test)
    predictor = Predictor.load(folder)
    if {tag for ex in test for tag in ex["tags"]} <= set(predictor.labels):
        return evaluate_folder(folder, test)
    pred = [r["tags"] for r in predictor.predict_many([ex["tokens"] for ex in test])]
    return entity_metrics([ex["tags"] for ex in test], pred)


def run_full(task: str, train: list[dict], test: list[dict], seed: int, **settings) -> dict:
    """Auto's fine-tuning recipe on data below its fine-tuning size: full mode, epochs for >= FULL_MIN_STEPS steps."""
    from finetuner import auto

    kept = len(train) - max(1, round(0.1 * len(train)))  # the app's 10% held out
    epochs = auto.epochs_for(kept, 32, settings.pop("min_steps", auto.FULL_MIN_STEPS), auto.FULL_EPOCHS)
    return {**run_auto(task, train, test, seed, mode="full", epochs=epochs, **settings), "epochs": epochs}


def run_contrastive(
    task: str, train: list[dict], test: list[dict], seed: int, max_steps: int, **settings
) -> dict:
    """Auto plus the SetFit-style contrastive step (finetuner/contrastive.py), capped at max_steps of 16 pairs."""
    from finetuner.contrastive import PAIRS_PER_STEP, natural_steps, sample_pairs
    from finetuner.training import split_off_eval

    kept, _ = split_off_eval(train, 0.1, seed, task)  # what train() tunes on: the app's 10% held out
    pairs = sample_pairs([str(ex["label"]) for ex in kept], max_steps * PAIRS_PER_STEP, seed)
    uncapped = natural_steps(len(sample_pairs([str(ex["label"]) for ex in kept], None, seed)))
    r = run_auto(task, train, test, seed, contrastive_steps=max_steps, **settings)
    return {**r, "steps": natural_steps(len(pairs)), "natural_steps": uncapped}


def run_setfit(task: str, train: list[dict], test: list[dict], seed: int, max_steps: int) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.metrics import accuracy_score, f1_score

    from finetuner.modeling import resolve_model

    def text(ex: dict) -> str:
        return ex["text"] if task == "sequence" else f"{ex['text']} [SEP] {ex['text_pair']}"

    from setfit.sampler import ContrastiveDataset

    labels = sorted({str(ex["label"]) for ex in train})
    rows = [{"text": text(ex), "label": labels.index(str(ex["label"]))} for ex in train]
    # SetFit's max_steps is a target, not a cap (it cycles its pairs to reach it): cap its own pair count instead
    pairs = len(ContrastiveDataset([r["text"] for r in rows], [r["label"] for r in rows], None, None,
                                   "oversampling"))  # fmt: skip
    natural = math.ceil(pairs / 16)  # its default batch size
    steps = min(natural, max_steps) if max_steps > 0 else natural
    model = SetFitModel.from_pretrained(resolve_model(""))
    args = TrainingArguments(seed=seed, max_steps=steps, show_progress_bar=False, report_to="none",
                             save_strategy="no", output_dir=tempfile.mkdtemp())  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows))
    start = time.process_time()
    trainer.train()
    cpu = time.process_time() - start
    pred = [int(p) for p in model.predict([text(ex) for ex in test], as_numpy=True)]
    gold = [labels.index(str(ex["label"])) for ex in test]
    macro = f1_score(gold, pred, labels=list(range(len(labels))), average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(gold, pred)), "macro_f1": float(macro), "cpu_s": cpu,
            "steps": steps, "natural_steps": natural}  # fmt: skip


def run_hf(task: str, train: list[dict], test: list[dict], seed: int) -> dict:
    import torch

    from bench.reference import Recipe, run_reference
    from finetuner.modeling import resolve_model

    device = (
        "cuda" if torch.cuda.is_available() else "cpu"
    )  # bench/gpu_run.sh runs the 256-a-class rows on a GPU
    start = time.process_time()
    out = run_reference(task, train, {"test": test}, resolve_model(""), Recipe(seed=seed, eval_each_epoch=False),
                        device=device, log=lambda *_: None)  # fmt: skip
    cpu = time.process_time() - start  # includes the one scoring pass over the test sample
    m = out["metrics"]["test"]
    if task == "token":
        return {"f1": m["f1"], "cpu_s": cpu}
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "cpu_s": cpu}


def run_oracle(task: str, train: list[dict], test: list[dict], seed: int) -> dict:
    """Best (lr, epochs) on the test sample, over full fine-tuning and the frozen head."""
    from finetuner import TrainConfig
    from finetuner import train as ft_train

    main = metric_names(task)[0]
    best, cpu = None, 0.0
    grid = [("full", lr, ORACLE_FULL_EPOCHS, 16) for lr in ORACLE_FULL_LRS]
    steps_per_epoch = math.ceil(len(train) / 32)
    grid += [("frozen", lr, math.ceil(ORACLE_FROZEN_STEPS / steps_per_epoch), 32) for lr in ORACLE_FROZEN_LRS]
    for mode, lr, epochs, batch in grid:
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(task=task, output_dir=out, seed=seed, mode=mode, lr=lr, epochs=epochs,
                              batch_size=batch, feature_layers=1 if mode == "frozen" else None)  # fmt: skip
            start = time.process_time()
            result = ft_train(cfg, train, test)
            cpu += time.process_time() - start
        for h in result.history:
            if best is None or h[main] > best[0][main]:
                best = (h, f"{mode} lr {lr:g} epoch {h['epoch']:g}")
    return {**scores(task, best[0]), "cpu_s": cpu, "picked": best[1]}


def done_keys(path: Path) -> set:
    if not path.exists():
        return set()
    return {
        (r["dataset"], r["size"], r["seed"], r["side"])
        for r in map(json.loads, path.read_text().splitlines())
    }


def bench(args) -> None:
    runs = Path(args.runs)
    runs.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(runs)
    log(json.dumps(machine("cpu")))
    for name in args.datasets.split(","):
        task = TASKS[name]
        sizes = args.token_sizes if task == "token" else args.sizes
        test = eval_sample(name, args.eval_n)
        for size in map(int, sizes.split(",")):
            for seed in map(int, args.seeds.split(",")):
                train = train_subset(name, size, seed)
                for side in args.sides.split(","):
                    if (name, size, seed, side) in done or (side == "setfit" and task == "token"):
                        continue
                    if side == "oracle" and size < args.oracle_from.get(task, 0):
                        continue
                    log(f"{name} size {size} seed {seed} {side} ({len(train)} train, {len(test)} test)")
                    if side in AUTO_SIDES:
                        r = run_auto(task, train, test, seed, **AUTO_SIDES[side])
                    elif side in CONTRASTIVE_SIDES:
                        if task == "token":
                            continue
                        r = run_contrastive(task, train, test, seed, args.contrastive_steps,
                                            **CONTRASTIVE_SIDES[side])  # fmt: skip
                    elif side in FULL_SIDES:
                        r = run_full(task, train, test, seed, **FULL_SIDES[side])
                    elif side in LOGREG_SIDES:
                        r = run_auto_logreg(task, train, test, seed, **LOGREG_SIDES[side])
                    elif side == "setfit":
                        r = run_setfit(task, train, test, seed, args.setfit_max_steps)
                    elif side == "hf":
                        r = run_hf(task, train, test, seed)
                    else:
                        r = run_oracle(task, train, test, seed)
                    row = {"dataset": name, "task": task, "size": size, "seed": seed, "side": side,
                           "n_train": len(train), "n_test": len(test), **r}  # fmt: skip
                    with runs.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    log(json.dumps(row))


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def summary(path: Path = RUNS) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    headline: dict = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        task = TASKS[name]
        a, b = metric_names(task)
        cols = ["entity F1"] if task == "token" else ["accuracy", "macro-F1"]
        print(f"\n### {name} ({task}; test sample {rows[0]['n_test'] if rows else '?'})\n")
        print("| size | side | n | " + " | ".join(cols) + " | CPU s (train) |")
        print("|---|---|---|" + "---|" * len(cols) + "---|")
        for size in sorted({r["size"] for r in rows if r["dataset"] == name}):
            for side in (
                *AUTO_SIDES,
                *LOGREG_SIDES,
                *CONTRASTIVE_SIDES,
                *FULL_SIDES,
                "setfit",
                "hf",
                "oracle",
            ):
                rs = [r for r in rows if r["dataset"] == name and r["size"] == size and r["side"] == side]
                if not rs:
                    continue
                vals = [mean_sd([r[a] for r in rs])] + (
                    [] if task == "token" else [mean_sd([r[b] for r in rs])]
                )
                cpu = statistics.mean(r["cpu_s"] for r in rs)
                print(f"| {size} | {side} | {len(rs)} | " + " | ".join(vals) + f" | {cpu:.0f} |")
                headline[f"{name}/{size}/{side}"] = round(100 * statistics.mean(r[a] for r in rs), 1)
    print(json.dumps(headline))
    return headline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="sst2,reli")
    p.add_argument("--sizes", default="8,16,32,64,256", help="examples per class (sequence, pair)")
    p.add_argument("--token-sizes", default="50,100,200,400", help="sentences (token)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sides", default="auto,setfit,hf,oracle")
    p.add_argument("--eval-n", type=int, default=500, help="test sample size; 0: the whole split")
    p.add_argument("--contrastive-steps", type=int, default=CONTRASTIVE_STEPS,
                   help="cap on the contrastive side's steps of 16 pairs")  # fmt: skip
    p.add_argument("--setfit-max-steps", type=int, default=200, help="cap on SetFit's contrastive steps")
    p.add_argument("--oracle-from", type=json.loads, default={"sequence": 32, "pair": 32, "token": 200},
                   help="smallest size the oracle runs at, per task (its grid is the costliest side)")  # fmt: skip
    p.add_argument("--runs", default=str(RUNS), help="the JSON-lines file of finished runs")
    p.add_argument("--summary", action="store_true", help="print the tables from the runs file and exit")
    args = p.parse_args()
    if not args.summary:
        bench(args)
    summary(Path(args.runs))


if __name__ == "__main__":
    main()
