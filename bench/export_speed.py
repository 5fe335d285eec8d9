"""From Save to a ready download, for a frozen model on the bundled MiniLM (6 layers, the app's default size).

Times, on one saved folder: `save_model_folder` (weights, tokenizer, card), `finetuner.hub.write_zip` (what the worker
now runs after the save: weights stored, text deflated), and Gradio's own hash-and-copy of the zip into its cache
(what serving the file costs once the Models tab hands it over). The reference in the same run is the old download,
`shutil.make_archive(..., "zip")` (everything deflated, built on the click), so the ratio says what the change saved.
Also: the folder's size, what a head-only folder would hold (head tensors + tokenizer + config), and how long
`Predictor` takes to load the whole folder against loading the bare base model (what a head-only load would add to).

    .venv/bin/python bench/export_speed.py [--repeats 3]

The last line printed is one JSON object with every figure (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "finetuner"))  # the toy data


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from engine_toys import make_examples
    from gradio import processing_utils
    from transformers import AutoModel

    from finetuner import TrainConfig, modeling, train
    from finetuner.hub import write_zip
    from finetuner.predict import Predictor

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    trained = work / "trained"
    config = TrainConfig(task="sequence", output_dir=str(trained), mode="frozen", epochs=1, eval_split=0.25)
    train(config, make_examples("sequence", 32))
    loaded = Predictor(trained)

    rows: dict[str, list[float]] = {
        k: [] for k in ("save_s", "zip_s", "serve_s", "old_zip_s", "load_s", "base_s")
    }
    sizes = {}
    for i in range(args.repeats):
        folder, cache = work / f"m{i}", work / f"cache{i}"
        rows["save_s"].append(
            timed(modeling.save_model_folder, loaded.model, loaded.tokenizer, folder, loaded.meta)[0]
        )
        t, zipped = timed(write_zip, folder)
        rows["zip_s"].append(t)
        rows["serve_s"].append(timed(processing_utils.save_file_to_cache, str(zipped), str(cache))[0])
        t, old = timed(shutil.make_archive, str(work / f"old{i}"), "zip", root_dir=folder)
        rows["old_zip_s"].append(t)
        rows["load_s"].append(timed(Predictor, folder)[0])
        rows["base_s"].append(timed(AutoModel.from_pretrained, modeling.resolve_model(""))[0])
        sizes = {
            "folder_mb": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6,
            "zip_mb": zipped.stat().st_size / 1e6,
            "old_zip_mb": Path(old).stat().st_size / 1e6,
            "head_only_mb": (
                sum(p.stat().st_size for p in folder.iterdir() if p.name != "model.safetensors")
                + sum(
                    v.numel() * v.element_size()
                    for k, v in loaded.model.state_dict().items()
                    if "classifier" in k
                )
            )
            / 1e6,
        }
    med = {k: statistics.median(v) for k, v in rows.items()}
    ready = med["save_s"] + med["zip_s"]
    print(f"folder {sizes['folder_mb']:.1f} MB; a head-only folder would be {sizes['head_only_mb']:.2f} MB")
    print(
        f"save {med['save_s']:.2f} s + zip {med['zip_s']:.2f} s = ready {ready:.2f} s after the save begins"
    )
    print(
        f"old download: make_archive {med['old_zip_s']:.2f} s on the click ({med['old_zip_s'] / med['zip_s']:.0f}x)"
    )
    print(
        f"Gradio hash+copy when served {med['serve_s']:.2f} s; zip {sizes['zip_mb']:.1f} MB vs deflated {sizes['old_zip_mb']:.1f} MB"
    )
    print(f"Predictor load {med['load_s']:.2f} s; bare base model load {med['base_s']:.2f} s")
    print(
        json.dumps({**{k: round(v, 3) for k, v in med.items()}, **{k: round(v, 2) for k, v in sizes.items()}})
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
