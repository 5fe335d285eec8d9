"""Which part of SetFit's head beats Auto's own on the body Auto tunes (issue 22): normalising, regularising, or data.

One Auto run per seed (bench/few_shot.py's subsets and test sample), then heads fitted on what Auto's head reads
for each text (the tuned encoder's pooled last layer, eval mode), all scored on the same test sample:

- ``own``: the head Auto trained until this probe (head_fit "epochs": AdamW on cached features, held-out eval, refit
  where the eval set is small); Auto now fits ``lr_norm_split`` (and ``lr_norm_all`` where it refits) itself;
- ``lr_norm_all``: SetFit's head, scikit-learn's logistic regression (C=1) on L2-normalised vectors of every example;
- ``lr_norm_split``: the same on Auto's training split only (the 90% it trained on): the data's share of the gap;
- ``lr_raw_all``: C=1 on the raw vectors (no normalising);
- ``lr_raw_matched``: raw vectors at C / mean squared norm (the regularisation the unit vectors get), every example;
- ``lr_norm_C0.1`` / ``lr_norm_C10``: how much the regularisation's strength moves it.

    nice -n 5 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/head_probe.py --sizes 64 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, head_inputs, log, machine  # noqa: E402
from bench.few_shot import eval_sample, score_folder, train_subset  # noqa: E402

HEADS = ("own", "lr_norm_all", "lr_norm_split", "lr_raw_all", "lr_raw_matched", "lr_norm_C0.1", "lr_norm_C10")


def probe(train: list[dict], test: list[dict], seed: int) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from finetuner import Predictor, TrainConfig
    from finetuner import train as ft_train
    from finetuner.training_parts import split_off_eval

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    with tempfile.TemporaryDirectory() as out:
        start = time.process_time()
        # the head Auto trained before it took SetFit's (head_fit "logistic", the probe's lr_norm_* rows)
        ft_train(TrainConfig(task="sequence", output_dir=out, seed=seed, head_fit="epochs"), train)
        cpu = time.process_time() - start
        row = {"cpu_s": cpu, "own": score_folder("sequence", out, test)["accuracy"]}
        predictor = Predictor.load(out)
        vectors = head_inputs(predictor, [ex["text"] for ex in train])[1]
        raw = {ex["text"]: v for ex, v in zip(train, vectors, strict=True)}
        x_test = head_inputs(predictor, [ex["text"] for ex in test])[1]
    split, _ = split_off_eval(
        train, 0.1, seed, "sequence"
    )  # TrainConfig's eval_split and seed: Auto's own split
    gold = np.array([str(ex["label"]) for ex in test])

    def fit(examples: list[dict], c: float, normalise: bool) -> float:
        x = np.stack([raw[ex["text"]] for ex in examples])
        clf = LogisticRegression(C=c, max_iter=1000).fit(
            unit(x) if normalise else x, [str(ex["label"]) for ex in examples]
        )
        return float((clf.predict(unit(x_test) if normalise else x_test) == gold).mean())

    all_x = np.stack(list(raw.values()))
    mean_sq = float((all_x**2).sum(axis=1).mean())
    row.update(
        {
            "lr_norm_all": fit(train, 1.0, True),
            "lr_norm_split": fit(split, 1.0, True),
            "lr_raw_all": fit(train, 1.0, False),
            "lr_raw_matched": fit(train, 1.0 / mean_sq, False),
            "lr_norm_C0.1": fit(train, 0.1, True),
            "lr_norm_C10": fit(train, 10.0, True),
            "mean_norm": float(np.sqrt(mean_sq)),
        }
    )
    return row


def probe_cli(description: str, probe, columns: list[str], default_runs: Path) -> None:
    """The probes' command line: ``probe(train, test, seed)`` for each size and seed of SST-2 (bench/few_shot.py's
    subsets and 500-sentence test sample), a JSON line a run, then a table of the five-seed means of ``columns``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--sizes", default="64,256")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--runs", default=str(default_runs))
    p.add_argument("--summary", action="store_true")
    args = p.parse_args()
    runs = Path(args.runs)
    if not args.summary:
        runs.parent.mkdir(parents=True, exist_ok=True)
        log(json.dumps(machine("cpu")))
        test = eval_sample("sst2", 500)
        for size in map(int, args.sizes.split(",")):
            for seed in map(int, args.seeds.split(",")):
                row = {"size": size, "seed": seed, **probe(train_subset("sst2", size, seed), test, seed)}
                with runs.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                log(json.dumps(row))
    rows = [json.loads(line) for line in runs.read_text().splitlines()]
    print("| per class | seeds | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for size in sorted({r["size"] for r in rows}):
        rs = [r for r in rows if r["size"] == size]
        cells = [f"{100 * statistics.mean(r[h] for r in rs):.1f}" for h in columns]
        print(f"| {size} | {len(rs)} | " + " | ".join(cells) + " |")


def main() -> None:
    probe_cli(__doc__.split("\n")[0], probe, list(HEADS), OUT_DIR / "head_probe.jsonl")


if __name__ == "__main__":
    main()
