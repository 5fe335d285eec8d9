"""The Data and Train tabs' note that a dataset looks non-English (finetuner.languages), with the model to suggest."""

from __future__ import annotations

from finetuner.config import BUNDLED_MODELS, DEFAULT_MODEL
from finetuner.languages import looks_non_english
from storage import repo
from ui.common import Ctx

SAMPLE = 500  # examples read for the check: the share settles long before (languages.MAX_WORDS words)
MULTILINGUAL = {name.lower() for name in BUNDLED_MODELS if name != DEFAULT_MODEL}


def _texts(examples) -> list[str]:
    """Each example's text, second text and words, whether ORM rows or the importer's dicts."""
    out = []
    for ex in examples:
        get = ex.get if isinstance(ex, dict) else lambda key, ex=ex: getattr(ex, key, None)
        out += [t for t in (get("text"), get("text_pair")) if t]
        if get("tokens"):
            out.append(" ".join(get("tokens")))
    return out


def examples_hint(examples) -> str:
    """Markdown for the Data tab after an import: the note, or '' when the texts look English."""
    flagged, reason = looks_non_english(_texts(examples[:SAMPLE]))
    return f"ℹ {reason}" if flagged else ""  # our own sentence: no user text to escape


def dataset_hint(ctx: Ctx, dataset_id: int | None, model: str | None = None) -> str:
    """Markdown for the Train tab: the note for a non-English dataset, unless a multilingual model is chosen."""
    if not dataset_id or (model or "").strip().lower() in MULTILINGUAL:
        return ""
    try:
        with ctx.sessions() as s:
            texts = _texts(repo.page_examples(s, int(dataset_id), limit=SAMPLE))
    except (KeyError, ValueError):
        return ""
    flagged, reason = looks_non_english(texts)
    return f"ℹ {reason}" if flagged else ""  # our own sentence: no user text to escape
