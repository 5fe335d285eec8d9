"""Finetuner's own heads as Hugging Face models.

This file is copied verbatim into every saved model folder as ``modeling_finetuner.py`` and named in the folder's
``config.json`` ``auto_map``, so ``transformers.pipeline(..., trust_remote_code=True)`` loads a trained model without
this project installed. It must therefore import nothing but torch and transformers.

The heads are the reference text's, literally:
- sequence: ``y = softmax(h W_C)`` with ``h`` the encoder's last hidden state at [CLS] (no pooler layer) or the
  masked mean of the last hidden states; ``W_C`` is d x K;
- pair, concat: ``y = softmax(concat(h(a), h(b)) W_P)``, both texts encoded separately by the same encoder, W_P 2d x K;
- pair, cross: ``[CLS] a [SEP] b [SEP]`` through the sequence head.
Beyond the reference text, a pair may also be read "siamese": ``u = h(a)``, ``v = h(b)`` encoded separately as for
concat, the head reading ``[u, v, |u - v|, u * v]`` (4d x K), the pair features of InferSent (Conneau et al. 2017) and
Sentence-BERT (Reimers & Gurevych 2019), which a head on a frozen encoder separates better than [u, v].
``softmax`` is single-label classification; for ``problem_type`` "multi_label_classification" each of the K outputs
goes through its own sigmoid (binary cross-entropy), and for "regression" the head is d x 1, the score itself (MSE).
With ``feature_layers`` = n > 1, ``h`` is the concatenation of the pooled hidden states of the last n layers (n*d),
BERT's own feature-based recipe (Devlin et al. 2019, 5.3: "concatenating the token representations from the top four
hidden layers"); the frozen mode uses it, since a frozen encoder's single last layer leaves accuracy behind.
(Token labeling uses the architecture's standard ``*ForTokenClassification``, which is already ``softmax(h_i W_K)``.)
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class FinetunerConfig(PretrainedConfig):
    model_type = "finetuner"

    def __init__(
        self,
        encoder=None,
        pooling="cls",
        pair_encoding="cross",
        classifier_dropout=0.1,
        feature_layers=1,
        normalize_features=False,
        **kwargs,
    ):
        self.encoder = dict(encoder or {})  # the encoder's own config.to_dict(): rebuilt with AutoConfig
        self.pooling = pooling  # "cls" (h_CLS, no pooler) or "mean" (masked mean of last hidden states)
        # "cross" ([CLS] a [SEP] b), "concat" (two encodings side by side) or "siamese" ([u, v, |u-v|, u*v])
        self.pair_encoding = pair_encoding
        self.classifier_dropout = classifier_dropout
        self.feature_layers = feature_layers  # pool each of the last n layers and concatenate (n*d)
        self.normalize_features = normalize_features  # each text's h scaled to unit length
        super().__init__(**kwargs)

    def encoder_config(self):
        fields = dict(self.encoder)
        return AutoConfig.for_model(fields.pop("model_type"), **fields)

    def hub_config(self) -> PretrainedConfig:
        """This config in the layout a saved folder uses: the encoder's own config plus the head's fields.

        Its ``model_type`` is one transformers knows, so ``AutoConfig`` and ``AutoTokenizer`` load the folder without
        remote code (a custom config class in ``auto_map`` makes them ask "run custom code? [y/N]"); only the model
        class is custom. Folders saved before this layout nest the encoder's config in a ``finetuner`` config.
        """
        config = self.encoder_config()
        config.update({field: getattr(self, field) for field in HEAD_FIELDS})
        config.id2label, config.label2id = dict(self.id2label), dict(self.label2id)
        config.problem_type = self.problem_type
        return config


HEAD_FIELDS = (
    "pooling",
    "pair_encoding",
    "classifier_dropout",
    "feature_layers",
    "normalize_features",
)  # what the head adds to a config


# How many encoder vectors wide the head's input is, by pair encoding; the last two take the texts as two inputs.
# (finetuner/config.py names the same encodings; this file imports nothing of the project's, see the top.)
PAIR_WIDTHS = {"cross": 1, "concat": 2, "siamese": 4}
SEPARATE_ENCODINGS = ("concat", "siamese")


def pair_features(u: torch.Tensor, v: torch.Tensor, pair_encoding: str) -> torch.Tensor:
    """The head's input for two separately encoded texts: [u, v] (concat) or [u, v, |u - v|, u * v] (siamese)."""
    if pair_encoding == "siamese":
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
    return torch.cat([u, v], dim=-1)


def hub_config_of(config: PretrainedConfig) -> PretrainedConfig:
    """The config to save: FinetunerConfig.hub_config(), or a copy of one already in that layout (a loaded folder)."""
    return config.hub_config() if isinstance(config, FinetunerConfig) else copy.deepcopy(config)


def encoder_config_of(config: PretrainedConfig) -> PretrainedConfig:
    """The encoder's config: nested in a FinetunerConfig (folders saved before the Hub layout), or the config itself."""
    return config.encoder_config() if isinstance(config, FinetunerConfig) else config


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce [B, T, d] hidden states to one d-vector per input: h_CLS or the masked mean."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def build_encoder(config):
    """An encoder without its pooler layer where the architecture has one (h_CLS must be the raw hidden state)."""
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def split_cross_pair(input_ids, attention_mask, token_type_ids):
    """Turn a cross-encoded batch ``[CLS] a [SEP] b [SEP]`` back into two batches ``[CLS] a [SEP]`` and ``[CLS] b [SEP]``.

    Lets a concat or siamese model serve the standard text-classification pipeline, which tokenizes pairs the cross
    way.
    """
    if token_type_ids is None:
        raise ValueError(
            "a concat or siamese pair model needs two texts: pass pair_input_ids, or token_type_ids marking them"
        )
    first, second = [], []
    for ids, mask, types in zip(input_ids, attention_mask.bool(), token_type_ids, strict=True):
        first.append(ids[mask & (types == 0)])
        second.append(torch.cat([ids[:1], ids[mask & (types == 1)]]))  # re-use the row's [CLS]

    def pad(rows):
        width = max(len(r) for r in rows)
        ids = input_ids.new_zeros((len(rows), width))
        mask = attention_mask.new_zeros((len(rows), width))
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask

    return pad(first), pad(second)


class FinetunerForSequenceClassification(PreTrainedModel):
    """Encoder + the reference text's linear head over a pooled representation (one text or a pair)."""

    config_class = FinetunerConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True

    def __init__(self, config: FinetunerConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else build_encoder(encoder_config_of(config))
        layers = getattr(config, "feature_layers", 1)
        width = self.encoder.config.hidden_size * layers * PAIR_WIDTHS.get(config.pair_encoding, 1)
        self.dropout = nn.Dropout(config.classifier_dropout)
        # W_C (d x K), W_P (2d x K) or the siamese 4d x K, stored transposed
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def represent(
        self, input_ids, attention_mask, token_type_ids=None, pair_input_ids=None, pair_attention_mask=None
    ):
        """The vector the head reads: h (d) for one text or a cross pair, concat(h(a), h(b)) (2d) for a concat pair,
        [u, v, |u - v|, u * v] (4d) with u = h(a), v = h(b) for a siamese one (d: n*d with feature_layers n)."""
        encoding = self.config.pair_encoding
        if encoding in SEPARATE_ENCODINGS and (pair_input_ids is not None or token_type_ids is not None):
            if pair_input_ids is None:
                (input_ids, attention_mask), (pair_input_ids, pair_attention_mask) = split_cross_pair(
                    input_ids, attention_mask, token_type_ids
                )
            if pair_attention_mask is None:
                pair_attention_mask = torch.ones_like(pair_input_ids)
            u = self._encode(input_ids, attention_mask)
            v = self._encode(pair_input_ids, pair_attention_mask)
            return pair_features(u, v, encoding)
        return self._encode(input_ids, attention_mask, token_type_ids)

    def _encode(self, input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        layers = getattr(self.config, "feature_layers", 1)
        if layers > 1:
            extra["output_hidden_states"] = True
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        hidden = out.hidden_states[-layers:] if layers > 1 else [out.last_hidden_state]
        h = torch.cat([pool(h, attention_mask, self.config.pooling) for h in hidden], dim=-1)
        # folders saved before the field was added have no attribute: raw vectors, as they were trained
        return F.normalize(h, dim=-1) if getattr(self.config, "normalize_features", False) else h

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        pair_input_ids=None,
        pair_attention_mask=None,
        labels=None,
        **kwargs,
    ):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rep = self.represent(input_ids, attention_mask, token_type_ids, pair_input_ids, pair_attention_mask)
        logits = self.classifier(self.dropout(rep))
        loss = self.loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def loss(self, logits, labels):
        """The loss by ``config.problem_type``, as transformers' own ``*ForSequenceClassification`` picks it (and
        infers it when unset: one output is regression, integer labels single-label, float ones multi-label)."""
        problem = self.config.problem_type
        if problem is None:
            if self.config.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        logits = logits.float()
        if problem == "regression":
            return F.mse_loss(logits.reshape(-1), labels.float().reshape(-1))
        if problem == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits.reshape(-1, self.config.num_labels), labels.reshape(-1))
