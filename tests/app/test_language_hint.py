"""The Data and Train tabs' note for non-English datasets (ui/language_hint.py over finetuner.languages)."""

from __future__ import annotations

import pytest

from storage import repo
from ui import data
from ui.common import Ctx, Settings
from ui.language_hint import dataset_hint

PORTUGUESE = [
    "A decisão do tribunal não foi unânime e a apelação seguiu",
    "O livro é ótimo, a história prende a atenção até a última página",
    "Não gostei do final: a narração é confusa e os personagens são rasos",
]


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)


def _rows(texts, n=12):
    return [{"text": texts[i % len(texts)], "label": "pos" if i % 2 else "neg"} for i in range(n)]


def test_importing_portuguese_suggests_the_multilingual_model(ctx, tmp_path):
    path = tmp_path / "resenhas.csv"
    path.write_text("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in _rows(PORTUGUESE)))
    r = data.import_upload(ctx, str(path), "sequence", "resenhas", "text", data.NONE, "label")
    assert r["ok"] and "multilingual-e5-small" in r["message"]


def test_importing_english_says_nothing_about_languages(ctx, csv_file):
    r = data.import_upload(ctx, str(csv_file), "sequence", "reviews", "text", data.NONE, "label")
    assert r["ok"] and "multilingual" not in r["message"]


def test_train_tab_hint_follows_dataset_and_model(ctx, sessions, make_dataset):
    with sessions() as s:
        pt = repo.import_examples(s, "resenhas", "sequence", _rows(PORTUGUESE), labels=["neg", "pos"]).id
    assert "multilingual-e5-small" in dataset_hint(ctx, pt, "all-MiniLM-L6-v2")
    assert dataset_hint(ctx, pt, "multilingual-e5-small") == ""  # already the suggested model
    assert dataset_hint(ctx, make_dataset(12), "all-MiniLM-L6-v2") == ""
    assert dataset_hint(ctx, None) == ""
