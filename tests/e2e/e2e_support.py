"""What the browser tests share: the real app on a free port, headless Debian chromium, and screenshots.

Imported as ``from e2e_support import ...`` (pytest puts tests/e2e on sys.path); the test files keep thin fixtures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(__file__).with_name("screenshots")  # gitignored
DOC_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(
    data_dir: Path, *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
) -> Iterator[str]:
    """Run app.py on a free port with `data_dir` (offline, log in data_dir/app.log); yield its URL once it answers.

    `env` adds to the environment, `args` to the command line (e.g. ``("--no-worker",)``); the app (and its
    worker) is terminated on exit.
    """
    port = free_port()
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    full_env.pop("DATA_DIR", None)  # --data-dir decides
    log_path = data_dir / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(data_dir), *args],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(url, timeout=1)
                    break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            proc.wait(15)


@contextmanager
def browser_page(viewport: dict[str, int], *, timeout_ms: int = 30_000) -> Iterator:
    """A playwright page in headless Debian chromium with `viewport`; the browser is closed on exit."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=viewport)
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def shot(page, name: str, doc: bool = False) -> None:
    """A full-page screenshot in tests/e2e/screenshots/; `doc` also writes the visible part to docs/screenshots/."""
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if doc:
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_SHOTS / f"{name}.png"), full_page=False)
