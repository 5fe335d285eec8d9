"""CPU seconds of a contrastive step (finetuner/contrastive.py) by the layers it tunes, as a ratio to the whole encoder.

SST-2 at 64 a class (bench/few_shot.py's subset, seed 0), the bundled MiniLM, one thread, 30 steps a setting, each
setting twice in turn so a drift of the machine shows. ``--layers`` names the settings (``all``: the whole encoder).

    nice -n 5 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/step_cost.py --layers all,4,3,2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import log, machine  # noqa: E402
from bench.few_shot import train_subset  # noqa: E402


def seconds_a_step(layers: int | None, steps: int, examples: list[dict]) -> float:
    import torch

    from finetuner import contrastive, modeling
    from finetuner.tasks import make_task

    path = modeling.resolve_model("")
    tokenizer = modeling.load_tokenizer(path)
    task = make_task("sequence", examples, None, "cross")
    items = task.encode(examples, tokenizer, 128)
    model = modeling.build_model("sequence", path, task.num_labels, pooling="mean", pair_encoding="cross")
    modeling.set_trainable(model, "frozen", None)
    kept, contrastive.TUNED_LAYERS = contrastive.TUNED_LAYERS, layers
    try:
        start = time.process_time()
        report = contrastive.tune_encoder(
            model, task, items, [str(ex["label"]) for ex in examples], steps,
            pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
        )  # fmt: skip
        return (time.process_time() - start) / report["steps"]
    finally:
        contrastive.TUNED_LAYERS = kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", default="all,4,3,2")
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    log(json.dumps(machine("cpu")))
    examples = train_subset("sst2", 64, 0)
    settings = [None if s == "all" else int(s) for s in args.layers.split(",")]
    times: dict[str, list[float]] = {}
    for _ in range(2):
        for layers in settings:
            times.setdefault(str(layers or "all"), []).append(seconds_a_step(layers, args.steps, examples))
    base = min(times["all"]) if "all" in times else None
    for name, ts in times.items():
        ratio = f", {min(ts) / base:.2f}x the whole encoder's" if base else ""
        log(
            f"tuned layers {name}: {min(ts):.3f} CPU s a step (best of {len(ts)}: {ts[0]:.3f}, {ts[1]:.3f}){ratio}"
        )


if __name__ == "__main__":
    main()
