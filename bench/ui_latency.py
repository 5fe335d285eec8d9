"""App responsiveness while a job trains: poll-handler and try-it latency over HTTP, and the niced worker's throughput.

    .venv/bin/python bench/ui_latency.py [--window-s 20]

Runs the real app (its own worker process) twice on a temporary data dir, with the worker niced (10, the default)
and not niced (0). Each run trains the bundled 6-layer MiniLM (full fine-tuning) while a client calls the UI's poll
handler (`/poll`, what the live view's timer runs) and the Try tab's `/predict` over HTTP. The idle poll latency
(no training) is the reference. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app_server import app_server  # noqa: E402
from common import summary  # noqa: E402

WORDS = {
    "pos": ["great", "lovely", "superb", "wonderful", "fun", "brilliant", "moving", "charming"],
    "neg": ["awful", "boring", "terrible", "dull", "bad", "horrible", "tedious", "clumsy"],
}
SENTENCE = "a wonderful, moving film with a charming cast"
BATCH = 16


def rows(n: int) -> list[dict]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        out.append({"text": f"a {rng.choice(WORDS[label])} film, really {rng.choice(WORDS[label])} and "
                            f"{rng.choice(WORDS[label])}, number {i}", "label": label})  # fmt: skip
    return out


def wait_status(sessions, job_id: int, done, timeout_s: float = 600) -> dict:
    from storage import repo

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sessions() as s:
            v = repo.job_view(s, job_id)
        if done(v):
            return v
        if v["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id} {v['status']}: {v['error']}")
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id}")


def time_calls(fn, n: int | None = None, window_s: float | None = None, gap_s: float = 0.0) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + (window_s or 1e9)
    while (n is None or len(out) < n) and time.monotonic() < end:
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
        time.sleep(gap_s)
    return out


def run(data_dir: Path, sessions, dataset_id: int, model_job: int | None, nice: int, window_s: float) -> dict:
    from gradio_client import Client

    from storage import repo

    result: dict = {"worker_nice": nice}
    with app_server(
        data_dir, env={"FINETUNER_WORKER_NICE": str(nice)}, log_name=f"app-nice{nice}.log"
    ) as url:
        client = Client(url, verbose=False)
        if model_job is None:  # a frozen 6-layer model for the Try tab (trained by the app's worker)
            with sessions() as s:
                model_job = repo.create_job(s, dataset_id, frozen_config()).id
            wait_status(sessions, model_job, lambda v: v["status"] == "completed")
            result["idle_poll"] = summary(
                time_calls(lambda: client.predict(model_job, api_name="/poll"), n=60)
            )
            result["idle_try_http"] = summary(
                time_calls(lambda: client.predict(model_job, SENTENCE, "", api_name="/predict"), n=60)
            )
        result["model_job"] = model_job
        with sessions() as s:
            job = repo.create_job(s, dataset_id, full_config()).id
        v0 = wait_status(sessions, job, lambda v: (v["step"] or 0) >= 3)
        t0, s0 = time.monotonic(), v0["step"]
        polls = time_calls(lambda: client.predict(job, api_name="/poll"), window_s=window_s, gap_s=0.2)
        tries = time_calls(
            lambda: client.predict(model_job, SENTENCE, "", api_name="/predict"), n=40, gap_s=0.1
        )
        with sessions() as s:
            v1 = repo.job_view(s, job)
            repo.request_cancel(s, job)
        t1, s1 = time.monotonic(), v1["step"]
        result.update(poll_while_training=summary(polls), try_http_while_training=summary(tries),
                      train_examples_per_s=round((s1 - s0) * BATCH / (t1 - t0), 2))  # fmt: skip
        wait_status(sessions, job, lambda v: v["status"] == "cancelled", timeout_s=60)
    return result


def full_config() -> dict:
    from finetuner import TrainConfig

    return TrainConfig(task="sequence", output_dir="", mode="full", epochs=50, batch_size=BATCH, max_length=64,
                       log_every=1).to_dict()  # fmt: skip


def frozen_config() -> dict:
    from finetuner import TrainConfig

    return TrainConfig(task="sequence", output_dir="", mode="frozen", epochs=10, max_length=64).to_dict()


def try_in_process(model_dir: str, n: int = 200) -> dict:
    """The Try tab's model call alone (Predictor.predict, one sentence), warm, no training running: with the
    app's one torch thread, and with torch's default (one per core)."""
    import torch

    from finetuner.predict import Predictor

    p = Predictor.load(model_dir)
    out = {}
    for threads in (1, os.cpu_count() or 1):
        torch.set_num_threads(threads)
        for _ in range(5):
            p.predict(SENTENCE)
        out[f"{threads}_threads"] = summary(time_calls(lambda: p.predict(SENTENCE), n=n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window-s", type=float, default=20.0, help="seconds of polling while training, per run")
    ap.add_argument("--examples", type=int, default=600)
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ui-latency-"))
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["HF_HUB_OFFLINE"] = "1"
    from storage import repo
    from storage.db import open_db

    sessions = open_db()
    with sessions() as s:
        dataset_id = repo.import_examples(s, "bench", "sequence", rows(args.examples), ["neg", "pos"]).id
    niced = run(data_dir, sessions, dataset_id, None, 10, args.window_s)
    plain = run(data_dir, sessions, dataset_id, niced["model_job"], 0, args.window_s)
    with sessions() as s:
        model_dir = repo.get_job(s, niced["model_job"]).model_dir
    out = {
        "bench": "ui_latency",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "model": "all-MiniLM-L6-v2 (bundled, 6 layers), full fine-tuning, batch 16, max_length 64",
        "try_in_process_idle": try_in_process(model_dir),
        "niced": niced,
        "not_niced": plain,
        "poll_p95_ratio_training_vs_idle": round(
            niced["poll_while_training"]["p95_ms"] / niced["idle_poll"]["p95_ms"], 2
        ),  # fmt: skip
        "throughput_ratio_niced_vs_not": round(
            niced["train_examples_per_s"] / plain["train_examples_per_s"], 3
        ),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
