"""Predictor: load a trained model folder (cached), predict with probabilities, explain a prediction."""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

import torch
from torch.nn import functional as F

from finetuner import modeling
from finetuner.tasks import first_subwords, task_from_meta, two_inputs

WORD_RE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")  # words and single punctuation marks, as CoNLL tokenizes


class Predictor:
    """A trained model, ready to answer.

    >>> p = Predictor.load("runs/sst2")                            # doctest: +SKIP
    >>> p.predict("a gripping, funny film")["label"]               # doctest: +SKIP
    'positive'
    """

    def __init__(self, folder: str | Path):
        self.folder = str(folder)
        self.model, self.tokenizer, self.meta = modeling.load_model_folder(folder)
        self.task: str = self.meta["task"]
        self.labels: list[str] = self.meta["labels"]  # ["score"] for regression
        self.problem: str = self.meta.get("problem") or "single"  # folders saved before problems: single
        self.thresholds: dict[str, float] | None = self.meta.get("thresholds")  # multilabel
        self._solver = task_from_meta(self.meta).problem  # turns logits into this problem's answer
        self.max_length: int = self.meta.get("max_length", 128)
        self._lock = threading.Lock()  # one forward at a time: torch threads are already busy with one

    @staticmethod
    def load(folder: str | Path) -> Predictor:
        """A cached Predictor for this folder (reloaded when the folder's weights change)."""
        folder = Path(folder).resolve()
        weights = folder / "model.safetensors"
        stamp = weights.stat().st_mtime_ns if weights.exists() else 0
        return _cached(str(folder), stamp)

    def predict(self, text: str | list[str], text_pair: str | None = None) -> dict:
        """Predict one input: label and probabilities, or (token task) words, tags and entity spans.

        Args:
            text: the text (a sentence for token labeling, or a list of words).
            text_pair: the second text, for pair models.

        Returns:
            ``{"label", "probabilities": {label: p}}``; multilabel ``{"labels": [at or above their thresholds],
            "probabilities": {label: sigmoid p}, "thresholds": {label: t}}``; regression ``{"score"}``; for tokens
            ``{"words", "tags", "entities": [{"text", "type", "start", "end", "score", "word_start", "word_end"}]}``
            with character offsets into ``text`` when it was a string.
        """
        return self.predict_many([text], [text_pair] if text_pair is not None else None)[0]

    @torch.inference_mode()
    def predict_many(
        self, texts: list, text_pairs: list[str] | None = None, batch_size: int = 64
    ) -> list[dict]:
        """Predict many inputs at once (batched), same output as predict for each."""
        out: list[dict] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            pairs = text_pairs[start : start + batch_size] if text_pairs else None
            out += (
                self._predict_tokens(chunk) if self.task == "token" else self._predict_classes(chunk, pairs)
            )
        return out

    def _predict_classes(self, texts: list[str], pairs: list[str] | None) -> list[dict]:
        return self._solver.predictions(self._logits(texts, pairs), self.labels)

    def _logits(self, texts: list[str], pairs: list[str] | None) -> torch.Tensor:
        if self.task == "pair" and not pairs:
            raise ValueError("this is a pair model: give text_pair too")
        with self._lock:
            if self.task == "pair" and two_inputs(self.meta.get("pair_encoding")):
                a = self._tokenize(texts)
                b = self._tokenize(pairs)
                return self.model(
                    **a, pair_input_ids=b["input_ids"], pair_attention_mask=b["attention_mask"]
                ).logits
            enc = self._tokenize(texts, pairs if self.task == "pair" else None)
            return self.model(**enc).logits

    def _tokenize(self, texts, pairs=None, **kw):
        return self.tokenizer(
            texts, pairs, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt", **kw
        )

    def _predict_tokens(self, texts: list) -> list[dict]:
        split = [_words(t) for t in texts]
        words = [[w for w, _, _ in s] for s in split]
        if not all(words):
            raise ValueError("empty sentence: type at least one word")
        enc = self._tokenize(words, is_split_into_words=True)
        with self._lock:
            probs = F.softmax(self.model(**enc).logits.float(), dim=-1)
        results = []
        for i, spans in enumerate(split):
            positions, word_index = first_subwords(enc.word_ids(i))
            tags, scores = ["O"] * len(spans), [1.0] * len(spans)
            for pos, w in zip(positions, word_index, strict=True):
                p = probs[i, pos]
                tags[w], scores[w] = self.labels[int(p.argmax())], float(p.max())
            results.append(
                {"words": words[i], "tags": tags, "entities": _entities(texts[i], spans, tags, scores)}
            )
        return results

    def explain(self, text, label=None, text_pair: str | None = None, word: int = 0) -> dict:
        """The reference text's worked example for a real input: representation -> logits -> softmax -> loss
        (multi-label: sigmoid per label -> binary cross-entropy; regression: score -> squared error).

        Args:
            text: the input (sentence for token models).
            label: the gold label to score the loss against; None uses the prediction. Multi-label: a list of
                labels (or one ","-separated string); regression: a number, or None for no loss.
            text_pair: second text for pair models.
            word: for token models, which word (0-based) to explain.

        Returns:
            see finetuner.explain.explain: single-label ``{"representation_size", "representation_head" (first 8
            values), "weight_shape", "logits", "probabilities", "label", "loss", "predicted"}``; loss = -log p(label).
        """
        from finetuner.explain import explain

        return explain(self, text, label, text_pair, word)


@lru_cache(maxsize=4)  # a few models stay warm; each MiniLM is ~90 MB
def _cached(folder: str, _stamp: int) -> Predictor:
    return Predictor(folder)


def _words(text) -> list[tuple[str, int, int]]:
    """(word, start, end) character spans; a list of words is taken as already split."""
    if isinstance(text, list):
        return [(w, -1, -1) for w in text]
    return [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(text)]


def _entities(text, spans, tags: list[str], scores: list[float]) -> list[dict]:
    """Group IOB2 tags into entity spans; an I- that does not continue its type starts a new entity."""
    entities: list[dict] = []
    current = None
    for i, tag in enumerate(tags):
        kind = tag[2:] if tag != "O" else None
        continues = current is not None and tag.startswith("I-") and kind == current["type"]
        if current is not None and not continues:
            entities.append(_close(current, text, spans))
            current = None
        if kind is not None and not continues:
            current = {"type": kind, "word_start": i, "word_end": i + 1, "scores": [scores[i]]}
        elif continues:
            current["word_end"] = i + 1
            current["scores"].append(scores[i])
    if current is not None:
        entities.append(_close(current, text, spans))
    return entities


def _close(entity: dict, text, spans) -> dict:
    first, last = spans[entity["word_start"]], spans[entity["word_end"] - 1]
    scores = entity.pop("scores")
    if isinstance(text, str):
        entity.update(text=text[first[1] : last[2]], start=first[1], end=last[2])
    else:
        entity.update(
            text=" ".join(w for w, _, _ in spans[entity["word_start"] : entity["word_end"]]),
            start=entity["word_start"],
            end=entity["word_end"],
        )
    entity["score"] = sum(scores) / len(scores)
    return entity
