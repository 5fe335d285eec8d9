"""Examples to tensors: sub-word alignment, validation messages, padding."""

from __future__ import annotations

import pytest

from finetuner.modeling import load_tokenizer, resolve_model
from finetuner.tasks import (
    IGNORE,
    DataValidationError,
    first_subwords,
    make_task,
    words_to_tags,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model(""))


def test_a_word_split_into_subwords_gets_one_label_on_its_first_piece(tokenizer):
    examples = [{"tokens": ["Kaczynski", "visited", "Wroclaw"], "tags": ["B-PER", "O", "B-LOC"]}]
    task = make_task("token", examples)
    item = task.encode(examples, tokenizer, 64)[0]
    pieces = tokenizer.convert_ids_to_tokens(item["input_ids"])
    assert len(pieces) > 5  # the names really were split
    labeled = [(pieces[i], task.labels[t]) for i, t in enumerate(item["labels"]) if t != IGNORE]
    assert [tag for _, tag in labeled] == ["B-PER", "O", "B-LOC"]
    assert not labeled[0][0].startswith("##") and not labeled[2][0].startswith("##")
    assert item["words"] == [0, 1, 2]


@pytest.mark.parametrize(
    "word_ids,positions,words",
    [
        ([None, 0, 0, 1, None], [1, 3], [0, 1]),
        ([None, 0, 1, 1, 1, 2, None], [1, 2, 5], [0, 1, 2]),
        ([None, None], [], []),
    ],
)
def test_first_subwords(word_ids, positions, words):
    assert first_subwords(word_ids) == (positions, words)


def test_predictions_map_back_to_words_and_truncated_words_are_o():
    tags = ["O", "B-PER", "I-PER"]
    assert words_to_tags(4, [0, 1, 2], [1, 2, 0], tags) == ["B-PER", "I-PER", "O", "O"]


def test_truncation_keeps_whole_words_only(tokenizer):
    examples = [{"tokens": ["word"] * 50, "tags": ["O"] * 50}]
    task = make_task("token", examples)
    item = task.encode(examples, tokenizer, 16)[0]
    assert len(item["input_ids"]) == 16 and item["words"] == list(range(14))


def test_cross_pair_has_segment_ids_concat_has_two_sequences(tokenizer):
    ex = [
        {"text": "a cat", "text_pair": "a dog", "label": "x"},
        {"text": "b", "text_pair": "c", "label": "y"},
    ]
    cross = make_task("pair", ex, pair_encoding="cross").encode(ex, tokenizer, 32)[0]
    assert cross["token_type_ids"].count(1) == 3  # "a dog [SEP]"
    concat = make_task("pair", ex, pair_encoding="concat").encode(ex, tokenizer, 32)[0]
    assert tokenizer.decode(concat["pair_input_ids"]) == "[CLS] a dog [SEP]"


def test_collate_pads_to_a_multiple_of_8(tokenizer):
    ex = [{"text": "short", "label": "a"}, {"text": "a somewhat longer sentence here", "label": "b"}]
    task = make_task("sequence", ex)
    batch = task.collate(task.encode(ex, tokenizer, 64), tokenizer.pad_token_id)
    assert batch["input_ids"].shape[1] % 8 == 0
    assert batch["attention_mask"][0].sum() == 3 and batch["labels"].tolist() == [0, 1]


@pytest.mark.parametrize(
    "kind,examples,message",
    [
        ("sequence", [], "empty"),
        ("sequence", [{"text": "a", "label": "x"}, {"text": "", "label": "y"}], "example 2: field 'text'"),
        ("sequence", [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], "only one label"),
        ("pair", [{"text": "a", "label": "x"}], "field 'text_pair'"),
        ("token", [{"tokens": ["a", "b"], "tags": ["O"]}], "2 tokens but 1 tags"),
    ],
)
def test_bad_examples_name_the_example_and_field(kind, examples, message):
    with pytest.raises(DataValidationError, match=message):
        make_task(kind, examples)


def test_eval_label_outside_the_label_set_is_named():
    task = make_task("sequence", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    with pytest.raises(DataValidationError, match="eval example 1: label 'z'"):
        task.check_labels([{"text": "c", "label": "z"}], "eval")
