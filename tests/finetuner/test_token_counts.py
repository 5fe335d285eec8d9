"""An example's tokens to the bundled tokenizer: what the Train tab's estimated time scales by."""

from __future__ import annotations

from finetuner.token_counts import mean_tokens


def test_each_input_kind_counts_its_specials_and_truncates():
    assert mean_tokens(["a good film", "bad"]) == 4.0  # [CLS] a good film [SEP] and [CLS] bad [SEP]: 5 and 3
    assert mean_tokens([("a good film", "bad")]) == 7.0  # one more [SEP] between the texts
    assert mean_tokens([["EU", "rejects", "German", "call"]]) == 6.0  # words in, lower-cased pieces out
    assert mean_tokens(["word " * 500], max_length=128) == 128.0
    assert mean_tokens([]) is None


def test_portuguese_costs_the_english_vocabulary_more_tokens_than_english_of_the_same_length():
    """Why characters made a poor measure: LeNER-Br's and ReLi's texts are cut into more, shorter pieces."""
    english = "the court's decision was not unanimous, so the appeal went to the special body"
    portuguese = "a decisão do tribunal não foi unânime, e a apelação seguiu para o órgão especial"
    assert abs(len(english) - len(portuguese)) <= 2
    assert mean_tokens([portuguese]) > 1.3 * mean_tokens([english])


def test_with_a_batch_size_each_input_counts_as_padded_to_its_batch_s_longest():
    """Sorted by length, in batches of 2: (3, 3) round up to 8; (5, 11) both pad to 16."""
    texts = ["a", "b", "a good film", "a good film " * 3]  # 3, 3, 5 and 11 tokens
    assert mean_tokens(texts) == 5.5
    assert mean_tokens(texts, batch_size=2) == (8 + 8 + 16 + 16) / 4


def test_the_padding_multiple_is_the_training_batches():
    from finetuner import tasks, token_counts

    assert token_counts.PAD_MULTIPLE == tasks.PAD_MULTIPLE
