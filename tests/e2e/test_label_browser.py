"""The Label tab in headless Debian chromium: five labels by keyboard alone, one entity span, all in the database.

Run with ``pytest -m e2e tests/e2e/test_label_browser.py``. Screenshots land in tests/e2e/screenshots/.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from concurrency_support import wait_for
from e2e_support import CHROMIUM, ROOT, browser_page, running_app, shot

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage import repo  # noqa: E402
from storage.db import open_db  # noqa: E402

REVIEWS = [
    "a charming and often affecting journey",
    "unflinchingly bleak and desperate",
    "allows us to hope that nolan is poised to embark a major career",
    "the acting , costumes , music , cinematography and sound are all astounding",
    "it 's slow -- very , very slow",
    "a sometimes tedious film <b>with markup</b>",
    "or doing last year 's taxes with your ex-wife",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make chromium)"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data dir whose database holds an unlabeled review dataset and an unlabeled NER dataset."""
    data = tmp_path_factory.mktemp("label-e2e")
    sessions = open_db(f"sqlite:///{data / 'finetuner.db'}")
    with sessions() as s:
        ds = repo.create_dataset(s, "reviews", "sequence", ["negative", "positive"])
        repo.add_examples(s, ds.id, [{"text": t} for t in REVIEWS])
        ner = repo.create_dataset(s, "people", "token", ["PER", "LOC"])
        repo.add_examples(
            s,
            ner.id,
            [{"tokens": ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London", "in", "1833", "."]}],
        )
    return data


@pytest.fixture(scope="module")
def sessions(data_dir):
    """The app's own database: the shared `sessions` fixture is each test's fresh copy, which never saw a key."""
    return open_db(f"sqlite:///{data_dir / 'finetuner.db'}")


@pytest.fixture(scope="module")
def app_url(data_dir):
    """The app on a free port (no worker: nothing trains here); stopped after the module."""
    with running_app(data_dir, args=("--no-worker",)) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    """A chromium page (1400x900, 20 s timeouts) for the whole module."""
    with browser_page({"width": 1400, "height": 900}, timeout_ms=20_000) as page:
        yield page


def open_label_tab(page, dataset: str) -> None:
    page.get_by_role("tab", name="Label").click()
    page.locator("#label-dataset input").click()
    page.get_by_role("option", name=re.compile(re.escape(dataset))).first.click()
    page.wait_for_function(
        "() => +(document.querySelector('#label-card .ft-card') || {dataset: {}}).dataset.id > 0"
    )


def test_five_labels_by_keyboard_alone(page, app_url, sessions):
    page.goto(app_url)
    open_label_tab(page, "reviews")
    assert page.locator("#label-card b").count() == 0  # the markup in a text is shown, not rendered
    for key in ["2", "1", "2", "2", "1"]:  # typed fast: the card serialises them in the order shown
        page.keyboard.press(key)
    with sessions() as s:
        first = [e.id for e in repo.page_examples(s, 1, limit=5)]

    def labels():
        with sessions() as s:
            return (
                [repo.get_example(s, i).label for i in first]
                if repo.count_examples(s, 1, "labeled") >= 5
                else None
            )

    assert wait_for(labels) == ["positive", "negative", "positive", "positive", "negative"]
    with sessions() as s:
        assert repo.count_examples(s, 1, "labeled") == 5
        assert {e.labeled_by for e in repo.page_examples(s, 1, status="labeled")} == {"local"}
    page.wait_for_function("() => document.querySelector('#label-progress').innerText.includes('5 / 7')")
    page.keyboard.press("u")  # undo the last label: the fifth example is back, unlabeled

    def fifth_unlabeled():
        with sessions() as s:
            return repo.get_example(s, first[4]).label is None

    wait_for(fifth_unlabeled)
    page.keyboard.press("1")
    wait_for(lambda: not fifth_unlabeled())
    page.wait_for_function("() => document.querySelector('#label-progress').innerText.includes('5 / 7')")
    shot(page, "label-sequence", doc=True)


def test_one_entity_span_in_a_token_dataset(page, app_url, sessions):
    page.goto(app_url)
    open_label_tab(page, "people")
    words = page.locator("#label-card .ft-sentence .w")
    words.nth(3).click()  # "Charles"
    words.nth(4).click(modifiers=["Shift"])  # shift-click extends to "Babbage"
    page.keyboard.press("1")  # PER

    def tags():
        with sessions() as s:
            return repo.page_examples(s, 2)[0].tags

    assert wait_for(tags) == ["O", "O", "O", "B-PER", "I-PER", "O", "O", "O", "O", "O"]
    page.locator("#label-card .ft-ent").first.wait_for()
    # a mouse selection from the middle of "Lond|on" to the middle of "18|33" snaps to both words, as LOC
    box_a, box_b = words.nth(6).bounding_box(), words.nth(8).bounding_box()
    page.mouse.move(box_a["x"] + box_a["width"] / 2, box_a["y"] + box_a["height"] / 2)
    page.mouse.down()
    page.mouse.move(box_b["x"] + box_b["width"] / 2, box_b["y"] + box_b["height"] / 2, steps=5)
    page.mouse.up()
    page.locator("#label-card button[data-action=span][data-index='1']").click()
    assert wait_for(lambda: (t := tags()) and t[6] != "O" and t) == [
        "O", "O", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O",
    ]  # fmt: skip
    page.locator("#label-card .ft-ent").nth(1).wait_for()
    shot(page, "label-token", doc=True)


def test_dark_mode_progress_tracks(page, app_url):
    """The label progress tracks take the theme's colours: fixed light greys were glaring white in dark mode."""
    from io import BytesIO

    from PIL import Image

    page.goto(app_url.rstrip("/") + "/?__theme=dark")
    open_label_tab(page, "reviews")
    assert "labeled" not in page.locator("#label-dataset input").input_value()  # no count to go stale
    total = page.locator("#label-progress .ft-total").first
    total.wait_for()
    image = Image.open(BytesIO(total.screenshot())).convert("RGB")
    r, g, b = image.getpixel((image.width - 3, image.height // 2))  # the empty end of the bar (5 of 7 done)
    assert (r + g + b) / 3 < 128, (r, g, b)
    shot(page, "label-dark")


def test_a_note_goes_at_the_next_label(page, app_url):
    """ "Added 2 example(s)." stayed under the buttons while the user labeled on; the next label clears it."""
    page.goto(app_url)
    page.get_by_role("tab", name="Label").click()
    page.get_by_text("Create a dataset · add examples").click()  # a new one: the others' examples are leased
    page.locator("#label-new-name textarea, #label-new-name input").first.fill("notes")
    page.locator("#label-new-labels textarea, #label-new-labels input").first.fill("good, bad")
    page.locator("#label-create").click()
    page.wait_for_function("() => document.querySelector('#label-dataset input').value.includes('notes')")
    page.locator("#label-typed textarea").fill("a third review\na fourth review")
    page.locator("#label-add-examples").click()
    page.locator("#label-msg").get_by_text("Added 2 example(s)").wait_for()
    page.keyboard.press("1")
    page.wait_for_function("() => !document.querySelector('#label-msg').innerText.includes('Added')")
