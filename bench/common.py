"""Small helpers shared by the bench scripts: flushed progress lines, machine facts, result files, what a
saved model's head reads."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"  # gitignored
_START = time.perf_counter()


def log(message: str) -> None:
    """One progress line with the elapsed time, flushed at once (the scripts run for many minutes, often to a log)."""
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", flush=True)


def elapsed() -> float:
    return time.perf_counter() - _START


def machine(device: str) -> dict:
    """What the figures were measured on: CPU model and cores, GPU name, library versions, date."""
    import torch
    import transformers

    cpu = platform.processor()
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout.splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    info = {
        "device": device,
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank, no interpolation)."""
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def summary(ms: list[float]) -> dict:
    """Count, median, p95 and max of latencies in milliseconds, rounded to 0.1 ms."""
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p95_ms": round(pct(ms, 0.95), 1),
            "max_ms": round(max(ms), 1)}  # fmt: skip


def epoch_seconds(history: list[dict]) -> list[float]:
    """Train seconds of each whole epoch, from a run's history (which may also hold evaluations inside epochs)."""
    ends = [0.0] + [h["train_s"] for h in history if float(h["epoch"]).is_integer()]
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def write_json(name: str, data: dict, extra_dir: str | None = None) -> Path:
    """bench/out/<name>.json, and a copy in extra_dir (e.g. $OUT on a rented GPU machine) when given."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, default=str)
    path = OUT_DIR / f"{name}.json"
    path.write_text(text)
    if extra_dir:
        Path(extra_dir).mkdir(parents=True, exist_ok=True)
        (Path(extra_dir) / f"{name}.json").write_text(text)
    return path


def warm_up(model_path: str, device: str, steps: int = 3) -> None:
    """A few throwaway training steps so one-time costs (thread pools, kernels, allocator) hit neither side."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_path).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    x = torch.randint(1000, 5000, (32, 16), device=device)
    for _ in range(steps):
        model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state.mean().backward()
        opt.step()
        opt.zero_grad()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def head_inputs(predictor, texts: list[str]):
    """(predictions, [n, d] what the head read for each text), from one forward pass."""
    import torch

    from finetuner import modeling

    vectors = []
    hook = modeling.head_of(predictor.model).register_forward_hook(
        lambda _m, args, _out: vectors.append(args[0].float())  # the head's input, from the same forward pass
    )
    try:
        predictions = predictor.predict_many(texts)
    finally:
        hook.remove()
    return predictions, torch.cat(vectors).numpy()
