"""What the Label tab draws: the example card, the progress panel, and the card's keyboard/mouse script.

Every user string goes through `esc`. The card is one `gr.HTML` whose `js_on_load` binds the keys once per page;
a key press sends one event (`trigger`) and the next key waits until the new card is drawn, so fast typing labels
the examples in the order they were shown.
"""

from __future__ import annotations

from ui.common import esc
from ui.problems import fmt_score, label_text
from ui.spans import entities, word_offsets

COLORS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4d7c0f"]


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def _sentence(tokens: list[str], tags: list[str], types: list[str], suggested: bool) -> str:
    """Words as spans with their character offsets in ``" ".join(tokens)``; entities boxed, each with a ×."""
    spans = {first: (end, kind) for first, end, kind in entities(tags)}
    parts, end_of = [], None
    for i, ((s, e), word) in enumerate(zip(word_offsets(tokens), tokens, strict=True)):
        if i:
            parts.append(" ")
        if i in spans:
            end_of, kind = spans[i]
            color = COLORS[types.index(kind) % len(COLORS)] if kind in types else "#64748b"
            cls = "ft-ent ft-suggested" if suggested else "ft-ent"
            parts.append(f'<span class="{cls}" style="--c:{color}" data-type="{esc(kind)}">')
        parts.append(f'<span class="w" data-i="{i}" data-s="{s}" data-e="{e}">{esc(word)}</span>')
        if end_of == i + 1:
            first = next(f for f, (en, _) in spans.items() if en == i + 1)
            parts.append(
                f'<span class="ft-type">{esc(spans[first][1])}</span><button class="ft-x" data-action="remove" '
                f'data-word="{first}" title="Remove this entity">×</button></span>'
            )
            end_of = None
    return f'<div class="ft-sentence">{"".join(parts)}</div>'


def card_html(v: dict) -> str:
    """The example card from `ui.label.view`'s plain values (see there)."""
    n = v.get("n", 0)
    if v.get("example") is None:
        return (
            f'<div class="ft-card ft-empty" data-id="0" data-n="{n}" data-task="{esc(v.get("task") or "")}">'
            f"<p>{v.get('empty') or 'Choose a dataset.'}</p>"
            f'<div class="ft-msg">{v.get("msg") or ""}</div></div>'
        )
    ex, task, labels, score = v["example"], v["task"], v["labels"], v.get("score") or {}
    problem = v.get("problem") or "single"
    meta = [f"#{ex['id']}", esc(v["where"])]
    if ex.get("label") is not None or ex.get("tags") is not None:
        who = f" by {esc(ex['labeled_by'])}" if ex.get("labeled_by") else ""
        shown = f"<b>{esc(label_text(ex['label'], problem))}</b>" if ex.get("label") is not None else "tags"
        meta.append(f"labeled {shown}{who}")
    if task == "token":
        tags = ex.get("tags") or score.get("tags") or ["O"] * len(ex["tokens"])
        suggested = ex.get("tags") is None and bool(score.get("tags"))
        body = _sentence(ex["tokens"], tags, labels, suggested)
    elif task == "pair":
        body = (
            f'<div class="ft-pair"><div class="ft-text">{esc(ex["text"])}</div>'
            f'<div class="ft-text">{esc(ex["text_pair"] or "")}</div></div>'
        )
    else:
        body = f'<div class="ft-text">{esc(ex["text"])}</div>'
    if problem != "single":
        return _problem_card(v, problem, meta, body)
    if task == "token":
        hint = "Select words (drag, or click a word; shift-click extends), then press a number or a type."
        if score.get("tags") is not None:
            note = "pre-filled by the model" if ex.get("tags") is None else "the model's tags were pre-filled"
            hint = f"{note} · Enter accepts and moves on · {hint}"
        suggest = f'<div class="ft-suggest">{hint}</div>'
    elif score.get("label") is not None:
        conf = score.get("confidence")
        bar = f'<span class="ft-conf"><i style="width:{_pct(conf)}"></i></span>' if conf is not None else ""
        suggest = (
            f'<div class="ft-suggest">Model suggests <b>{esc(score["label"])}</b> {bar} {_pct(conf)}'
            f" · <kbd>Enter</kbd> accepts</div>"
        )
    else:
        suggest = (
            '<div class="ft-suggest ft-dim">No model suggestion yet (train, or press Retrain now).</div>'
        )
    if not labels:  # a file of texts alone (one a line) comes without any: there is no button to press yet
        kind = "entity types" if task == "token" else "labels"
        suggest = (
            f'<div class="ft-suggest ft-no-labels">No {kind} yet: type one in <b>new label</b> (right) and press '
            f"<b>Add label</b>, once for each; each gets a number key.</div>"
        )
    buttons = []
    for i, name in enumerate(labels):
        key = f"<kbd>{i + 1}</kbd> " if i < 9 else ""
        action = "span" if task == "token" else "label"
        current = " ft-current" if task != "token" and ex.get("label") == name else ""
        color = COLORS[i % len(COLORS)]
        buttons.append(
            f'<button class="ft-lb{current}" style="--c:{color}" data-action="{action}" data-index="{i}">'
            f"{key}{esc(name)}</button>"
        )
    nav = _nav('<button data-action="accept"><kbd>Enter</kbd> accept</button>')
    return (
        f'<div class="ft-card" data-id="{ex["id"]}" data-n="{n}" data-task="{task}">'
        f'<div class="ft-meta">{" · ".join(meta)}</div>{body}{suggest}'
        f'<div class="ft-buttons">{"".join(buttons)}</div><div class="ft-nav">{nav}</div>'
        f'<div class="ft-msg">{v.get("msg") or ""}</div></div>'
    )


def _nav(accept: str) -> str:
    return (
        f'<button data-action="back"><kbd>←</kbd> back</button><button data-action="skip">skip <kbd>→</kbd>'
        f'</button><button data-action="undo"><kbd>u</kbd> undo</button>{accept}'
    )


def _problem_card(v: dict, problem: str, meta: list[str], body: str) -> str:
    """A multi-label card (labels toggled on and off, Enter saves the set) or a score card (a typed number, or
    the score's digit on a small integer scale)."""
    ex, labels, score, n = v["example"], v["labels"], v.get("score") or {}, v.get("n", 0)
    buttons, extra = [], ""
    if problem == "multilabel":
        chosen = set(ex.get("picked") or [])
        for i, name in enumerate(labels):
            key = f"<kbd>{i + 1}</kbd> " if i < 9 else ""
            on = name in chosen
            buttons.append(
                f'<button class="ft-lb ft-toggle{" ft-on" if on else ""}" style="--c:{COLORS[i % len(COLORS)]}" '
                f'data-action="label" data-index="{i}" aria-pressed="{"true" if on else "false"}">'
                f'<span class="ft-check">{"✔" if on else ""}</span>{key}{esc(name)}</button>'
            )
        said = ", ".join(esc(x) for x in score.get("labels") or [])
        model = f"Model suggests <b>{said}</b> · " if said else ""
        filled = "pre-filled by the model · " if ex.get("picked_by_model") else ""
        hint = (
            f"{model}{filled}number keys or clicks toggle labels · <kbd>Enter</kbd> saves the set"
            " (none on: none apply)"
        )
        accept = '<button data-action="accept"><kbd>Enter</kbd> save set</button>'
        attrs = ""
    else:
        scale = v.get("scale") or []
        for i, value in enumerate(scale):
            buttons.append(
                f'<button class="ft-lb" style="--c:{COLORS[i % len(COLORS)]}" data-action="score" '
                f'data-value="{value}" title="key {value}">{value}</button>'
            )
        suggested = score.get("value")
        model = (
            f"Model suggests <b>{fmt_score(suggested)}</b> · <kbd>Enter</kbd> accepts · "
            if suggested is not None
            else ""
        )
        keys = f"keys {scale[0]}–{scale[-1]} give the score, or " if scale else ""
        hint = f"{model}{keys}type a score and press <kbd>Enter</kbd>"
        current = fmt_score(ex["label"]) if ex.get("label") is not None else ""
        extra = (
            '<div class="ft-score-entry"><input class="ft-score-input" type="text" inputmode="decimal" '
            f'placeholder="score" aria-label="score" value="{esc(current)}"><button data-action="score-typed">'
            "<kbd>Enter</kbd> save</button></div>"
        )
        accept = (
            '<button data-action="accept"><kbd>Enter</kbd> accept</button>' if suggested is not None else ""
        )
        attrs = f' data-scale="{",".join(map(str, scale))}"'
    return (
        f'<div class="ft-card" data-id="{ex["id"]}" data-n="{n}" data-task="{v["task"]}" data-problem="{problem}"'
        f'{attrs}><div class="ft-meta">{" · ".join(meta)}</div>{body}<div class="ft-suggest">{hint}</div>'
        f'{extra}<div class="ft-buttons">{"".join(buttons)}</div><div class="ft-nav">{_nav(accept)}</div>'
        f'<div class="ft-msg">{v.get("msg") or ""}</div></div>'
    )


def progress_html(p: dict) -> str:
    """Labeled/total with a bar, a bar per label (the chart), labels given in this page, the model's state."""
    if not p:
        return ""
    total, labeled = p["total"], p["labeled"]
    frac = labeled / total if total else 0.0
    top = max(p["distribution"].values(), default=0) or 1
    rows = "".join(
        f'<div class="ft-row"><span class="ft-name">{esc(name)}</span><span class="ft-track">'
        f'<i style="width:{100 * count / top:.1f}%;background:{COLORS[i % len(COLORS)]}"></i></span>'
        f'<span class="ft-count">{count}</span></div>'
        for i, (name, count) in enumerate(p["distribution"].items())
    )
    unit = "entities per type" if p["task"] == "token" else "examples per label"
    summary = p.get("summary")
    if p.get("problem") == "regression":
        unit = "scores"
        rows = (
            f'<div class="ft-summary">{summary["count"]:,} scores · min {fmt_score(summary["min"])} · '
            f"max {fmt_score(summary['max'])} · mean {summary['mean']:.2f}</div>"
            if summary and summary.get("count")
            else '<div class="ft-summary">no score yet</div>'
        )
    dis = p.get("disagreements")
    lines = [
        f"<b>{labeled:,}</b> / {total:,} labeled ({100 * frac:.0f}%)",
        f"<b>{p['given']}</b> labels given since this page opened",
        f"model: {esc(p['model'])}",
    ]
    if dis is not None:
        lines.append(f"<b>{dis}</b> disagreements with the model")
    return (
        f'<div class="ft-progress-panel"><div class="ft-total"><i style="width:{100 * frac:.1f}%"></i></div>'
        f"<p>{'<br>'.join(lines)}</p><div class=ft-caption>{unit}</div>{rows}</div>"
    )


CSS = """
.ft-card { font-size: 1.05rem; padding: 4px 2px; }
.ft-meta, .ft-suggest, .ft-msg { color: var(--body-text-color-subdued); font-size: .9rem; margin: 6px 0; }
.ft-msg { color: #b45309; min-height: 1.2em; }
.ft-text, .ft-sentence { font-size: 1.6rem; line-height: 1.55; padding: 18px 20px; border-radius: 10px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary);
  white-space: pre-wrap; word-break: break-word; min-height: 3em; }
.ft-pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.ft-sentence { line-height: 2.6; user-select: text; }
.ft-sentence .w { cursor: pointer; border-radius: 4px; padding: 1px 0; }
.ft-sentence .w.sel { background: rgba(37, 99, 235, .25); outline: 1px solid rgba(37, 99, 235, .6); }
.ft-ent { border: 2px solid var(--c); border-radius: 6px; padding: 2px 4px; background: color-mix(in srgb,
  var(--c) 12%, transparent); white-space: nowrap; }
.ft-suggested { border-style: dashed; }
.ft-type { font-size: .7rem; font-weight: 700; color: var(--c); margin-left: 4px; vertical-align: super; }
.ft-x { border: none; background: none; color: var(--c); cursor: pointer; font-size: 1rem; padding: 0 2px; }
.ft-buttons, .ft-nav { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }
.ft-buttons button, .ft-nav button { padding: 8px 14px; border-radius: 8px; cursor: pointer; font-size: 1rem;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); }
.ft-buttons button { border-left: 5px solid var(--c); font-weight: 600; }
.ft-buttons button.ft-current { background: color-mix(in srgb, var(--c) 18%, transparent); }
.ft-buttons button.ft-on { background: color-mix(in srgb, var(--c) 30%, transparent); outline: 2px solid var(--c); }
.ft-check { display: inline-block; width: 1.1em; height: 1.1em; line-height: 1.1em; margin-right: 6px;
  text-align: center; border: 2px solid var(--c); border-radius: 4px; font-size: .8em; color: var(--c); }
.ft-buttons button[data-action=score] { min-width: 3.2em; font-size: 1.2rem; }
.ft-score-entry { display: flex; gap: 8px; margin-top: 12px; }
.ft-score-input { font-size: 1.3rem; width: 9em; padding: 6px 10px; border-radius: 8px;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); }
.ft-score-entry button { padding: 6px 12px; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); }
.ft-nav button { font-size: .9rem; padding: 6px 12px; }
kbd { font-family: ui-monospace, monospace; font-size: .8em; padding: 1px 5px; border-radius: 4px;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); }
.ft-conf { display: inline-block; width: 80px; height: 8px; border-radius: 4px;
  background: color-mix(in srgb, var(--body-text-color) 12%, transparent);
  vertical-align: middle; overflow: hidden; } .ft-conf i { display: block; height: 100%; background: #16a34a; }
.ft-dim { opacity: .75; }
.ft-empty p { font-size: 1.2rem; padding: 24px; }
"""

# Tracks from the theme's text colour: the fixed --neutral-100/200 stayed glaring white in dark mode
PROGRESS_CSS = """
.ft-total { height: 12px; border-radius: 6px; background: color-mix(in srgb, var(--body-text-color) 12%, transparent);
  overflow: hidden; }
.ft-total i { display: block; height: 100%; background: #16a34a; transition: width .3s; }
.ft-row { display: grid; grid-template-columns: minmax(60px, 30%) 1fr 48px; gap: 8px; align-items: center;
  font-size: .9rem; margin: 3px 0; } .ft-name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ft-track { height: 10px; background: color-mix(in srgb, var(--body-text-color) 12%, transparent); border-radius: 5px;
  overflow: hidden; }
.ft-track i { display: block; height: 100%; } .ft-count { text-align: right; font-variant-numeric: tabular-nums; }
.ft-caption { font-size: .85rem; color: var(--body-text-color-subdued); margin-top: 8px; }
.ft-summary { font-size: .9rem; margin: 3px 0; }
"""

# Runs once per mount of the card (`element`); the document-level key listener is installed once per page.
JS = r"""
const L = (window.__ftLabel = window.__ftLabel || { queue: [], times: [] });
L.trigger = trigger; L.root = element; L.busy = false; L.queue = []; L.sel = null;
const typing = (t) => t && (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' ||
  (t.tagName === 'INPUT' && !['radio', 'checkbox', 'button', 'range'].includes(t.type)));
L.release = () => {
  L.busy = false; clearTimeout(L.unlock);
  const next = L.queue.shift(); if (next) L.send(next);
};
L.send = (data) => {
  if (L.busy) { if (L.queue.length < 50) L.queue.push(data); return; }
  const card = L.root.querySelector('.ft-card');
  if (!card) return;
  if (data.action === 'span' && data.start === undefined) {
    if (!L.sel) L.sel = L.selected();
    if (!L.sel) { const m = card.querySelector('.ft-msg'); if (m) m.textContent = 'Select some words first.'; return; }
    data.start = L.sel[0]; data.end = L.sel[1];
  }
  data.example = +card.dataset.id || 0;
  L.busy = true; L.unlock = setTimeout(L.release, 5000);  // never stay locked if a reply is lost
  L.trigger('click', data);
};
const selected = () => {
  const s = window.getSelection(), sentence = L.root.querySelector('.ft-sentence');
  if (!s || !s.rangeCount || s.isCollapsed || !sentence) return null;
  const r = s.getRangeAt(0), ws = [...sentence.querySelectorAll('.w')].filter((w) => r.intersectsNode(w));
  if (!ws.length) return null;
  const first = ws[0], last = ws[ws.length - 1];
  let a = +first.dataset.s, b = +last.dataset.e;
  if (first.contains(r.startContainer) && r.startContainer.nodeType === 3) a += r.startOffset;
  if (last.contains(r.endContainer) && r.endContainer.nodeType === 3) b = +last.dataset.s + r.endOffset;
  return [a, b];
};
const mark = () => L.root.querySelectorAll('.ft-sentence .w').forEach((w) => w.classList.toggle('sel',
  !!L.sel && +w.dataset.s < Math.max(L.sel[1], L.sel[0] + 1) && +w.dataset.e > L.sel[0]));
L.selected = selected; L.mark = mark;
// a score card: the typed number (an empty box takes the model's suggestion, as Enter elsewhere does)
L.typed = () => {
  const inp = L.root.querySelector('.ft-score-input');
  if (!inp) return;
  L.t0 = performance.now();
  L.send(inp.value.trim() ? { action: 'score', value: inp.value } : { action: 'accept' });
};
element.addEventListener('keydown', (e) => {
  if (!e.target.classList || !e.target.classList.contains('ft-score-input')) return;
  if (e.key === 'Enter') { e.preventDefault(); L.typed(); }
  else if (e.key === 'Escape') e.target.blur();
});
element.addEventListener('mousedown', (e) => { if (e.target.closest('button')) e.preventDefault(); });
element.addEventListener('mouseup', () => { const s = selected(); if (s) { L.sel = s; mark(); } });
element.addEventListener('click', (e) => {
  const b = e.target.closest('[data-action]');
  if (b && element.contains(b)) {
    const d = { action: b.dataset.action };
    if (b.dataset.index !== undefined) d.index = +b.dataset.index;
    if (b.dataset.word !== undefined) d.word = +b.dataset.word;
    if (b.dataset.value !== undefined) d.value = b.dataset.value;
    if (d.action === 'score-typed') { L.typed(); return; }
    L.t0 = performance.now(); L.send(d); return;
  }
  const w = e.target.closest('.ft-sentence .w');
  if (w && window.getSelection().isCollapsed) {
    const s = [+w.dataset.s, +w.dataset.e];
    L.sel = e.shiftKey && L.sel ? [Math.min(L.sel[0], s[0]), Math.max(L.sel[1], s[1])] : s; mark();
  }
});
watch('value', () => {
  if (L.t0) { L.times.push(performance.now() - L.t0); L.t0 = 0; }
  L.sel = null; L.shown = (L.shown || 0) + 1;
  const s = window.getSelection();  // a selection on the old card's words is stale now
  if (s && s.rangeCount && (!s.anchorNode || !s.anchorNode.isConnected || element.contains(s.anchorNode))) {
    s.removeAllRanges();
  }
  const a = document.activeElement;  // a picked dataset or filter must not swallow the next key
  if (a && a.closest && a.closest('.ft-label-controls') && typing(a)) a.blur();
  // the page patches the card in place: the score box kept its focus and the number typed for the last example
  const inp = element.querySelector('.ft-score-input');
  if (inp) { inp.value = inp.getAttribute('value') || ''; if (inp === a) inp.blur(); }
  L.release();
});
if (!window.__ftLabelKeys) {
  window.__ftLabelKeys = true;
  document.addEventListener('keydown', (e) => {
    const L = window.__ftLabel, k = e.key;
    if (!L || !L.root || !L.root.isConnected || L.root.offsetParent === null || typing(e.target)) return;
    const card = L.root.querySelector('.ft-card');
    if (!card) return;
    let d = null;
    if ((e.ctrlKey || e.metaKey) && (k === 'z' || k === 'Z')) d = { action: 'undo' };
    else if (e.ctrlKey || e.metaKey || e.altKey) return;
    else if (card.dataset.problem === 'regression' && /^[0-9.,-]$/.test(k)) {
      // the score's own digit on a small integer scale; any other start of a number goes to the score box
      if ((card.dataset.scale || '').split(',').includes(k)) d = { action: 'score', value: k };
      else { const inp = L.root.querySelector('.ft-score-input'); if (inp) { inp.value = ''; inp.focus(); } return; }
    }
    else if (k >= '1' && k <= '9') d = { action: card.dataset.task === 'token' ? 'span' : 'label', index: +k - 1 };
    else if (k === 'Enter') d = { action: 'accept' };
    else if (k === 'ArrowRight') d = { action: 'skip' };
    else if (k === 'ArrowLeft') d = { action: 'back' };
    else if (k === 'u' || k === 'U') d = { action: 'undo' };
    else if (k === 'Escape') { L.sel = null; window.getSelection().removeAllRanges(); L.mark(); return; }
    if (!d || (card.dataset.id === '0' && d.action !== 'back' && d.action !== 'undo')) return;
    e.preventDefault();
    L.t0 = performance.now(); L.send(d);
  });
}
"""
