"""looks_non_english: the share of words the English vocabulary cuts into 3+ pieces or strips of accents."""

from __future__ import annotations

import pytest

from finetuner.config import MULTILINGUAL_MODEL
from finetuner.languages import MIN_WORDS, THRESHOLD, hard_word_share, looks_non_english

PORTUGUESE = [
    "A decisão do tribunal não foi unânime, e a apelação seguiu para o órgão especial.",
    "O livro é ótimo: a história prende a atenção até a última página.",
    "Não gostei do final, achei a narração confusa e os personagens pouco desenvolvidos.",
]
ENGLISH = [
    "The court's decision was not unanimous, so the appeal went on to the full bench.",
    "The book is great: the story holds your attention until the very last page.",
    "I did not like the ending; the narration felt confused and the characters thin.",
]


def test_portuguese_is_flagged_with_a_reason_naming_the_multilingual_model():
    flagged, reason = looks_non_english(PORTUGUESE)
    assert flagged
    assert MULTILINGUAL_MODEL in reason and "%" in reason


def test_english_is_not_flagged():
    assert looks_non_english(ENGLISH) == (False, "")
    assert hard_word_share(ENGLISH)[0] < THRESHOLD


@pytest.mark.parametrize("word, hard", [("decisão", True), ("café", True), ("antidisestablishmentarianism", True),
                                        ("decision", False), ("house", False)])  # fmt: skip
def test_a_word_is_hard_when_split_in_three_or_stripped_of_accents(word, hard):
    assert hard_word_share([word])[0] == float(hard)


def test_too_few_words_say_nothing():
    few = " ".join(["decisão"] * (MIN_WORDS - 1))
    assert looks_non_english([few]) == (False, "")
    assert looks_non_english([few + " decisão"])[0]


def test_empty_and_missing_texts():
    assert looks_non_english([]) == (False, "")
    assert looks_non_english(["", None, "123 456"]) == (False, "")
