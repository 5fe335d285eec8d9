"""The Label tab's layout and wiring: dataset and filters on top, the example card, progress, creating/adding.

The handlers it binds are `ui.label`'s plain functions; the card is drawn by `ui.label_view`.
"""

from __future__ import annotations

import gradio as gr

from storage import repo
from ui import label_view
from ui.common import Ctx, dataset_choices, pick_choice
from ui.label import (
    FILTERS,
    ORDERS,
    act,
    add_examples,
    add_label,
    create_dataset,
    new_state,
    open_dataset,
    progress,
    retrain,
    score_now,
    view,
)
from ui.problems import KIND_CHOICES

# the kinds a dataset made here can be: Words → entities for token datasets (the card boxes spans)
KINDS = [
    (name.replace("tags (token / NER)", "entities (token / NER)"), value) for name, value in KIND_CHOICES
]


def _user(request: gr.Request | None) -> str:
    return (getattr(request, "username", None) or "local") if request is not None else "local"


def _ensure(st: dict | None, request: gr.Request | None) -> dict:
    """This session's state, created on its first event (the lease owner is Gradio's session hash)."""
    if st:
        return st
    owner = getattr(request, "session_hash", None) or "local"
    return new_state(owner, _user(request))


def build_label_tab(ctx: Ctx) -> dict:
    """Dataset and filters on top, the example card left, progress right, creating/adding below.

    Returns:
        ``{"refresh": {"fn", "inputs", "outputs"}}`` for the tab's select event (new datasets).
    """
    state = gr.State(None)
    with gr.Row(elem_classes="ft-label-controls"):
        # no counts in the names: each label changes them ("0/20 labeled" stayed); the panel shows progress
        dataset = gr.Dropdown(
            label="Dataset", choices=dataset_choices(ctx, counts=False), elem_id="label-dataset", scale=3
        )
        status = gr.Dropdown(FILTERS, value="unlabeled", label="Show", elem_id="label-filter", scale=1)
        by_label = gr.Dropdown([], label="Label", visible=False, elem_id="label-by", scale=1)
        order = gr.Dropdown(ORDERS, value="id", label="Order", elem_id="label-order", scale=1)
    with gr.Row():
        with gr.Column(scale=3):
            card = gr.HTML(
                label_view.card_html({"example": None}),
                js_on_load=label_view.JS,
                css_template=label_view.CSS,
                elem_id="label-card",
            )
        with gr.Column(scale=1, min_width=260):
            panel = gr.HTML(
                "", css_template=label_view.PROGRESS_CSS, js_on_load=None, elem_id="label-progress"
            )
            with gr.Row():
                retrain_btn = gr.Button("Retrain now", elem_id="label-retrain", size="sm")
                score_btn = gr.Button("Score now", elem_id="label-score", size="sm")
            with gr.Row():
                new_label = gr.Textbox(
                    placeholder="new label", show_label=False, elem_id="label-new", scale=3
                )
                add_label_btn = gr.Button("Add label", size="sm", scale=1, elem_id="label-add")
            msg = gr.Markdown(elem_id="label-msg")
    with gr.Accordion("Create a dataset · add examples by typing or pasting", open=False):
        with gr.Row():
            name = gr.Textbox(label="New dataset name", elem_id="label-new-name")
            task = gr.Radio(KINDS, value="sequence", label="Task", elem_id="label-new-task")
            labels = gr.Textbox(
                label="Labels (comma-separated; entity types for words; none for a score)",
                elem_id="label-new-labels",
            )
            create = gr.Button("Create", elem_id="label-create")
        typed = gr.Textbox(
            label="Examples, one a line (pairs: first text, a tab, second text)",
            lines=5,
            elem_id="label-typed",
        )
        add = gr.Button("Add examples", elem_id="label-add-examples")

    noted = gr.State(False)  # whether label-msg shows a note (set with it, cleared by the next label)

    def draw(st):
        return label_view.card_html(view(ctx, st)), st

    def draw_progress(st):
        return label_view.progress_html(progress(ctx, st or {}))

    def on_open(dataset_id, status_, label_, order_, st, request: gr.Request):
        st = open_dataset(ctx, _ensure(st, request), dataset_id, status_, label_, order_)
        return draw(st)

    def on_card(st, noted, evt: gr.EventData, request: gr.Request):
        d = dict(getattr(evt, "_data", None) or {})
        keys = ("index", "start", "end", "word", "example", "value")
        st = act(ctx, _ensure(st, request), str(d.get("action", "")), **{k: d.get(k) for k in keys})
        # "Added 20 example(s)" is old news at the next label; cleared once, skipped (sent as nothing) after
        cleared = ("", False) if noted else (gr.skip(), gr.skip())
        return (
            *draw(st),
            draw_progress(st),
            *cleared,
        )  # one event per key: a chained one slowed the next key

    def on_filter(status_, dataset_id):
        with ctx.sessions() as s:
            names = repo.label_names(s, int(dataset_id)) if dataset_id else []
        return gr.update(visible=status_ == "label", choices=names, value=names[0] if names else None)

    opened = [dataset, status, by_label, order, state]
    dataset.input(lambda: ("", False), None, [msg, noted], show_progress="hidden")  # a note on the old one
    for control in (dataset, by_label, order):
        control.input(on_open, opened, [card, state], show_progress="hidden").then(
            draw_progress, [state], panel, show_progress="hidden"
        )
    status.input(on_filter, [status, dataset], by_label, show_progress="hidden").then(
        on_open, opened, [card, state], show_progress="hidden"
    ).then(draw_progress, [state], panel, show_progress="hidden")
    card.click(
        on_card,
        [state, noted],
        [card, state, panel, msg, noted],
        show_progress="hidden",
        api_name="label_event",
        trigger_mode="multiple",  # keys are serialised in the page; the default "once" would drop some
        # not "public": Gradio 6's page records every public event's inputs and outputs in a run history in
        # localStorage (last 100, re-parsed and re-written several times per event), which grew each key's
        # round trip from ~45 ms to ~150 ms over the first 100 keys; "undocumented" is still callable by clients
        api_visibility="undocumented",
    )

    def on_add_label(st, name_, request: gr.Request):
        st = add_label(ctx, _ensure(st, request), name_)
        return (*draw(st), "")

    add_label_btn.click(on_add_label, [state, new_label], [card, state, new_label])
    new_label.submit(on_add_label, [state, new_label], [card, state, new_label])
    retrain_btn.click(lambda d: (retrain(ctx, d), True), [dataset], [msg, noted]).then(
        draw_progress, [state], panel
    )
    score_btn.click(lambda d: (score_now(ctx, d), True), [dataset], [msg, noted])

    def on_create(name_, task_, labels_, st, request: gr.Request):
        r = create_dataset(ctx, name_, task_, labels_)
        if not r["ok"]:
            return r["message"], gr.skip(), gr.skip(), gr.skip(), True
        st = open_dataset(ctx, _ensure(st, request), r["dataset_id"])
        return (
            r["message"],
            gr.update(choices=dataset_choices(ctx, counts=False), value=r["dataset_id"]),
            *draw(st),
            True,  # in this event, not a chained one: a key pressed at once must see it
        )

    create.click(on_create, [name, task, labels, state], [msg, dataset, card, state, noted]).then(
        draw_progress, [state], panel
    )

    def on_add(dataset_id, text, status_, label_, order_, st, request: gr.Request):
        r = add_examples(ctx, dataset_id, text)
        if not r["ok"]:
            return r["message"], gr.skip(), gr.skip(), gr.skip(), gr.skip(), True
        st = open_dataset(ctx, _ensure(st, request), dataset_id, status_, label_, order_)
        return (
            r["message"],
            "",
            gr.update(choices=dataset_choices(ctx, counts=False), value=dataset_id),
            *draw(st),
            True,
        )

    add.click(
        on_add,
        [dataset, typed, status, by_label, order, state],
        [msg, typed, dataset, card, state, noted],
    ).then(draw_progress, [state], panel)

    def refresh(dataset_id, status_, label_, order_, st, request: gr.Request):
        """New choices, on the current dataset, else the newest (the one just imported or created), whose card
        opens: a tab that lists the dataset and says "Choose a dataset" reads as empty."""
        choices = dataset_choices(ctx, counts=False)
        picked = pick_choice([i for _, i in choices], dataset_id)
        if picked is None or picked == dataset_id:
            return gr.update(choices=choices, value=dataset_id), gr.skip(), gr.skip(), gr.skip()
        html, st = on_open(picked, status_, label_, order_, st, request)
        return gr.update(choices=choices, value=picked), html, st, draw_progress(st)

    return {"refresh": {"fn": refresh, "inputs": opened, "outputs": [dataset, card, state, panel]}}
