"""Batch prediction rows/s on the CPU: Finetuner's file path vs `transformers.pipeline` on the same file.

    .venv/bin/python bench/predict_speed.py                  # trains a frozen SST-2 model first (~1 min)
    .venv/bin/python bench/predict_speed.py --model DIR      # any saved sequence model folder

Both sides predict every sentence of SST-2 `dev.tsv` with the same model folder, batch size and max length.
Ours is the whole path a job takes (read the file, predict, write the file with the prediction columns); the
pipeline gets the texts already in a list, so any ratio above 1 is the predictor, not the I/O.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import log, machine, write_json  # noqa: E402

SST2 = Path("/work/shared/data/sst2")
TRAIN_ROWS = 512  # enough for a model that predicts both classes; speed does not depend on its accuracy


def trained_model(folder: Path) -> str:
    from finetuner import TrainConfig, train
    from storage.io import read_examples

    rows = read_examples(SST2 / "train.tsv", "sequence")[:TRAIN_ROWS]
    config = TrainConfig(task="sequence", output_dir=str(folder), mode="frozen", eval_split=0.0, seed=0)
    return str(train(config, rows).output_dir)


def ours(model: str, src: Path, out: Path, batch_size: int) -> float:
    from finetuner.batch_predict import predict_rows
    from finetuner.predict import Predictor
    from storage import predict_files

    start = time.perf_counter()
    predictor = Predictor(model)  # not .load: its cache would skip the loading the pipeline side pays
    table = predict_files.read_inputs(src, "sequence")
    rows = predict_rows(predictor, table.inputs, batch_size=batch_size)
    predict_files.write_predictions(predict_files.with_predictions(table.df, rows), out)
    return time.perf_counter() - start


def reference(model: str, texts: list[str], batch_size: int, max_length: int) -> float:
    from transformers import pipeline

    start = time.perf_counter()
    classify = pipeline("text-classification", model=model, trust_remote_code=True, device="cpu")
    classify(texts, batch_size=batch_size, truncation=True, max_length=max_length, top_k=None)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a saved sequence model folder (default: train one on SST-2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="runs per side, alternating; the best is kept")
    args = p.parse_args()
    import pandas as pd
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or trained_model(tmp / "model")
        max_length = json.loads((Path(model) / "finetuner.json").read_text()).get("max_length", 128)
        src = SST2 / "dev.tsv"
        texts = list(pd.read_csv(src, sep="\t", quoting=3, dtype=str)["sentence"])
        log(
            f"{len(texts)} rows, batch {args.batch_size}, max length {max_length}, {torch.get_num_threads()} threads"
        )
        times = {"finetuner": [], "pipeline": []}
        for _ in range(args.repeats):  # alternating: a noisy neighbour slows both sides alike
            times["finetuner"].append(ours(model, src, tmp / "out.tsv", args.batch_size))
            times["pipeline"].append(reference(model, texts, args.batch_size, max_length))
            log(f"finetuner {times['finetuner'][-1]:.2f} s, pipeline {times['pipeline'][-1]:.2f} s")
    best = {k: min(v) for k, v in times.items()}
    result = {
        "rows": len(texts),
        "batch_size": args.batch_size,
        "seconds": best,
        "rows_per_s": {k: len(texts) / v for k, v in best.items()},
        "ratio": best["pipeline"] / best["finetuner"],
        "machine": machine("cpu"),
    }
    write_json("predict_speed", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
