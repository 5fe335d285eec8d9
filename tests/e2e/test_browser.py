"""The real app in headless Debian chromium: upload, import, train (tiny model), watch, reload, try.

Run with ``pytest -m e2e tests/e2e``. Screenshots land in tests/e2e/screenshots/ (gitignored).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from e2e_support import CHROMIUM, ROOT, SHOTS, browser_page, running_app, shot

WORDS = {
    "pos": ["great", "lovely", "superb", "wonderful", "fun", "brilliant", "moving", "charming"],
    "neg": ["awful", "boring", "terrible", "dull", "bad", "horrible", "tedious", "clumsy"],
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make chromium)"),
]


def write_csv(path: Path, n: int = 160) -> Path:
    lines = ["text,label"]
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        a, b = WORDS[label][i % 8], WORDS[label][(i * 3 + 1) % 8]
        lines.append(f'"a {a} film, really {b} <b>#{i}</b>",{label}')  # markup must show as text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on a free port with a temporary data dir and the 1-layer model; stopped (with its worker) after."""
    with running_app(
        tmp_path_factory.mktemp("e2e-data"), env={"FINETUNER_MODEL_OVERRIDES": '{"num_hidden_layers": 1}'}
    ) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    """A chromium page (1400x1000, 30 s timeouts) for the whole module."""
    with browser_page({"width": 1400, "height": 1000}, timeout_ms=30_000) as page:
        yield page


def choose(page, dropdown_id: str, option: str) -> None:
    """Pick an option of a gr.Dropdown by (a part of) its text."""
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def progress(page) -> float:
    bar = page.locator("#job-progress .ft-progress")
    return float(bar.get_attribute("data-progress") or 0) if bar.count() else 0.0


def test_upload_train_watch_reload_try(page, app_url, tmp_path):
    page.goto(app_url)

    # upload -> preview -> import
    page.locator("#upload input[type=file]").set_input_files(str(write_csv(tmp_path / "reviews.csv")))
    page.get_by_text("160 rows").wait_for()
    shot(page, "01-data-preview")
    page.locator("#import").click()
    page.get_by_text("Imported 160 examples").wait_for()
    assert page.locator("#import-status b").count() == 0  # the markup in the texts was not rendered
    shot(page, "02-data-imported")

    # train: the dataset is preselected; a smaller batch makes more steps to watch
    page.get_by_role("tab", name="Train").click()
    page.wait_for_function("document.querySelector('#train-dataset input').value.includes('reviews')")
    page.get_by_text("More settings").click()
    batch = page.get_by_label("Batch size")
    batch.fill("8")
    batch.press("Tab")
    page.locator("#start").click()
    page.get_by_text("queued").first.wait_for()
    page.wait_for_function(
        "() => { const b = document.querySelector('#job-progress .ft-progress');"
        " return b && parseFloat(b.dataset.progress) > 5; }",
        timeout=240_000,  # the worker starts a process and loads torch + the model first: slow on a busy 2-core box
    )
    page.locator("#loss-plot canvas, #loss-plot svg").first.wait_for()
    shot(page, "03-train-running")

    # reload mid-way: the page rebuilds the view from the database
    before = progress(page)
    assert before < 100
    page.reload()
    page.get_by_role("tab", name="Train").click()
    page.wait_for_function(
        f"() => {{ const b = document.querySelector('#job-progress .ft-progress');"
        f" return b && parseFloat(b.dataset.progress) >= {before}; }}"
    )
    assert "Job #1" in page.locator("#job-status").inner_text()
    shot(page, "04-train-after-reload")

    page.wait_for_function(
        "document.querySelector('#job-status').innerText.includes('completed')", timeout=300_000
    )
    page.locator("#confusion table").wait_for()
    page.get_by_text("Metrics at each evaluation").scroll_into_view_if_needed()
    shot(page, "05-train-completed")

    # a second, frozen job queued behind nothing; then compare the two runs' curves
    page.get_by_text("More settings").click()
    choose(page, "mode", "frozen")
    page.locator("#start").click()
    page.get_by_text("Job #2 queued").wait_for()
    page.wait_for_function(
        "(() => { const t = document.querySelector('#job-status').innerText;"
        " return t.includes('Job #2') && t.includes('completed'); })()",
        timeout=120_000,
    )
    # the Start button's "Job #2 queued." is stale once the job ends: the redraw that shows "completed" clears it
    page.wait_for_function(
        "!document.querySelector('#start-msg').innerText.includes('queued')", timeout=10_000
    )
    page.get_by_text("Job history and comparison").click()
    choose(page, "compare-a", "#1")
    choose(page, "compare-b", "#2")
    page.locator("#compare-plot canvas, #compare-plot svg").first.wait_for()
    page.wait_for_timeout(1500)  # let the second change land and the plot redraw
    page.locator("#compare-plot").scroll_into_view_if_needed()
    shot(page, "05b-train-compare")

    # try it
    page.get_by_role("tab", name="Try").click()
    choose(page, "try-model", "#1")
    page.locator("#try-text textarea").fill("a wonderful, charming film")
    page.locator("#predict").click()
    page.locator("#try-latency").get_by_text("ms").wait_for()
    probs = page.locator("#try-probs").inner_text()
    assert "pos" in probs and "neg" in probs and "%" in probs
    page.get_by_text("Explain: representation").click()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.get_by_text("−log p").wait_for()
    shot(page, "06-try")

    page.get_by_role("tab", name="Models").click()
    page.wait_for_function("document.querySelector('#models-table').innerText.includes('reviews')")
    shot(page, "07-models")


def test_screenshots_copied_for_readme():
    """Keep the README's screenshots in step with the UI (runs after the flow above)."""
    docs = ROOT / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    for name in ("02-data-imported", "03-train-running", "05-train-completed", "05b-train-compare", "06-try"):
        src = SHOTS / f"{name}.png"
        if src.exists():
            shutil.copy(src, docs / f"{name}.png")
