"""How far the Train tab's estimated time is from the run it estimates, by dataset: tokens/s against examples/s.

For each dataset a seeded sample is fine-tuned (mode full, the engine's loop, this machine's default torch threads)
for a few epochs and timed from the call to the saved folder. Beside the measured seconds, two estimates made
before the run from what the web process knows (counts, and the sample's inputs as `storage.sample_inputs` reads
them):
- tokens: `finetuner.auto.estimate_seconds` today, the bundled tokenizer's mean tokens an example at tokens/s
  constants;
- examples: the previous estimate, 40 examples/s fine-tuning and 150 encoding whatever the texts' length.
Each row reports measured / estimated for both (1.0: exact; above 1: the estimate was short).

    python bench/estimate.py [--epochs 10] [--n 60] [--datasets sst2,conll,lener,reli,mrpc]
    python bench/estimate.py --calibrate   # tokens/s at 16-128 tokens: finetuner.auto's CPU constants

Last line: one JSON object of the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import log, machine  # noqa: E402
from data import load_conll, load_lener, load_mrpc, load_reli, load_sst2, subset  # noqa: E402

from finetuner import auto, token_counts  # noqa: E402
from finetuner.config import TrainConfig  # noqa: E402
from finetuner.training import train  # noqa: E402

DATASETS = {  # name: (task, loader of the training split)
    "sst2": ("sequence", lambda: load_sst2("dev")),  # dev: full sentences (train holds phrases)
    "conll": ("token", lambda: load_conll("train")),
    "lener": ("token", lambda: load_lener("train")),
    "reli": ("sequence", lambda: load_reli("train")),
    "mrpc": ("pair", lambda: load_mrpc("train")),
}
OLD_SPEED = {"encode": 150.0, "full": 40.0}  # examples/s: the estimate before tokens


def inputs(examples: list[dict]) -> list:
    """As storage.sample_inputs: texts, (text, text_pair) tuples, or token sentences."""
    if "tokens" in examples[0]:
        return [e["tokens"] for e in examples]
    return [(e["text"], e["text_pair"]) if e.get("text_pair") else e["text"] for e in examples]


def old_estimate(epochs: int, n_train: int, n_eval: int) -> float:
    return auto.STARTUP_S + epochs * (n_train / OLD_SPEED["full"] + n_eval / OLD_SPEED["encode"])


def calibrate(lengths=(16, 32, 64, 128), batch: int = 32, steps: int = 4) -> list[dict]:
    """Tokens/s of the bundled MiniLM at fixed lengths, fine-tuning (forward, backward, AdamW) and encoding: where
    finetuner.auto's CPU constants come from, and whether cost is linear in tokens (tokens/s flat across lengths)."""
    import torch
    from transformers import AutoModel

    from finetuner.modeling import resolve_model

    model = AutoModel.from_pretrained(resolve_model(""))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rows = []
    for length in lengths:
        ids = torch.randint(1000, 20000, (batch, length))
        mask = torch.ones_like(ids)

        def step(ids=ids, mask=mask):
            model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0].sum().backward()
            optimizer.step()
            optimizer.zero_grad()

        step()  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            step()
        full = batch * steps * length / (time.perf_counter() - start)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
            start = time.perf_counter()
            for _ in range(steps):
                model(input_ids=ids, attention_mask=mask)
            encode = batch * steps * length / (time.perf_counter() - start)
        rows.append({"tokens": length, "full_tokens_s": round(full), "encode_tokens_s": round(encode)})
        log(json.dumps(rows[-1]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--n", type=int, default=60, help="labeled examples a dataset (10%% are held out to evaluate)"
    )
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument(
        "--calibrate", action="store_true", help="only the tokens/s at fixed lengths (calibrate())"
    )
    args = p.parse_args()
    log(json.dumps(machine("cpu")))
    if args.calibrate:
        print(json.dumps(calibrate()))
        return
    rows = []
    for name in args.datasets.split(","):
        task, load = DATASETS[name]
        data = subset(load(), args.n, seed=0)
        n_eval = max(1, round(len(data) * 0.1))
        n_train = len(data) - n_eval
        tokens = token_counts.mean_tokens(inputs(data), batch_size=32)  # as the Train tab, at its batch
        new = auto.estimate_seconds("full", args.epochs, n_train, n_eval, "cpu", None, tokens)[0]
        old = old_estimate(args.epochs, n_train, n_eval)
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(task=task, mode="full", epochs=args.epochs, eval_split=0.1, output_dir=out)
            start = time.perf_counter()
            train(config, data)
            took = time.perf_counter() - start
        row = {"dataset": name, "task": task, "n_train": n_train, "tokens": round(tokens, 1), "measured_s": round(took, 1), "tokens_estimate_s": round(new, 1),
               "examples_estimate_s": round(old, 1), "measured_over_tokens": round(took / new, 2),
               "measured_over_examples": round(took / old, 2)}  # fmt: skip
        log(json.dumps(row))
        rows.append(row)
    print("| dataset | tokens an example | measured | tokens estimate (ratio) | examples estimate (ratio) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['dataset']} | {r['tokens']} | {r['measured_s']} s | {r['tokens_estimate_s']} s "
              f"({r['measured_over_tokens']}) | {r['examples_estimate_s']} s ({r['measured_over_examples']}) |")  # fmt: skip
    print(json.dumps({r["dataset"]: [r["measured_over_tokens"], r["measured_over_examples"]] for r in rows}))


if __name__ == "__main__":
    main()
