"""The designed API over HTTP with gradio_client, as the README shows it: list -> import -> train -> status ->
predict -> predict a file; and the API page lists only the designed endpoints."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from gradio_client import Client, handle_file

import worker
from app import build_app
from ui.api import API_NAMES
from ui.common import Settings

TINY = {"num_hidden_layers": 1}  # as tests/app/conftest.py: real weights, one layer
WORDS = {"pos": ["great", "lovely", "superb"], "neg": ["awful", "boring", "dull"]}


def reviews_csv(path, n: int = 24):
    """n labeled sentences, half pos, half neg (a conftest module of another folder shadows tests/app's)."""
    rows = [
        f"a {WORDS[k][i % 3]} film really {WORDS[k][(i + 1) % 3]},{k}"
        for i in range(n)
        for k in ["pos" if i % 2 == 0 else "neg"]
    ]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def client(sessions, data_dir):
    """The app on 127.0.0.1 with a 1-layer model, and a worker thread in this process that runs its jobs."""
    settings = Settings(data_dir=data_dir, start_worker=False, model_overrides=TINY)
    demo = build_app(settings, sessions)
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
        allowed_paths=[str(settings.exports_dir)], quiet=True,
    )  # fmt: skip
    stop = threading.Event()

    def run_jobs():
        while not stop.is_set():
            worker.work(sessions, data_dir / "models", poll_s=0.05, once=True)
            stop.wait(0.1)

    thread = threading.Thread(target=run_jobs, daemon=True)
    thread.start()
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        stop.set()
        thread.join(timeout=120)
        demo.close()


def wait_done(client: Client, job_id: int, timeout_s: float = 240) -> tuple[dict, str | None]:
    deadline = time.monotonic() + timeout_s  # a bound on a hang, not a speed check
    while True:
        status, path = client.predict(job_id, api_name="/job_status")
        if not status["active"] or time.monotonic() > deadline:
            return status, path
        time.sleep(0.2)


def test_api_page_lists_only_the_designed_endpoints(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        f"/{name}" for name in API_NAMES
    }


def test_the_documented_api_end_to_end(client, tmp_path):
    assert client.predict(api_name="/list_datasets") == []
    src = reviews_csv(tmp_path / "reviews.csv")
    imported = client.predict(
        handle_file(str(src)), "sequence", "reviews", "", "", "", api_name="/import_file"
    )
    assert imported["ok"], imported["message"]
    [dataset] = client.predict(api_name="/list_datasets")
    assert (dataset["id"], dataset["examples"]) == (imported["dataset_id"], 24)

    job = client.predict(
        dataset["id"], {"mode": "frozen", "epochs": 3, "eval_split": 0.25}, api_name="/start_job"
    )
    assert job["ok"], job["message"]
    status, _ = wait_done(client, job["job_id"])
    assert status["status"] == "completed", status["error"]
    assert "accuracy" in status["metrics"]

    one = client.predict(job["job_id"], "a superb film, really lovely", "", api_name="/predict")
    assert one["label"] in ("pos", "neg") and set(one["probabilities"]) == {"neg", "pos"}

    queued = client.predict(job["job_id"], handle_file(str(src)), "", "", api_name="/predict_file")
    assert queued["ok"], queued["message"]
    status, path = wait_done(client, queued["job_id"])
    assert status["status"] == "completed", status["error"]
    lines = open(path, encoding="utf-8").read().splitlines()  # noqa: SIM115 - a downloaded copy
    assert lines[0].split(",")[:4] == ["text", "label", "predicted_label", "score"] and len(lines) == 25

    missing, _ = client.predict(10**6, api_name="/job_status")
    assert missing["error"] == f"no job with id {10**6}" and not missing["active"]
    refused = client.predict(dataset["id"], {"colour": "red"}, api_name="/start_job")
    assert not refused["ok"] and "unknown settings ['colour']" in refused["message"]
