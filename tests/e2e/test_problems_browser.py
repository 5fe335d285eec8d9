"""Multi-label in headless Debian chromium (issue 24): a CSV of list labels is asked about before import, imported
as multi-label, and one example is labeled by keys alone (two labels toggled, Enter), stored as those two labels.
First, on an app started over a token dataset, the Train tab's Auto line is filled for the dataset a page opens on.

Run with ``pytest -m e2e tests/e2e/test_problems_browser.py``. Screenshots land in tests/e2e/screenshots/ and
docs/screenshots/ (multilabel_ask.png, multilabel_label.png).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from concurrency_support import wait_for
from e2e_support import CHROMIUM, ROOT, browser_page, running_app, shot

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage import repo  # noqa: E402
from storage.db import open_db  # noqa: E402
from ui.problems import label_list  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make chromium)"),
]

ROWS = [  # the last two are unlabeled: the Label tab shows them
    ("Late goal wins the derby as the minister watches", "sports,politics"),
    ("Senate passes the budget after a long night", "politics"),
    ("New phone has a brighter screen", "tech"),
    ("League bans the new tracking app", "sports,tech"),
    ("Parliament votes on a stadium tax for the final", ""),
    ("The club's app crashed during the vote count", ""),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Holds a token dataset before the app starts: the Train tab's dropdown is built on it."""
    root = tmp_path_factory.mktemp("problems-e2e")
    conll = root / "tags.conll"
    sentence = "Ada B-PER\nvisited O\nParis B-LOC\n"
    conll.write_text("\n".join([sentence] * 60), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"DATA_DIR": str(root)}
    cmd = [sys.executable, "-m", "storage", "import", "--dataset", "tags", "--task", "token", str(conll)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def app_url(data_dir):
    """The app on a free port (no worker: nothing trains here); stopped after the module."""
    with running_app(data_dir, args=("--no-worker",)) as url:
        yield url


def test_a_fresh_page_says_what_auto_picks_for_the_dataset_it_opens_on(app_url):
    """The dataset that existed when the app started is the dropdown's value from the start, so no change event
    fires on load: the Auto line must still say what Auto picks (it stayed empty for such a page)."""
    with browser_page({"width": 1400, "height": 900}, timeout_ms=20_000) as page:
        page.goto(app_url)
        page.get_by_role("tab", name="Train").click()
        assert "tags" in page.locator("#train-dataset input").first.input_value()
        line = page.locator("#auto-line")
        line.get_by_text("Auto: full").wait_for()
        assert "54 sentences" in line.inner_text()  # 60 less the 10% eval split
        assert "Estimated time" in line.inner_text()


def test_import_multilabel_after_the_question_and_label_by_keys(app_url, data_dir, tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("text,label\n" + "".join(f'"{t}","{lab}"\n' for t, lab in ROWS), encoding="utf-8")
    sessions = open_db(f"sqlite:///{data_dir / 'finetuner.db'}")
    with browser_page({"width": 1400, "height": 900}, timeout_ms=20_000) as page:
        page.goto(app_url)
        page.locator("#upload input[type=file]").set_input_files(str(path))
        page.get_by_text("6 rows").wait_for()
        page.locator("#import").click()  # as "Text → one label", the default: the lists are asked about
        page.locator("#ask-lists-text").get_by_text("looks like lists").wait_for()
        assert "sports,politics" in page.locator("#ask-lists-text").inner_text()
        with sessions() as s:
            assert [d.name for d in repo.list_datasets(s)] == ["tags"]  # nothing imported before the answer
        shot(page, "multilabel_ask", doc=True)
        page.locator("#ask-multilabel").click()
        page.get_by_text("Imported 6 examples").wait_for()
        assert "multi-label" in page.locator("#upload-task input:checked").evaluate(
            "e => e.closest('label').innerText"
        )

        page.get_by_role("tab", name="Label").click()
        page.locator("#label-dataset input").click()
        page.get_by_role("option", name=re.compile("news")).first.click()
        card = page.locator("#label-card .ft-card[data-problem=multilabel]")
        card.wait_for()
        shown = int(card.get_attribute("data-id"))
        names = page.locator("#label-card button.ft-toggle").all_inner_texts()
        labels = [re.sub(r"^[✔\s]*\d\s*", "", n).strip() for n in names]
        assert sorted(labels) == ["politics", "sports", "tech"]
        page.keyboard.press("1")
        page.keyboard.press("3")
        page.wait_for_function("() => document.querySelectorAll('#label-card button.ft-on').length === 2")
        shot(page, "multilabel_label", doc=True)
        with sessions() as s:
            assert repo.get_example(s, shown).label is None  # toggling writes nothing
        page.keyboard.press("Enter")

        def stored():
            with sessions() as s:
                return label_list(repo.get_example(s, shown).label)

        assert sorted(wait_for(stored)) == sorted([labels[0], labels[2]])
        page.wait_for_function(
            f"() => +document.querySelector('#label-card .ft-card').dataset.id !== {shown}"
        )
        assert page.locator("#label-card button.ft-on").count() == 0  # the next example starts empty
