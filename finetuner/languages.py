"""Does a dataset look non-English? A cheap test the Data and Train tabs use to suggest the multilingual model.

The measure is what hurts the bundled English model: the share of words its uncased WordPiece vocabulary either
cuts into 3 or more pieces or strips of accents (``decisão`` -> ``dec ##isa ##o``). English prose scores a few per
cent, Portuguese over a quarter (BENCHMARKS.md, "Languages"). Only the tokenizer file is read (the ``tokenizers``
library, no torch), so the web app can call this on every import.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from finetuner.config import DEFAULT_MODEL, MULTILINGUAL_MODEL
from finetuner.token_counts import bundled_tokenizer

# English sets score 0.03-0.06 (SST-2, MRPC, CoNLL, GoEmotions) and Portuguese ones 0.28-0.39 (ReLi, SST-2 pt,
# ASSIN, LeNER-Br): a line between them, about 2.5x from each side.
THRESHOLD = 0.15
MAX_WORDS = 5_000  # a sample is enough for a share (+-1.5 points); keeps a large import's check near 0.1 s
MIN_WORDS = 20  # fewer words than this say nothing either way
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")  # letters, with inner apostrophes or hyphens


def _has_accent(word: str) -> bool:
    return any(unicodedata.category(c) == "Mn" for c in unicodedata.normalize("NFD", word))


def hard_word_share(texts: Iterable[str]) -> tuple[float, int]:
    """(share of words split into 3+ pieces or stripped of accents by the English vocabulary, words looked at)."""
    words: list[str] = []
    for text in texts:
        words.extend(_WORD.findall(str(text or "")))
        if len(words) >= MAX_WORDS:
            break
    words = words[:MAX_WORDS]
    if not words:
        return 0.0, 0
    tokenizer = bundled_tokenizer()
    pieces = tokenizer.encode_batch([[w] for w in words], is_pretokenized=True, add_special_tokens=False)
    hard = sum(1 for word, enc in zip(words, pieces, strict=True) if len(enc.ids) >= 3 or _has_accent(word))
    return hard / len(words), len(words)


def looks_non_english(texts: Iterable[str]) -> tuple[bool, str]:
    """Whether the texts look non-English to the bundled model, and a sentence saying why (empty when they do not).

    >>> looks_non_english(["a decisão do tribunal não foi unânime, e a apelação seguiu para o órgão especial"] * 3)[0]
    True
    >>> looks_non_english(["the court's decision was not unanimous, so the appeal went on"] * 3)
    (False, '')
    """
    share, n = hard_word_share(texts)
    if n < MIN_WORDS or share < THRESHOLD:
        return False, ""
    return True, (
        f"These texts look non-English: {share:.0%} of their words are split into 3+ pieces or lose their accents in "
        f"the English model's vocabulary ({DEFAULT_MODEL}; English text: about 5%). Consider the multilingual model "
        f"{MULTILINGUAL_MODEL!r} (Portuguese and about 100 other languages)."
    )
