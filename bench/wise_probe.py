"""Does a mix of the pretrained and the contrastive-tuned encoder read SST-2 better than the tuned one (issue 22)?

WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models") averages a model's weights before and after
fine-tuning, ``(1 - a) * pretrained + a * tuned``, and found the mix above either end on held-out data at no training
cost. Here: one Auto run per seed (bench/few_shot.py's subsets and test sample; SST-2 from 64 a class is the
contrastive step plus SetFit's head), then for each ``a`` the encoder's weights are mixed, every training example and
the test sample are encoded, and SetFit's head (a logistic regression, C=1, on unit-length vectors of every training
example) is fitted and scored. ``a = 1`` is the tuned encoder itself, so each row compares the mixes on one run.

    nice -n 5 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/wise_probe.py --sizes 64 --seeds 0,1
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

MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)


def probe(train: list[dict], test: list[dict], seed: int) -> dict:
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel

    from finetuner import Predictor, TrainConfig, modeling
    from finetuner import train as ft_train

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    gold = np.array([str(ex["label"]) for ex in test])
    labels = [str(ex["label"]) for ex in train]
    with tempfile.TemporaryDirectory() as out:
        start = time.process_time()
        ft_train(TrainConfig(task="sequence", output_dir=out, seed=seed), train)
        row = {"cpu_s": time.process_time() - start, "auto": score_folder("sequence", out, test)["accuracy"]}
        predictor = Predictor.load(out)
    encoder = modeling.encoder_of(predictor.model)
    tuned = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    pretrained = AutoModel.from_pretrained(modeling.resolve_model("")).state_dict()
    missing = sorted(set(tuned) - set(pretrained))
    if missing:
        raise SystemExit(f"the saved encoder has weights the pretrained one lacks: {missing[:3]}")
    for a in MIXES:
        mixed = {
            k: (1 - a) * pretrained[k].to(v.dtype) + a * v if v.is_floating_point() else v
            for k, v in tuned.items()
        }
        with torch.no_grad():
            encoder.load_state_dict(mixed)
        x_train = unit(head_inputs(predictor, [ex["text"] for ex in train])[1])
        x_test = unit(head_inputs(predictor, [ex["text"] for ex in test])[1])
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, labels)
        row[f"mix_{a:g}"] = float((clf.predict(x_test) == gold).mean())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="64,256")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--runs", default=str(OUT_DIR / "wise_probe.jsonl"))
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
    heads = ["auto"] + [f"mix_{a:g}" for a in MIXES]
    print("| per class | seeds | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for size in sorted({r["size"] for r in rows}):
        rs = [r for r in rows if r["size"] == size]
        cells = [f"{100 * statistics.mean(r[h] for r in rs):.1f}" for h in heads]
        print(f"| {size} | {len(rs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
