"""Which columns of an example file hold what: the text, its pair, the label or score (tokens and tags for token
files), guessed from the column names before the upload form asks (storage.io's preview)."""

from __future__ import annotations

# Column names we recognise, most specific first; compared case-insensitively.
ROLE_NAMES = {
    "text": [
        "text",
        "sentence",
        "sentence1",
        "#1 string",
        "premise",
        "question1",
        "question",
        "review",
        "content",
    ],
    "text_pair": ["text_pair", "sentence2", "#2 string", "hypothesis", "question2", "pair"],
    "label": ["label", "labels", "quality", "entailment", "class", "category", "sentiment", "target", "y"],
    "tokens": ["tokens", "words", "token"],
    "tags": ["tags", "ner_tags", "ner", "labels", "label"],
}
# a score's usual column names: after the label names for classes, before them for regression (ASSIN holds both an
# "entailment" class and a "similarity" score)
SCORE_NAMES = ["score", "similarity", "relatedness", "rating", "stars"]


def guess_roles(columns: list[str], task: str, problem: str = "single") -> dict[str, str | None]:
    """Guess which columns hold text, text pair and label (tokens/tags for token tasks).

    Args:
        columns: the file's column names.
        task: ``sequence``, ``pair`` or ``token``.
        problem: ``regression`` looks for a score column first.

    Returns:
        ``{"text": ..., "text_pair": ..., "label": ...}`` with column names or None; for token tasks the
        keys are ``tokens`` and ``tags``.

    >>> guess_roles(["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], "pair")
    {'text': '#1 String', 'text_pair': '#2 String', 'label': 'Quality'}
    >>> guess_roles(["premise", "hypothesis", "entailment", "similarity"], "pair", "regression")["label"]
    'similarity'
    """
    roles = ("tokens", "tags") if task == "token" else ("text", "text_pair", "label")
    label_names = ROLE_NAMES["label"] + SCORE_NAMES
    names = {**ROLE_NAMES, "label": SCORE_NAMES + label_names if problem == "regression" else label_names}
    lower = {c.strip().lower(): c for c in columns if c != "__row__"}
    out: dict[str, str | None] = {}
    taken: set[str] = set()
    for role in roles:
        out[role] = next((lower[n] for n in names[role] if n in lower and lower[n] not in taken), None)
        if out[role]:
            taken.add(out[role])  # type: ignore[arg-type]
    if task == "sequence":
        out.pop("text_pair")
    first = "tokens" if task == "token" else "text"
    if out[first] is None:  # fall back to the first column we have not used and that is not an id
        rest = [c for c in lower.values() if c not in taken and "id" not in c.lower().split()]
        out[first] = rest[0] if rest else None
    return out
