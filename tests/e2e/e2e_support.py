"""What the browser tests share: the real app on a free port (bench/app_server.py), headless chromium, screenshots.

Imported as ``from e2e_support import ...`` (pytest puts tests/e2e on sys.path); the test files keep thin fixtures.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))  # last: its generic module names (data, common) never shadow others
from app_server import app_server as running_app  # noqa: E402  (one way to start the app, for benches and tests)

__all__ = ["CHROMIUM", "ROOT", "SHOTS", "browser_page", "running_app", "shot"]
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
