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


def write_conll(path: Path) -> Path:
    sentences = [
        [("Ana", "B-PER"), ("lives", "O"), ("in", "O"), (city, "B-LOC")] for city in ("Lisbon", "Porto")
    ]
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences * 3) + "\n")
    return path


def fits(page, inner: str, outer: str) -> bool:
    """Whether `inner`'s right edge lies within `outer`'s (nothing cut off or pushed out of the column)."""
    a, b = page.locator(inner).first.bounding_box(), page.locator(outer).first.bounding_box()
    return a["x"] + a["width"] <= b["x"] + b["width"] + 1


def brightness(css_color: str) -> float:
    """Mean of the r, g, b channels of a computed ``rgb(...)`` colour (0 black, 255 white)."""
    r, g, b = (float(v) for v in re.findall(r"[\d.]+", css_color)[:3])
    return (r + g + b) / 3


def progress(page) -> float:
    bar = page.locator("#job-progress .ft-progress")
    return float(bar.get_attribute("data-progress") or 0) if bar.count() else 0.0


def test_upload_train_watch_reload_try(page, app_url, tmp_path):
    page.goto(app_url)

    # upload -> preview -> import
    page.locator("#upload input[type=file]").set_input_files(str(write_csv(tmp_path / "reviews.csv")))
    page.get_by_text("160 rows").wait_for()
    assert "delimiter comma" in page.locator("#import-status").inner_text()  # how the file was read
    assert fits(page, "#preview th:has-text('label')", "#preview")  # the label column, not behind a scroll
    shot(page, "01-data-preview")
    page.locator("#import").click()
    page.get_by_text("Imported 160 examples").wait_for()
    assert page.locator("#import-status b").count() == 0  # the markup in the texts was not rendered
    shot(page, "02-data-imported")

    # before any model: the Try and Models tabs say where one comes from; the Label tab opens on the import
    page.get_by_role("tab", name="Try").click()
    page.locator("#try-hint").get_by_text("No trained model yet").wait_for()
    page.get_by_role("tab", name="Models").click()
    page.locator("#models-hint").get_by_text("No trained model yet").wait_for()
    assert "trained (UTC)" in page.locator("#models-table").inner_text()  # its columns, not "1 2 3"
    page.get_by_role("tab", name="Label").click()
    page.wait_for_function("document.querySelector('#label-dataset input').value.includes('reviews')")

    # train: the dataset is preselected; full fine-tuning with a smaller batch makes steps to watch (Auto picks the
    # frozen head for 160 examples, which ends in seconds: too soon to reload mid-way)
    page.get_by_role("tab", name="Train").click()
    page.wait_for_function("document.querySelector('#train-dataset input').value.includes('reviews')")
    choose(page, "mode", "full")
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
    assert fits(page, "#confusion table", "#epochs")  # the matrix stays inside the column
    # only the evaluation that was kept (the table draws the rows in view only: the kept one may be below)
    assert page.locator("#epochs").inner_text().count("★") <= 1
    page.get_by_text("Metrics at each evaluation").scroll_into_view_if_needed()
    shot(page, "05-train-completed")

    # a second, frozen job queued behind nothing; then compare the two runs' curves
    page.get_by_text("More settings").click()
    choose(page, "mode", "frozen")
    page.locator("#start").click()
    page.get_by_text("Job #2 queued").wait_for()
    assert "ahead" not in page.locator("#start-msg").inner_text()  # job #1 is done: nothing is ahead
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
    page.locator("#compare-x").get_by_text("epoch").click()  # a long and a short job line up by epoch
    page.wait_for_function(
        "(() => { const t = document.querySelector('#compare-table').innerText;"
        " return t.includes('job #1') && t.includes('job #2'); })()"
    )
    page.wait_for_timeout(1500)  # let the last change land and the plot redraw
    page.locator("#compare-plot").scroll_into_view_if_needed()
    shot(page, "05b-train-compare")

    # try it: the tab opens on the newest model, loaded at once
    page.get_by_role("tab", name="Try").click()
    ready = "(m) => { const t = document.querySelector('#try-info').innerText;"
    ready += " return t.includes(m) && t.includes('ready in'); }"
    page.wait_for_function(ready, arg="Model #2")
    choose(page, "try-model", "#1")
    page.wait_for_function(ready, arg="Model #1")  # loaded when chosen, not at the first Predict
    page.locator("#try-text textarea").fill("a wonderful, charming film")
    page.locator("#predict").click()
    page.locator("#try-latency").get_by_text("ms").wait_for()
    probs = page.locator("#try-probs").inner_text()
    assert "pos" in probs and "neg" in probs and "%" in probs
    page.get_by_text("Explain: representation").click()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.get_by_text("−log p").wait_for()
    shot(page, "06-try")
    choose(page, "try-model", "#2")  # another model: the first one's outputs go
    page.wait_for_function(ready, arg="Model #2")
    assert "−log p" not in page.locator("#explained").inner_text()

    # predict a file: upload, the worker's progress bar, then the download with the prediction columns
    page.locator("#predict-file").get_by_text("Predict a file").first.click()
    page.locator("#predict-upload input[type=file]").set_input_files(str(write_csv(tmp_path / "new.csv", 20)))
    page.locator("#predict-file-go").click()
    page.locator("#predict-file-progress").get_by_text("20 rows predicted").wait_for(timeout=120_000)
    with page.expect_download() as download:
        page.locator("#predict-file-result a").first.click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("text,label,predicted_label,score,p_neg,p_pos") and len(lines) == 21
    shot(page, "06b-predict-file")

    assert "No trained model" not in page.locator("#try-hint").inner_text()
    page.get_by_role("tab", name="Models").click()
    page.wait_for_function("document.querySelector('#models-table').innerText.includes('reviews')")
    assert "No trained model" not in page.locator("#models-hint").inner_text()
    shot(page, "07-models")

    # a CoNLL file sets the token task; once imported, the Train tab shows it (not the first import)
    page.get_by_role("tab", name="Data").click()
    page.locator("#upload input[type=file]").set_input_files(str(write_conll(tmp_path / "tweets.conll")))
    page.get_by_text("The task was set to").wait_for()
    assert "token" in page.locator("#upload-task input:checked").evaluate("e => e.closest('label').innerText")
    page.locator("#import").click()
    page.get_by_text("Imported 6 examples").wait_for()
    page.get_by_role("tab", name="Train").click()
    page.wait_for_function("document.querySelector('#train-dataset input').value.includes('tweets')")

    # dark mode: the matrix's light cells take the theme's text colour (a fixed dark one was invisible)
    page.goto(app_url.rstrip("/") + "/?__theme=dark")
    page.get_by_role("tab", name="Train").click()
    choose(page, "job", "#1")
    page.locator("#confusion table").wait_for()
    light_cell = page.locator("#confusion td.ft-cell:not(.ft-diag)").first
    assert brightness(light_cell.evaluate("e => getComputedStyle(e).color")) > 128
    page.locator("#confusion").scroll_into_view_if_needed()
    shot(page, "08-dark")


def test_screenshots_copied_for_readme():
    """Keep the README's screenshots in step with the UI (runs after the flow above)."""
    docs = ROOT / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    names = (
        "02-data-imported",
        "03-train-running",
        "05-train-completed",
        "05b-train-compare",
        "06-try",
        "08-dark",
    )
    for name in names:
        src = SHOTS / f"{name}.png"
        if src.exists():
            shutil.copy(src, docs / f"{name}.png")
