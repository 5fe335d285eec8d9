"""What the Try tab draws for multi-label and score models: the prediction and the explain chain, as HTML.

Single-label and token models keep their own views (gr.Label, gr.HighlightedText, `ui.try_it.explain`); every
user string goes through `esc`.
"""

from __future__ import annotations

import math

from ui.common import esc
from ui.problems import fmt_score

EXPLAIN_TITLES = {
    "single": "Explain: representation → logits → softmax → loss",
    "multilabel": "Explain: representation → logits → sigmoid per label → binary cross-entropy",
    "regression": "Explain: representation → value → squared error",
}


def explain_title(problem: str) -> str:
    """The Explain accordion's title for a model of this problem."""
    return EXPLAIN_TITLES.get(problem, EXPLAIN_TITLES["single"])


def score_range_text(meta: dict) -> str:
    """``"trained on scores 1–5"`` from a score model's meta; "" when it has none."""
    low_high = meta.get("score_range")
    if not low_high or len(low_high) != 2:
        return ""
    return f"trained on scores {fmt_score(low_high[0])}–{fmt_score(low_high[1])}"


def multilabel_html(r: dict) -> str:
    """Every label's sigmoid probability beside its threshold; the labels at or above it are marked as predicted.

    Args:
        r: ``Predictor.predict``'s multi-label answer: ``{"labels", "probabilities", "thresholds"}``.
    """
    chosen = set(r.get("labels") or [])
    thresholds = r.get("thresholds") or {}
    rows = []
    for name, p in sorted(r["probabilities"].items(), key=lambda kv: -kv[1]):
        t = thresholds.get(name, 0.5)
        on = name in chosen
        rows.append(
            f'<tr class="{"ft-on" if on else "ft-off"}"><td>{"✔" if on else ""}</td><td>{esc(name)}</td>'
            f'<td><span class="ft-pbar"><i style="width:{100 * p:.1f}%"></i>'
            f'<b style="left:{100 * t:.1f}%"></b></span></td><td>{p:.3f}</td><td>{t:.2f}</td></tr>'
        )
    found = ", ".join(esc(n) for n in r.get("labels") or []) or "none (no label reaches its threshold)"
    return (
        f'<div class="ft-multi"><p>Predicted: <b>{found}</b></p><table><tr><th></th><th>label</th>'
        f"<th>probability (line: threshold)</th><th>p</th><th>threshold</th></tr>{''.join(rows)}</table></div>"
    )


def score_html(r: dict, meta: dict) -> str:
    """The predicted score, large, with the range of the scores the model was trained on."""
    scale = score_range_text(meta)
    return (
        f'<div class="ft-score"><span class="ft-score-value">{r["score"]:.3f}</span>'
        f"{f'<span class=ft-score-range>{esc(scale)}</span>' if scale else ''}</div>"
    )


def explain_multilabel_html(e: dict, source: str) -> str:
    """Representation → logits → one sigmoid per label → binary cross-entropy per label, and their mean."""
    d, k = e["weight_shape"]
    head = ", ".join(f"{v:+.3f}" for v in e["representation_head"])
    gold = e.get("label")
    gold_set = set(gold or [])
    per_label = e.get("per_label_loss") or {}
    predicted = set(e.get("predicted") or [])
    rows = []
    for name, z in e["logits"].items():
        p = e["probabilities"][name]
        y = "" if gold is None else ("1" if name in gold_set else "0")
        loss = per_label.get(name)
        rows.append(
            f"<tr{' class=ft-gold' if name in gold_set else ''}><td>{esc(name)}</td><td>{z:+.3f}</td>"
            f"<td>{p:.4f}</td><td>{e['thresholds'].get(name, 0.5):.2f}</td>"
            f"<td>{'✔' if name in predicted else ''}</td><td>{y}</td>"
            f"<td>{'' if loss is None else f'{loss:.4f}'}</td></tr>"
        )
    said = ", ".join(esc(n) for n in e.get("predicted") or []) or "none"
    if gold is None or e.get("loss") is None:
        loss_line = "<p><b>4. Loss</b>: choose the labels that apply to see each label's loss.</p>"
    else:
        gold_text = ", ".join(esc(n) for n in gold) or "none apply"
        loss_line = (
            f"<p><b>4. Loss</b> against <b>{gold_text}</b> (y = 1 for those, 0 for the rest): per label "
            f"−[y log p + (1 − y) log(1 − p)], averaged over the {k} labels = <b>{e['loss']:.4f}</b></p>"
        )
    return f"""<div class="ft-explain">
<p><b>1. Representation</b> h: {source}. First 8: [{head}, …]</p>
<p><b>2. Logits</b> z = hW + b, with W of shape {d} × {k} (one column per label).</p>
<p><b>3. Sigmoid per label</b> p = 1 / (1 + exp(−z)): each label on its own, the probabilities need not sum to 1.
A label is predicted when p reaches its threshold (tuned on the eval data). Predicted: <b>{said}</b></p>
<table><tr><th>label</th><th>logit z</th><th>p</th><th>threshold</th><th>predicted</th><th>y</th>
<th>BCE</th></tr>{"".join(rows)}</table>
{loss_line}</div>"""


def explain_regression_html(e: dict, source: str, meta: dict) -> str:
    """Representation → one value (the score) → squared error against the gold score."""
    d, _ = e["weight_shape"]
    head = ", ".join(f"{v:+.3f}" for v in e["representation_head"])
    scale = score_range_text(meta)
    gold = e.get("label")
    if gold is None or e.get("loss") is None:
        loss_line = "<p><b>3. Loss</b>: type the true score to see the squared error.</p>"
    else:
        diff = e["score"] - float(gold)
        loss_line = (
            f"<p><b>3. Loss</b> against <b>{fmt_score(gold)}</b>: (ŷ − y)² = ({e['score']:.4f} − "
            f"{float(gold):g})² = ({diff:+.4f})² = <b>{e['loss']:.4f}</b> "
            f"(the error in the score's units: {math.sqrt(e['loss']):.4f})</p>"
        )
    return f"""<div class="ft-explain">
<p><b>1. Representation</b> h: {source}. First 8: [{head}, …]</p>
<p><b>2. Value</b> ŷ = hw + b, with w of shape {d} × 1: no softmax, no sigmoid, the number is the score.
ŷ = <b>{e["score"]:.4f}</b>{f" ({esc(scale)})" if scale else ""}</p>
{loss_line}</div>"""


CSS = """
.ft-multi table, .ft-explain table { border-collapse: collapse; margin: 6px 0; }
.ft-multi td, .ft-multi th { padding: 3px 8px; text-align: left; font-variant-numeric: tabular-nums; }
.ft-multi tr.ft-on td { font-weight: 700; }
.ft-multi tr.ft-off td { opacity: .75; }
.ft-pbar { position: relative; display: inline-block; width: 160px; height: 10px; border-radius: 5px;
  background: color-mix(in srgb, var(--body-text-color) 12%, transparent); vertical-align: middle; }
.ft-pbar i { display: block; height: 100%; border-radius: 5px; background: #2563eb; }
.ft-pbar b { position: absolute; top: -3px; width: 2px; height: 16px; background: #dc2626; }
.ft-score { display: flex; align-items: baseline; gap: 14px; padding: 10px 4px; }
.ft-score-value { font-size: 2.6rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.ft-score-range { color: var(--body-text-color-subdued); }
"""
