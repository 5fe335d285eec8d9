"""Try tab: pick a trained model, type a text, see probabilities or entities, the latency, and the explain chain."""

from __future__ import annotations

import math
import threading
import time
import weakref

import gradio as gr

from storage import repo
from ui import problem_views
from ui.common import Ctx, esc, headline_text, model_choices, no_models_hint, shown_model
from ui.predict_file import build_predict_file_section
from ui.problems import PROBLEM_NAMES, problem_of

_LOADING = threading.Lock()
# predictors that ran once: the first forward pass is the slow one
_WARM: weakref.WeakSet = weakref.WeakSet()


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
    """Load the chosen model (when it is chosen, not at the first Predict) and say what it is.

    The first use of a model costs seconds (torch, the weights, the first forward pass): it is paid here, behind
    a "Loading" line, and one throw-away prediction warms the model up so the first real one is as fast as the rest.

    Returns:
        ``{"task", "problem", "labels", "message", "load_s"}``.
    """
    if not job_id:
        return {
            "task": None,
            "problem": "single",
            "labels": [],
            "message": "Train a model first (the **Train** tab).",
            "load_s": 0.0,
        }
    start = time.perf_counter()
    with _LOADING:  # two events for one model (choose, then a quick Predict) would load it twice at once
        p = _predictor(ctx, job_id)
        if p not in _WARM:
            p.predict("warm up", "warm up" if p.task == "pair" else None)
            _WARM.add(p)
    load_s = time.perf_counter() - start
    problem = problem_of(p)
    score = headline_text(p.meta.get("metrics"), p.task, problem=problem)
    kind = p.task + ("" if problem == "single" else f" {PROBLEM_NAMES[problem]}")
    if problem == "regression":
        what = problem_views.score_range_text(p.meta) or "predicts a score"
    else:
        what = f"labels: {esc(', '.join(p.labels))}"
    return {
        "task": p.task,
        "problem": problem,
        "labels": list(p.labels),
        "load_s": load_s,
        "message": f"Model #{int(job_id)}: {kind} model on {esc(p.meta.get('base_model', '?'))}, {what}"
        + (f" · {score}" if score else "")
        + f" · ready in {fmt_wait(load_s)}",
    }


def fmt_wait(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def predict(ctx: Ctx, job_id: int | None, text: str, text_pair: str = "") -> dict:
    """Run one input through the model.

    Returns:
        ``{"ok", "message", "task", "problem", "label": {label: p} | None, "highlight": {"text", "entities"} |
        None, "html": str | None, "latency_ms"}``; ``label`` feeds gr.Label, ``highlight`` gr.HighlightedText,
        ``html`` (multi-label and score models) the view of every label's probability or of the score.
    """
    out = {"ok": False, "task": None, "problem": "single", "label": None, "highlight": None, "html": None,
           "latency_ms": None}  # fmt: skip
    if not job_id:
        return {**out, "message": "Choose a model."}
    if not (text or "").strip():
        return {**out, "message": "Type a text."}
    try:
        start = time.perf_counter()  # the wait the user sees, a model load included (11 s once read "312 ms")
        with _LOADING:
            p = _predictor(ctx, job_id)
        r = p.predict(text, text_pair or None)
        ms = 1000 * (time.perf_counter() - start)
    except (ValueError, KeyError, TypeError) as err:
        return {**out, "message": esc(err)}
    problem = problem_of(p)
    if problem == "multilabel":
        found = ", ".join(esc(n) for n in r["labels"]) or "no label"
        return {**out, "ok": True, "task": p.task, "problem": problem, "latency_ms": ms,
                "html": problem_views.multilabel_html(r),
                "message": f"Predicted **{found}** in {fmt_wait(ms / 1000)}"}  # fmt: skip
    if problem == "regression":
        return {**out, "ok": True, "task": p.task, "problem": problem, "latency_ms": ms,
                "html": problem_views.score_html(r, p.meta),
                "message": f"Predicted score **{r['score']:.3f}** in {fmt_wait(ms / 1000)}"}  # fmt: skip
    if p.task == "token":
        ents = [{"entity": e["type"], "start": e["start"], "end": e["end"]} for e in r["entities"]]
        found = ", ".join(f"{esc(e['text'])} ({esc(e['type'])}, {e['score']:.2f})" for e in r["entities"])
        return {
            **out,
            "ok": True,
            "task": p.task,
            "highlight": {"text": text, "entities": ents},
            "latency_ms": ms,
            "message": f"{len(ents)} entities{': ' + found if found else ''} · {fmt_wait(ms / 1000)}",
        }
    return {
        **out,
        "ok": True,
        "task": p.task,
        "label": r["probabilities"],
        "latency_ms": ms,
        "message": f"Predicted **{esc(r['label'])}** in {fmt_wait(ms / 1000)}",
    }


def explain(ctx: Ctx, job_id: int | None, text: str, text_pair: str = "", label=None, word: int = 0) -> str:
    """The worked example for this input, as HTML: representation → logits → softmax → loss against `label`
    (multi-label: sigmoid per label → binary cross-entropy against a list of labels; score: the value →
    squared error against a number)."""
    if not job_id or not (text or "").strip():
        return ""
    try:
        p = _predictor(ctx, job_id)
        problem = problem_of(p)
        gold = _gold(problem, label)
        e = p.explain(text, gold, text_pair or None, word=int(word or 0))
    except (ValueError, KeyError, TypeError) as err:
        return f"<p>{esc(err)}</p>"
    source = e["representation"]  # what h is (pooled layers; for pairs, the encoding), and its size
    if problem == "multilabel":
        return problem_views.explain_multilabel_html(e, source)
    if problem == "regression":
        return problem_views.explain_regression_html(e, source, p.meta)
    d, k = e["weight_shape"]
    head = ", ".join(f"{v:+.3f}" for v in e["representation_head"])
    rows = "".join(
        f"<tr{' class=ft-gold' if name == e['label'] else ''}><td>{esc(name)}</td><td>{e['logits'][name]:+.3f}</td>"
        f"<td>{math.exp(e['logits'][name]):.3f}</td><td>{e['probabilities'][name]:.4f}</td></tr>"
        for name in e["logits"]
    )
    total = sum(math.exp(z) for z in e["logits"].values())
    return f"""<div class="ft-explain">
<p><b>1. Representation</b> h: {source}. First 8: [{head}, …]</p>
<p><b>2. Logits</b> z = hW + b, with W of shape {d} × {k} (one column per label).</p>
<p><b>3. Softmax</b> p = exp(z) / Σ exp(z) (Σ = {total:.3f}).</p>
<table><tr><th>label</th><th>logit z</th><th>exp(z)</th><th>p</th></tr>{rows}</table>
<p><b>4. Loss</b> against <b>{esc(e["label"])}</b>: −log p = −log {e["probabilities"][e["label"]]:.4f} =
<b>{e["loss"]:.4f}</b> · predicted: <b>{esc(e["predicted"])}</b></p></div>"""


def _gold(problem: str, label):
    """The Explain form's gold value as the predictor takes it: a list (multi-label), a number or None (score)."""
    if problem == "multilabel":
        if label is None:
            return None
        return (
            list(label)
            if isinstance(label, list | tuple)
            else [x.strip() for x in str(label).split(",") if x.strip()]
        )
    if problem == "regression":
        if label in (None, ""):
            return None
        try:
            return float(label)
        except (TypeError, ValueError):
            raise ValueError(f"the true score must be a number, not {label!r}") from None
    return label or None


def build_try_tab(ctx: Ctx) -> dict:
    with gr.Row():
        with gr.Column(scale=2):
            hint = gr.Markdown(value=lambda: no_models_hint(model_choices(ctx)), elem_id="try-hint")
            model = gr.Dropdown(
                label="Model", choices=model_choices(ctx), elem_id="try-model", allow_custom_value=True
            )
            info = gr.Markdown(elem_id="try-info")
            text = gr.Textbox(label="Text", lines=3, placeholder="Type a sentence…", elem_id="try-text")
            text_pair = gr.Textbox(label="Second text", lines=2, visible=False)
            go = gr.Button("Predict", variant="primary", elem_id="predict")
        with gr.Column(scale=2):
            probs = gr.Label(label="Probabilities", num_top_classes=10, elem_id="try-probs")
            entities = gr.HighlightedText(
                label="Entities", visible=False, combine_adjacent=False, show_legend=True
            )
            problem_out = gr.HTML(visible=False, elem_id="try-problem")  # multi-label and score models
            latency = gr.Markdown(elem_id="try-latency")
    with gr.Accordion(problem_views.explain_title("single"), open=False) as explain_box:
        with gr.Row():
            gold = gr.Dropdown(label="Score the loss against label", choices=[], allow_custom_value=False)
            gold_many = gr.Dropdown(
                label="The labels that apply (empty: score against the predicted ones)", choices=[], multiselect=True, visible=False,
                elem_id="explain-gold-labels",
            )  # fmt: skip
            gold_score = gr.Number(
                label="The true score (empty: no loss)", visible=False, elem_id="explain-gold-score"
            )
            word = gr.Number(value=0, precision=0, minimum=0, label="Word (token models)", visible=False)
            explain_btn = gr.Button("Explain", elem_id="explain")
        explained = gr.HTML(elem_id="explained")

    def on_choose(job_id):
        """At once: the old model's outputs go (Explain's table too), and Predict waits for the new model."""
        loading = f"Loading model #{int(job_id)}…" if job_id else ""
        busy = gr.update(interactive=not job_id)
        return loading, None, None, "", "", "", busy, busy

    def on_model(job_id):
        if not job_id:
            i = {"task": None, "problem": "single", "labels": [], "message": ""}
        else:
            try:
                i = model_info(ctx, job_id)
            except (ValueError, KeyError, OSError) as err:
                i = {
                    "task": None,
                    "problem": "single",
                    "labels": [],
                    "message": f"Cannot load this model: {esc(err)}",
                }
        token, problem = i["task"] == "token", i["problem"]
        single = problem == "single"
        return (
            i["message"],
            gr.update(visible=i["task"] == "pair"),
            gr.update(choices=i["labels"], value=None, visible=single),
            gr.update(choices=i["labels"], value=[], visible=problem == "multilabel"),
            gr.update(value=None, visible=problem == "regression"),
            gr.update(visible=token),
            gr.update(visible=single and not token),
            gr.update(visible=token),
            gr.update(visible=not single),
            gr.update(label=problem_views.explain_title(problem)),
            gr.update(interactive=True),
            gr.update(interactive=True),
        )

    model.change(
        on_choose,
        [model],
        [info, probs, entities, problem_out, latency, explained, go, explain_btn],
        show_progress="hidden",
    ).then(
        on_model,
        [model],
        [info, text_pair, gold, gold_many, gold_score, word, probs, entities, problem_out, explain_box, go,
         explain_btn],
    )  # fmt: skip

    def on_predict(job_id, text_, pair_):
        r = predict(ctx, job_id, text_, pair_)
        plain = r["task"] != "token" and r["problem"] == "single"
        return (r["label"] if plain else None, r["highlight"], r["html"] or "", r["message"])

    # no api_name: the designed API's /predict (ui/api.py) answers scripts with the raw prediction
    go.click(on_predict, [model, text, text_pair], [probs, entities, problem_out, latency])
    text.submit(on_predict, [model, text, text_pair], [probs, entities, problem_out, latency])

    def on_explain(job_id, text_, pair_, one, many, score, word_):
        with ctx.sessions() as s:  # which gold box counts: the model's problem
            config = repo.get_job(s, int(job_id)).config if job_id else {}
        gold_value = {"multilabel": many, "regression": score}.get(problem_of(config), one)
        return explain(ctx, job_id, text_, pair_, gold_value, word_)

    explain_btn.click(on_explain, [model, text, text_pair, gold, gold_many, gold_score, word], explained)
    files = build_predict_file_section(ctx, model)

    def refresh(current):
        """New choices, on the chosen model, else the newest (the one just trained: "Try it in the Try tab")."""
        choices = model_choices(ctx)
        update = gr.update(choices=choices, value=shown_model(choices, current))
        return no_models_hint(choices), update, files["refresh"]["fn"]()

    outputs = [hint, model, *files["refresh"]["outputs"]]
    return {"refresh": {"fn": refresh, "inputs": [model], "outputs": outputs}}
