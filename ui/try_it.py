"""Try tab: pick a trained model, type a text, see probabilities or entities, the latency, and the explain chain."""

from __future__ import annotations

import math
import time

import gradio as gr

from storage import repo
from ui.common import Ctx, esc, model_choices


def _predictor(ctx: Ctx, job_id: int):
    import torch

    from finetuner.predict import Predictor  # torch: loaded on first use, not at app start

    if torch.get_num_threads() != ctx.settings.web_torch_threads:
        torch.set_num_threads(ctx.settings.web_torch_threads)

    with ctx.sessions() as s:
        job = repo.get_job(s, int(job_id))
    if job.status != "completed" or not job.model_dir:
        raise ValueError(f"job #{job.id} has no trained model")
    return Predictor.load(job.model_dir)


def model_info(ctx: Ctx, job_id: int | None) -> dict:
    """The chosen model's task and labels (to show the right inputs)."""
    if not job_id:
        return {"task": None, "labels": [], "message": "Train a model first (the **Train** tab)."}
    p = _predictor(ctx, job_id)
    m = p.meta.get("metrics") or {}
    score = ", ".join(
        f"{k} {m[k]:.3f}" for k in ("accuracy", "macro_f1", "f1") if isinstance(m.get(k), float)
    )
    return {
        "task": p.task,
        "labels": list(p.labels),
        "message": f"{p.task} model on {esc(p.meta.get('base_model', '?'))}, labels: "
        f"{esc(', '.join(p.labels))}" + (f" · {score}" if score else ""),
    }


def predict(ctx: Ctx, job_id: int | None, text: str, text_pair: str = "") -> dict:
    """Run one input through the model.

    Returns:
        ``{"ok", "message", "task", "label": {label: p} | None, "highlight": {"text", "entities"} | None,
        "latency_ms"}``; ``label`` feeds gr.Label, ``highlight`` gr.HighlightedText.
    """
    out = {"ok": False, "task": None, "label": None, "highlight": None, "latency_ms": None}
    if not job_id:
        return {**out, "message": "Choose a model."}
    if not (text or "").strip():
        return {**out, "message": "Type a text."}
    try:
        p = _predictor(ctx, job_id)
        start = time.perf_counter()
        r = p.predict(text, text_pair or None)
        ms = 1000 * (time.perf_counter() - start)
    except (ValueError, KeyError, TypeError) as err:
        return {**out, "message": esc(err)}
    if p.task == "token":
        ents = [{"entity": e["type"], "start": e["start"], "end": e["end"]} for e in r["entities"]]
        found = ", ".join(f"{esc(e['text'])} ({esc(e['type'])}, {e['score']:.2f})" for e in r["entities"])
        return {
            **out,
            "ok": True,
            "task": p.task,
            "highlight": {"text": text, "entities": ents},
            "latency_ms": ms,
            "message": f"{len(ents)} entities{': ' + found if found else ''} · {ms:.1f} ms",
        }
    return {
        **out,
        "ok": True,
        "task": p.task,
        "label": r["probabilities"],
        "latency_ms": ms,
        "message": f"Predicted **{esc(r['label'])}** in {ms:.1f} ms",
    }


def explain(
    ctx: Ctx, job_id: int | None, text: str, text_pair: str = "", label: str | None = None, word: int = 0
) -> str:
    """The worked example for this input: representation → logits → softmax → loss against `label`, as HTML."""
    if not job_id or not (text or "").strip():
        return ""
    try:
        p = _predictor(ctx, job_id)
        e = p.explain(text, label or None, text_pair or None, word=int(word or 0))
    except (ValueError, KeyError) as err:
        return f"<p>{esc(err)}</p>"
    d, k = e["weight_shape"]
    layers = p.meta.get("feature_layers") or 1
    source = f"the pooled last {layers} layers side by side" if layers > 1 else "the encoder's pooled vector"
    head = ", ".join(f"{v:+.3f}" for v in e["representation_head"])
    rows = "".join(
        f"<tr{' class=ft-gold' if name == e['label'] else ''}><td>{esc(name)}</td><td>{e['logits'][name]:+.3f}</td>"
        f"<td>{math.exp(e['logits'][name]):.3f}</td><td>{e['probabilities'][name]:.4f}</td></tr>"
        for name in e["logits"]
    )
    total = sum(math.exp(z) for z in e["logits"].values())
    return f"""<div class="ft-explain">
<p><b>1. Representation</b> h: {source}, {d} numbers. First 8: [{head}, …]</p>
<p><b>2. Logits</b> z = hW + b, with W of shape {d} × {k} (one column per label).</p>
<p><b>3. Softmax</b> p = exp(z) / Σ exp(z) (Σ = {total:.3f}).</p>
<table><tr><th>label</th><th>logit z</th><th>exp(z)</th><th>p</th></tr>{rows}</table>
<p><b>4. Loss</b> against <b>{esc(e["label"])}</b>: −log p = −log {e["probabilities"][e["label"]]:.4f} =
<b>{e["loss"]:.4f}</b> · predicted: <b>{esc(e["predicted"])}</b></p></div>"""


def build_try_tab(ctx: Ctx) -> dict:
    with gr.Row():
        with gr.Column(scale=2):
            model = gr.Dropdown(
                label="Model", choices=model_choices(ctx), elem_id="try-model", allow_custom_value=True
            )
            info = gr.Markdown()
            text = gr.Textbox(label="Text", lines=3, placeholder="Type a sentence…", elem_id="try-text")
            text_pair = gr.Textbox(label="Second text", lines=2, visible=False)
            go = gr.Button("Predict", variant="primary", elem_id="predict")
        with gr.Column(scale=2):
            probs = gr.Label(label="Probabilities", num_top_classes=10, elem_id="try-probs")
            entities = gr.HighlightedText(
                label="Entities", visible=False, combine_adjacent=False, show_legend=True
            )
            latency = gr.Markdown(elem_id="try-latency")
    with gr.Accordion("Explain: representation → logits → softmax → loss", open=False):
        with gr.Row():
            gold = gr.Dropdown(label="Score the loss against label", choices=[], allow_custom_value=False)
            word = gr.Number(value=0, precision=0, minimum=0, label="Word (token models)", visible=False)
            explain_btn = gr.Button("Explain")
        explained = gr.HTML()

    def on_model(job_id):
        if not job_id:
            return (
                "",
                gr.update(visible=False),
                gr.update(choices=[]),
                gr.update(visible=False),
                gr.update(visible=True),
                gr.update(visible=False),
            )
        i = model_info(ctx, job_id)
        token = i["task"] == "token"
        gold_choices = i["labels"]
        return (
            i["message"],
            gr.update(visible=i["task"] == "pair"),
            gr.update(choices=gold_choices, value=None),
            gr.update(visible=token),
            gr.update(visible=not token),
            gr.update(visible=token),
        )

    model.change(on_model, [model], [info, text_pair, gold, word, probs, entities])

    def on_predict(job_id, text_, pair_):
        r = predict(ctx, job_id, text_, pair_)
        return (r["label"] if r["task"] != "token" else None, r["highlight"], r["message"])

    go.click(on_predict, [model, text, text_pair], [probs, entities, latency], api_name="predict")
    text.submit(on_predict, [model, text, text_pair], [probs, entities, latency])
    explain_btn.click(
        lambda j, t, tp, g, w: explain(ctx, j, t, tp, g, w), [model, text, text_pair, gold, word], explained
    )
    return {"refresh": {"fn": lambda: gr.update(choices=model_choices(ctx)), "outputs": [model]}}
