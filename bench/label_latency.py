"""Labeling latency in the browser: key press -> next example drawn, idle and while a job trains; 100 SST-2 by key.

    .venv/bin/python bench/label_latency.py [--n-train-keys 60]

Runs the real app (with its worker) on a temporary data dir holding the SST-2 dev sentences unlabeled, opens the
Label tab in headless chromium (playwright), and labels by pressing 1/2 with the gold label, one key at a time,
as a fast human would. The round trip is timed inside the page, from the keydown event to the new card being drawn
(the card script records it). Phase 1 (idle) labels 100 sentences and also reports their total wall time; phase 2
repeats while the worker fine-tunes the bundled MiniLM (full mode) on SST-2 train sentences. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app_server import app_server  # noqa: E402
from common import summary  # noqa: E402

from storage import repo  # noqa: E402
from storage.db import open_db  # noqa: E402

SST2 = Path("/work/shared/data/sst2")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]  # fmt: skip
LABELS = ["negative", "positive"]  # SST-2's 0 and 1: keys 1 and 2


def read_sst2(name: str) -> pd.DataFrame:
    df = pd.read_csv(SST2 / name, sep="\t", quoting=csv.QUOTE_NONE, dtype={"sentence": str})
    df["sentence"] = df["sentence"].str.strip()
    return df


def machine() -> dict:
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ln.startswith("Model name")), platform.processor())  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu": model, "date": datetime.now(UTC).strftime("%Y-%m-%d")}


def label_by_keys(page, gold: dict[str, str], n: int) -> tuple[list[float], float, int]:
    """Press the gold label's key for n cards, one at a time; (round trips in ms, wall seconds, wrong keys)."""
    times, wrong, start = [], 0, time.perf_counter()
    for _ in range(n):
        text = page.locator("#label-card .ft-text").inner_text().strip()
        before = page.evaluate("() => window.__ftLabel.times.length")
        label = gold.get(text)
        wrong += label is None
        page.keyboard.press("1" if label == "negative" else "2")
        page.wait_for_function(f"() => window.__ftLabel.times.length > {before}")
        times.append(page.evaluate("() => window.__ftLabel.times[window.__ftLabel.times.length - 1]"))
    return times, time.perf_counter() - start, wrong


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-idle", type=int, default=100)
    p.add_argument("--n-train-keys", type=int, default=60)
    p.add_argument("--train-rows", type=int, default=4000)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    dev, train = read_sst2("dev.tsv"), read_sst2("train.tsv").head(args.train_rows)
    gold = {s: LABELS[int(y)] for s, y in zip(dev["sentence"], dev["label"], strict=True)}
    data = Path(tempfile.mkdtemp(prefix="label-bench-"))
    sessions = open_db(f"sqlite:///{data / 'finetuner.db'}")
    with sessions() as s:
        ds = repo.create_dataset(s, "sst2-dev", "sequence", LABELS)
        repo.add_examples(s, ds.id, [{"text": t} for t in dev["sentence"]])
        tr = repo.import_examples(s, "sst2-train", "sequence",
                                  [{"text": t, "label": LABELS[int(y)]} for t, y in zip(train["sentence"], train["label"],
                                                                                     strict=True)], LABELS)  # fmt: skip
        dev_id, train_id = ds.id, tr.id
    result: dict = {"bench": "label_latency", **machine()}
    with app_server(data) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.get_by_role("tab", name="Label").click()
        page.locator("#label-dataset input").click()
        page.get_by_role("option", name=re.compile("sst2-dev")).first.click()
        page.wait_for_function(
            "() => +(document.querySelector('#label-card .ft-card')||{dataset:{}}).dataset.id > 0"
        )
        for _ in range(5):  # warm up (first events compile handlers, fill caches); not counted
            label_by_keys(page, gold, 1)
            page.keyboard.press("u")
            page.wait_for_timeout(150)

        idle, wall, wrong = label_by_keys(page, gold, args.n_idle)
        with sessions() as s:
            labeled = repo.count_examples(s, dev_id, status="labeled")
        result["idle"] = summary(idle)
        result[f"label_{args.n_idle}_s"] = round(wall, 2)
        result["wrong_keys"], result["labeled_in_db"] = wrong, labeled

        with sessions() as s:  # full fine-tuning of the 6-layer MiniLM: long enough to outlast phase 2
            job = repo.create_job(s, train_id, {"task": "sequence", "output_dir": "", "mode": "full",
                                                "epochs": 3, "batch_size": 16, "log_every": 5})  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with sessions() as s:
                v = repo.get_job(s, job.id)
                if v.status == "running" and (v.step or 0) > 0:
                    break
            time.sleep(0.5)
        training, _, _ = label_by_keys(page, gold, args.n_train_keys)
        with sessions() as s:
            v = repo.get_job(s, job.id)
            result["training"] = {**summary(training), "job_status": v.status, "job_step_at_end": v.step}
            repo.request_cancel(s, job.id)
        browser.close()
    result["target_p95_ms"] = 150
    print(json.dumps(result))


if __name__ == "__main__":
    main()
