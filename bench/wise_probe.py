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

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, head_inputs  # noqa: E402
from bench.few_shot import score_folder  # noqa: E402
from bench.head_probe import probe_cli  # noqa: E402

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
    columns = ["auto"] + [f"mix_{a:g}" for a in MIXES]
    probe_cli(__doc__.split("\n")[0], probe, columns, OUT_DIR / "wise_probe.jsonl")


if __name__ == "__main__":
    main()
