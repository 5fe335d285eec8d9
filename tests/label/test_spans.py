"""The pure span logic: character selection -> snapped word span -> IOB2 tags; removing; adjacent entities."""

from __future__ import annotations

import pytest

from ui.spans import (
    add_span,
    entities,
    remove_span,
    select_span,
    snap_to_words,
    split_words,
    to_tags,
    word_offsets,
)

WORDS = ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London"]
# offsets in "Ada Lovelace met Charles Babbage in London": Ada 0-3, Lovelace 4-12, met 13-16, Charles 17-24,
# Babbage 25-32, in 33-35, London 36-42


def test_word_offsets_match_the_joined_sentence():
    text = " ".join(WORDS)
    assert [text[s:e] for s, e in word_offsets(WORDS)] == WORDS


@pytest.mark.parametrize(
    ("start", "end", "span"),
    [
        (0, 3, (0, 1)),  # exactly one word
        (0, 12, (0, 2)),  # two words
        (1, 2, (0, 1)),  # inside a word: the whole word
        (2, 6, (0, 2)),  # from the middle of one word into the next: both
        (3, 4, None),  # only the space between two words
        (12, 13, None),
        (11, 14, (1, 3)),  # the last letter, a space, the first letter
        (42, 36, (6, 7)),  # a backwards selection
        (5, 5, (1, 2)),  # a click (no extent) inside a word
        (3, 3, None),  # a click on a space
        (0, 42, (0, 7)),  # everything
        (40, 99, (6, 7)),  # past the end
    ],
)
def test_snap_to_words(start, end, span):
    assert snap_to_words(word_offsets(WORDS), start, end) == span


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["O"] * 3, []),
        (["B-PER", "I-PER", "O"], [(0, 2, "PER")]),
        (["B-PER", "B-PER"], [(0, 1, "PER"), (1, 2, "PER")]),  # adjacent, same type: two entities
        (["B-PER", "B-ORG", "I-ORG"], [(0, 1, "PER"), (1, 3, "ORG")]),  # adjacent, different types
        (["I-PER", "I-PER", "O"], [(0, 2, "PER")]),  # a stray I- starts an entity
        (["B-PER", "I-ORG"], [(0, 1, "PER"), (1, 2, "ORG")]),  # an I- of another type starts a new one
    ],
)
def test_entities(tags, spans):
    assert entities(tags) == spans


@pytest.mark.parametrize(
    ("tags", "first", "end", "kind", "expected"),
    [
        (["O"] * 4, 1, 3, "PER", ["O", "B-PER", "I-PER", "O"]),  # multi-word entity
        (["O"] * 4, 0, 1, "PER", ["B-PER", "O", "O", "O"]),
        (["B-PER", "O", "O", "O"], 1, 2, "ORG", ["B-PER", "B-ORG", "O", "O"]),  # adjacent, different type
        (
            ["B-PER", "O", "O", "O"],
            1,
            2,
            "PER",
            ["B-PER", "B-PER", "O", "O"],
        ),  # adjacent, same type: separate
        (
            ["B-PER", "I-PER", "I-PER", "O"],
            1,
            2,
            "ORG",
            ["O", "B-ORG", "O", "O"],
        ),  # overlap removes the old one
        (["B-PER", "I-PER", "B-ORG", "O"], 1, 3, "LOC", ["O", "B-LOC", "I-LOC", "O"]),  # overlaps two
        (["B-PER", "I-PER", "O", "O"], 0, 2, "ORG", ["B-ORG", "I-ORG", "O", "O"]),  # retype the same span
        (["O", "O", "B-PER", "I-PER"], 0, 4, "MISC", ["B-MISC", "I-MISC", "I-MISC", "I-MISC"]),
    ],
)
def test_add_span(tags, first, end, kind, expected):
    assert add_span(tags, first, end, kind) == expected


@pytest.mark.parametrize(
    ("first", "end", "kind"), [(2, 2, "PER"), (-1, 1, "PER"), (0, 9, "PER"), (0, 1, "O")]
)
def test_add_span_refuses_bad_spans(first, end, kind):
    with pytest.raises(ValueError):
        add_span(["O"] * 4, first, end, kind)


@pytest.mark.parametrize(
    ("tags", "word", "expected"),
    [
        (["B-PER", "I-PER", "B-ORG"], 1, ["O", "O", "B-ORG"]),  # any word of the entity removes all of it
        (["B-PER", "I-PER", "B-ORG"], 2, ["B-PER", "I-PER", "O"]),
        (["B-PER", "O"], 1, ["B-PER", "O"]),  # outside every entity: unchanged
        (["B-PER", "B-PER"], 1, ["B-PER", "O"]),  # only the adjacent one clicked
    ],
)
def test_remove_span(tags, word, expected):
    assert remove_span(tags, word) == expected


@pytest.mark.parametrize(
    ("tags", "start", "end", "kind", "expected"),
    [
        (None, 17, 32, "PER", ["O", "O", "O", "B-PER", "I-PER", "O", "O"]),  # "Charles Babbage"
        (None, 19, 28, "PER", ["O", "O", "O", "B-PER", "I-PER", "O", "O"]),  # "arles Bab" snaps out
        (None, 36, 42, "LOC", ["O"] * 6 + ["B-LOC"]),
        (
            ["B-PER", "I-PER"] + ["O"] * 5,
            13,
            16,
            "X",
            ["B-PER", "I-PER", "B-X", "O", "O", "O", "O"],
        ),  # adjacent
        (None, 3, 4, "PER", None),  # a space only: no span
    ],
)
def test_select_span_from_characters(tags, start, end, kind, expected):
    assert select_span(WORDS, tags, start, end, kind) == expected


def test_to_tags_round_trips_entities():
    tags = ["B-PER", "I-PER", "B-ORG", "O", "B-LOC", "B-LOC"]
    assert to_tags(entities(tags), len(tags)) == tags


@pytest.mark.parametrize(
    ("sentence", "words"),
    [
        ("Ada Lovelace, born 1815.", ["Ada", "Lovelace", ",", "born", "1815", "."]),
        ("  New   York-based  ", ["New", "York-based"]),
        ("O'Neil's <b>", ["O'Neil's", "<", "b", ">"]),
    ],
)
def test_split_words(sentence, words):
    assert split_words(sentence) == words
