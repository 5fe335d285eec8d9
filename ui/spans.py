"""Entity spans on a sentence of words, as pure functions: selection -> snapped word span -> IOB2 tags.

The label view shows a token example as its words joined by single spaces; a mouse selection arrives as
character offsets into that text. Selections snap outwards to whole words, a new span replaces any entity it
overlaps, and a span is removed by any of its words. No torch, no database: the label tab and tests call these.

>>> tags = add_span(["O"] * 4, *snap_to_words(word_offsets(["Ada", "met", "Alan", "Turing"]), 9, 13), "PER")
>>> tags
['O', 'O', 'B-PER', 'I-PER']
"""

from __future__ import annotations

import re

# words and single punctuation marks, as CoNLL tokenizes (= finetuner.predict.WORD_RE; copied: no torch here)
WORD_RE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")


def split_words(sentence: str) -> list[str]:
    """A typed or pasted sentence as words.

    >>> split_words("Ada Lovelace, born 1815.")
    ['Ada', 'Lovelace', ',', 'born', '1815', '.']
    """
    return WORD_RE.findall(sentence)


def word_offsets(tokens: list[str]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each word in ``" ".join(tokens)``."""
    out, pos = [], 0
    for token in tokens:
        out.append((pos, pos + len(token)))
        pos += len(token) + 1
    return out


def snap_to_words(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The words a character selection [start, end) touches, as a word span [first, last + 1); None if none.

    A selection that begins or ends inside a word takes the whole word; one that covers only spaces is None.
    """
    if end < start:
        start, end = end, start
    touched = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
    if not touched and start == end:  # a click inside a word (no extent) selects that word
        touched = [i for i, (s, e) in enumerate(offsets) if s <= start < e]
    return (touched[0], touched[-1] + 1) if touched else None


def entities(tags: list[str]) -> list[tuple[int, int, str]]:
    """Entity spans (first word, end word, type) of IOB2 tags; a stray I- (or an I- of another type) starts one."""
    out: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        kind = tag[2:]
        if tag.startswith("I-") and out and out[-1][1] == i and out[-1][2] == kind:
            out[-1] = (out[-1][0], i + 1, kind)
        else:
            out.append((i, i + 1, kind))
    return out


def to_tags(spans: list[tuple[int, int, str]], n: int) -> list[str]:
    """IOB2 tags for n words from non-overlapping spans (first, end, type)."""
    tags = ["O"] * n
    for first, end, kind in spans:
        for i in range(first, end):
            tags[i] = ("B-" if i == first else "I-") + kind
    return tags


def add_span(tags: list[str], first: int, end: int, kind: str) -> list[str]:
    """Tags with words [first, end) as one entity of `kind`; entities it overlaps are removed whole.

    Adjacent entities stay separate (each keeps its own B- tag), whatever their types.
    """
    if not 0 <= first < end <= len(tags):
        raise ValueError(f"span [{first}, {end}) is outside a sentence of {len(tags)} words")
    if not kind or kind == "O":
        raise ValueError("an entity needs a type")
    kept = [sp for sp in entities(tags) if sp[1] <= first or sp[0] >= end]
    return to_tags(sorted([*kept, (first, end, kind)]), len(tags))


def remove_span(tags: list[str], word: int) -> list[str]:
    """Tags without the entity that contains `word` (unchanged if that word is outside every entity)."""
    kept = [sp for sp in entities(tags) if not sp[0] <= word < sp[1]]
    return to_tags(kept, len(tags))


def select_span(
    tokens: list[str], tags: list[str] | None, start: int, end: int, kind: str
) -> list[str] | None:
    """A character selection on the shown sentence -> the new tags (None when it selects no word)."""
    span = snap_to_words(word_offsets(tokens), start, end)
    if span is None:
        return None
    return add_span(list(tags) if tags else ["O"] * len(tokens), span[0], span[1], kind)
