"""The heads reproduce the reference text's worked examples, through the real model classes.

The reference text's matrices are not in this repository; the matrices below are chosen so that h W gives exactly the
logits the text prints ([0.26, -0.23, 0.47]; [-0.42, 0.51]; [0.14, -0.09, 0.26]). The probabilities and losses are
then asserted exactly, and against the text's printed values to +-0.02 (its arithmetic is slightly off).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from finetuner.hf_model import FinetunerConfig, FinetunerForSequenceClassification
from finetuner.tasks import IGNORE

H_SENTIMENT = [0.5, -0.2, 0.8, 0.1]
W_C = [[0.1, -0.3, 0.3], [-0.1, 0.0, -0.3], [0.2, -0.1, 0.3], [0.3, 0.0, 0.2]]  # d x K = 4 x 3
H_PAIR_A, H_PAIR_B = [0.5, -0.2, 0.8, 0.1], [0.3, 0.4, -0.1, 0.6]
W_P = [
    [-0.2, 0.3],
    [0.1, -0.2],
    [-0.3, 0.2],
    [-0.1, 0.1],
    [-0.1, 0.1],
    [0.0, 0.1],
    [0.2, -0.2],
    [0.0, 0.1],
]  # 2d x K
H_APPLE = [0.2, 0.7, -0.4, 0.3]
W_K = [[0.2, 0.1, 0.0], [0.2, -0.1, 0.2], [0.1, 0.1, -0.3], [0.0, 0.0, 0.0]]  # d x K


class FixedEncoder(nn.Module):
    """Stands in for the transformer: returns a fixed h at [CLS] for each input id in position 1."""

    def __init__(self, vectors: dict[int, list[float]]):
        super().__init__()
        self.vectors = vectors
        self.config = SimpleNamespace(hidden_size=len(next(iter(vectors.values()))))

    def forward(self, input_ids, attention_mask, **_):
        hidden = torch.zeros(*input_ids.shape, self.config.hidden_size)
        for row, ids in enumerate(input_ids):
            hidden[row, 0] = torch.tensor(self.vectors[int(ids[1])])
        return SimpleNamespace(last_hidden_state=hidden)


def head_model(vectors, weight, pair_encoding="cross") -> FinetunerForSequenceClassification:
    config = FinetunerConfig(
        pooling="cls", pair_encoding=pair_encoding, classifier_dropout=0.0, num_labels=len(weight[0])
    )
    model = FinetunerForSequenceClassification(config, encoder=FixedEncoder(vectors)).eval()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(weight).T)  # nn.Linear stores W transposed (K x d)
        model.classifier.bias.zero_()
    return model


def test_sentiment_worked_example():
    model = head_model({7: H_SENTIMENT}, W_C)
    assert tuple(model.classifier.weight.T.shape) == (4, 3)  # W_C is d x K
    out = model(input_ids=torch.tensor([[101, 7, 102]]), labels=torch.tensor([0]))  # label 0: "positive"
    probs = F.softmax(out.logits, -1)[0]
    assert out.logits[0].tolist() == pytest.approx([0.26, -0.23, 0.47], abs=1e-6)
    assert probs.tolist() == pytest.approx([0.35130, 0.21522, 0.43348], abs=1e-4)
    assert probs.tolist() == pytest.approx([0.351, 0.215, 0.433], abs=0.02)
    assert float(out.loss) == pytest.approx(1.0461, abs=1e-4)
    assert float(out.loss) == pytest.approx(1.046, abs=0.02)


def test_paraphrase_concat_worked_example():
    model = head_model({7: H_PAIR_A, 8: H_PAIR_B}, W_P, pair_encoding="concat")
    assert tuple(model.classifier.weight.T.shape) == (8, 2)  # W_P is 2d x K
    out = model(
        input_ids=torch.tensor([[101, 7, 102]]),
        pair_input_ids=torch.tensor([[101, 8, 102]]),
        attention_mask=torch.ones(1, 3, dtype=torch.long),
        pair_attention_mask=torch.ones(1, 3, dtype=torch.long),
        labels=torch.tensor([0]),
    )
    probs = F.softmax(out.logits, -1)[0]
    assert out.logits[0].tolist() == pytest.approx([-0.42, 0.51], abs=1e-6)
    assert probs.tolist() == pytest.approx([0.28294, 0.71706], abs=1e-4)
    assert probs.tolist() == pytest.approx([0.283, 0.717], abs=0.02)
    assert float(out.loss) == pytest.approx(1.2626, abs=1e-3)


def test_concat_model_accepts_a_cross_encoded_pair():
    """The standard pipeline tokenizes pairs the cross way; the concat head splits them back by token type."""
    model = head_model({7: H_PAIR_A, 8: H_PAIR_B}, W_P, pair_encoding="concat")
    cross = model(
        input_ids=torch.tensor([[101, 7, 102, 8, 102]]),
        attention_mask=torch.ones(1, 5, dtype=torch.long),
        token_type_ids=torch.tensor([[0, 0, 0, 1, 1]]),
    )
    assert cross.logits[0].tolist() == pytest.approx([-0.42, 0.51], abs=1e-6)


def test_ner_worked_example_loss_is_mean_over_labeled_tokens():
    head = nn.Linear(4, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(W_K).T)
        head.bias.zero_()
    hidden = torch.stack([torch.zeros(4), torch.tensor(H_APPLE), torch.zeros(4)])  # [CLS] Apple [SEP]
    logits = head(hidden)
    assert logits[1].tolist() == pytest.approx([0.14, -0.09, 0.26], abs=1e-6)
    assert F.softmax(logits[1], -1).tolist() == pytest.approx([0.342, 0.272, 0.386], abs=0.02)
    labels = torch.tensor([IGNORE, 0, IGNORE])  # only the word is labeled (B-ORG, index 0)
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE)
    assert float(loss) == pytest.approx(1.0723, abs=1e-4)


def test_one_adam_step_lowers_the_loss_and_raises_p_positive():
    model = head_model({7: H_SENTIMENT}, W_C)
    optimizer = torch.optim.AdamW(model.classifier.parameters(), lr=0.05)
    batch = {"input_ids": torch.tensor([[101, 7, 102]]), "labels": torch.tensor([0])}
    before = model(**batch)
    before.loss.backward()
    optimizer.step()
    after = model(**batch)
    assert float(after.loss) < float(before.loss)
    assert float(F.softmax(after.logits, -1)[0, 0]) > float(F.softmax(before.logits, -1)[0, 0])


def test_mean_pooling_ignores_padding():
    from finetuner.hf_model import pool

    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("pair_encoding", ["cross", "concat"])
def test_feature_layers_concatenate_the_pooled_last_layers(pair_encoding):
    """feature_layers=n: h is [pool(layer L-n+1), ..., pool(layer L)], so the head is (n*d) x K (2*n*d for concat)."""
    from finetuner.hf_model import pool
    from finetuner.modeling import build_model, resolve_model

    model = build_model(
        "pair",
        resolve_model(""),
        2,
        pooling="mean",
        pair_encoding=pair_encoding,
        feature_layers=2,
        overrides={"num_hidden_layers": 3},
    ).eval()
    d = model.encoder.config.hidden_size
    assert model.classifier.in_features == 2 * d * (2 if pair_encoding == "concat" else 1)
    ids = torch.tensor([[101, 2204, 3185, 102, 0], [101, 2919, 102, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        states = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        expected = torch.cat([pool(states[2], mask, "mean"), pool(states[3], mask, "mean")], dim=-1)
        got = model._encode(ids, mask)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got[:, :d], got[:, d:])  # two different layers, not one repeated


def test_feature_layers_never_exceed_the_model_depth():
    from finetuner.modeling import build_model, resolve_model

    model = build_model(
        "sequence",
        resolve_model(""),
        2,
        pooling="cls",
        pair_encoding="cross",
        feature_layers=4,
        overrides={"num_hidden_layers": 1},
    )
    assert model.config.feature_layers == 1 and model.classifier.in_features == 384
