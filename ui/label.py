"""Label tab: one example at a time, labeled by key or click, each label committed at once; the model suggests.

The handlers are plain functions of a small state dict (ids and counters only, kept in `gr.State`):

    {"dataset", "task", "owner" (lease id: the browser session), "user" (labeled_by), "seed", "status",
     "label", "order", "trail" (example ids visited, in order), "pos" (index of the shown one in trail;
     len(trail) when none is left), "undo" ([id, previous label, previous tags, previous labeled_by], ...),
     "given", "labeled" (whether the shown example was labeled when drawn), "msg", "n" (draw counter)}

Several browser sessions label one dataset at once: each example they are shown is leased to them
(`repo.lease_next_example`), and a label is written only if no one else holds the example and, when it was shown
unlabeled, no one labeled it meanwhile (`repo.give_label`).
"""

from __future__ import annotations

import zlib

import gradio as gr
from sqlalchemy.exc import SQLAlchemyError

from storage import repo
from ui import label_view
from ui.common import Ctx, dataset_choices, esc, user_message
from ui.spans import remove_span, select_span, split_words

LEASE_S = 120  # short: a closed tab's example goes back to the others within two minutes
TRAIL_MAX = 500  # visited ids remembered for Back and for not showing an example twice in one session
FILTERS = [
    ("Unlabeled", "unlabeled"),
    ("Labeled", "labeled"),
    ("By label", "label"),
    ("Disagreements", "disagreements"),
    ("All", "all"),
]
ORDERS = [
    ("In order", "id"),
    ("Random", "random"),
    ("Most uncertain (entropy)", "entropy"),
    ("Most uncertain (margin)", "margin"),
]
TASKS = [("Text → label", "sequence"), ("Two texts → label", "pair"), ("Words → entities", "token")]


# --- handlers: plain values in, plain values out ----------------------------------------------------------------


def new_state(owner: str, user: str = "local", seed: int | None = None) -> dict:
    """A fresh labeling state for one browser session (`owner` leases examples, `user` signs labels)."""
    seed = zlib.crc32(owner.encode()) if seed is None else seed  # one shuffle per session, stable on reload
    return {
        "dataset": None, "task": None, "owner": owner, "user": user, "seed": seed, "status": "unlabeled",
        "label": None, "order": "id", "trail": [], "pos": 0, "undo": [], "given": 0, "labeled": False,
        "msg": "", "n": 0,
    }  # fmt: skip


def parse_examples(task: str, text: str) -> list[dict]:
    """Typed or pasted examples, one a line: pairs as ``text<TAB>second text``; token sentences split into words.

    >>> parse_examples("pair", "a cat\\ta feline\\n\\n")
    [{'text': 'a cat', 'text_pair': 'a feline'}]
    """
    out = []
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        if task == "token":
            out.append({"tokens": split_words(line)})
        elif task == "pair":
            first, tab, second = line.partition("\t")
            if not tab or not first.strip() or not second.strip():
                raise ValueError(f"line {n}: a pair needs two texts separated by a tab")
            out.append({"text": first.strip(), "text_pair": second.strip()})
        else:
            out.append({"text": line.strip()})
    return out


def create_dataset(ctx: Ctx, name: str, task: str, labels: str) -> dict:
    """An empty dataset with its labels (comma-separated; entity types for token datasets)."""
    names = [n.strip() for n in (labels or "").split(",") if n.strip()]
    with ctx.sessions() as s:
        try:
            ds = repo.create_dataset(s, (name or "").strip(), task, names)
        except (ValueError, SQLAlchemyError) as err:  # a full disk: a sentence, never the driver's SQL
            s.rollback()
            return {"ok": False, "dataset_id": None, "message": esc(user_message(err))}
        return {"ok": True, "dataset_id": ds.id, "message": f"Created **{esc(ds.name)}**: now add examples."}


def add_examples(ctx: Ctx, dataset_id: int | None, text: str) -> dict:
    """Add the typed/pasted lines as unlabeled examples (all or none)."""
    if not dataset_id:
        return {"ok": False, "added": 0, "message": "Choose or create a dataset first."}
    with ctx.sessions() as s:
        try:
            rows = parse_examples(repo.get_dataset(s, int(dataset_id)).task, text)
            if not rows:
                return {"ok": False, "added": 0, "message": "Type or paste examples, one a line."}
            n = repo.add_examples(s, int(dataset_id), rows, source_file="typed")
        except (ValueError, KeyError, SQLAlchemyError) as err:
            s.rollback()
            return {"ok": False, "added": 0, "message": esc(user_message(err))}
    return {"ok": True, "added": n, "message": f"Added {n} example(s)."}


def add_label(ctx: Ctx, st: dict, name: str) -> dict:
    """Add a label (or entity type) to the dataset on the fly; the card gets its button."""
    st = {**st, "msg": ""}
    if not st.get("dataset") or not (name or "").strip():
        return {**st, "msg": "Type the new label's name."}
    with ctx.sessions() as s:
        labels = repo.add_labels(s, st["dataset"], [name.strip()])
    return {**st, "msg": f"Labels: {esc(', '.join(labels))}"}


def open_dataset(
    ctx: Ctx, st: dict, dataset_id: int | None, status: str = "unlabeled", label: str | None = None,
    order: str = "id",
) -> dict:  # fmt: skip
    """Start labeling a dataset with a filter and an order: the first example is leased and shown."""
    st = {**st, "trail": [], "pos": 0, "msg": "", "status": status or "unlabeled", "label": label,
          "order": order or "id", "dataset": int(dataset_id) if dataset_id else None}  # fmt: skip
    if st["dataset"] is None:
        return {**st, "task": None}
    with ctx.sessions() as s:
        try:
            st["task"] = repo.get_dataset(s, st["dataset"]).task
        except KeyError:
            return {**st, "dataset": None, "task": None, "msg": "That dataset no longer exists."}
        _advance(s, st)
        _note_shown(s, st)
    return st


def _note_shown(s, st: dict) -> None:
    """Remember whether the example now on screen is labeled (a label on an unlabeled one must not overwrite)."""
    cur = current_id(st)
    s.expire_all()  # guarded writes bypass the identity map: read the row as it is now
    ex = repo.get_example(s, cur) if cur is not None else None
    st["labeled"] = ex is not None and (ex.label is not None or ex.tags is not None)


def _advance(s, st: dict) -> None:
    """Move forward: through examples visited before (after Back), else to a newly leased one."""
    if st["pos"] < len(st["trail"]) - 1:
        st["pos"] += 1
        return
    ex = repo.lease_next_example(
        s, st["dataset"], st["owner"], LEASE_S, order=st["order"], seed=st["seed"], status=st["status"],
        label=st["label"], exclude=st["trail"], score_job_id=repo.latest_score_job_id(s, st["dataset"]),
    )  # fmt: skip
    if ex is not None:
        st["trail"] = [*st["trail"], ex.id][-TRAIL_MAX:]
    st["pos"] = len(st["trail"]) - 1 if ex is not None else len(st["trail"])


def current_id(st: dict) -> int | None:
    """The id of the example on screen, or None."""
    return st["trail"][st["pos"]] if 0 <= st["pos"] < len(st["trail"]) else None


def _give(s, st: dict, ex_id: int, label: str | None = None, tags: list[str] | None = None) -> bool:
    """Commit one label for this session; remembers the previous value for Undo."""
    ex = repo.get_example(s, ex_id)
    previous = [ex_id, ex.label, ex.tags, ex.labeled_by]
    shown_unlabeled = ex_id == current_id(st) and not st["labeled"]
    try:
        ok = repo.give_label(
            s, ex_id, label, tags, labeled_by=st["user"], owner=st["owner"], expect_unlabeled=shown_unlabeled
        )
    except ValueError as err:
        s.rollback()
        st["msg"] = esc(err)
        return False
    if not ok:
        st["msg"] = "Someone else is labeling (or just labeled) this example: it was left as it is."
        return False
    st["undo"] = [*st["undo"], previous][-TRAIL_MAX:]
    st["given"] += 1
    st["labeled"] = True
    return True


def act(
    ctx: Ctx, st: dict, action: str, index: int | None = None, start: int | None = None,
    end: int | None = None, word: int | None = None, example: int | None = None,
) -> dict:  # fmt: skip
    """One key press or click on the card.

    Args:
        ctx: app context.
        st: the labeling state.
        action: ``label`` (index: which label), ``accept`` (the model's suggestion, or the shown tags),
            ``skip``, ``back``, ``undo``, ``span`` (index: entity type; start/end: character selection),
            ``remove`` (word: any word of the entity).
        example: the id the browser showed; a stale key (another example is shown by now) is ignored.

    Returns:
        The new state; ``msg`` says what went wrong, if anything.
    """
    st = {**st, "msg": ""}
    cur = current_id(st)
    if not st.get("dataset") or (example is not None and (example or None) != cur):
        return st
    with ctx.sessions() as s:
        labels = repo.label_names(s, st["dataset"])
        if action == "undo":
            _undo(s, st)
        elif action == "back":
            st["pos"] = max(0, min(st["pos"], len(st["trail"])) - 1)
        elif cur is None:
            pass
        elif action == "skip":
            repo.release_lease(s, cur, st["owner"])
            _advance(s, st)
        elif action == "label" and index is not None and 0 <= int(index) < len(labels):
            if st["task"] != "token" and _give(s, st, cur, label=labels[int(index)]):
                _advance(s, st)
        elif action == "accept":
            ex = repo.get_example(s, cur)
            score = repo.example_score(s, repo.latest_score_job_id(s, st["dataset"]), cur)
            if st["task"] == "token":
                tags = ex.tags or (score.tags if score else None) or ["O"] * len(ex.tokens)
                if _give(s, st, cur, tags=tags):
                    _advance(s, st)
            elif score is None or score.label is None:
                st["msg"] = "No suggestion for this example yet: press a number."
            elif _give(s, st, cur, label=score.label):
                _advance(s, st)
        elif action in ("span", "remove") and st["task"] == "token":
            ex = repo.get_example(s, cur)
            score = repo.example_score(s, repo.latest_score_job_id(s, st["dataset"]), cur)
            shown = ex.tags or (score.tags if score else None) or ["O"] * len(ex.tokens)
            if action == "remove" and word is not None:
                tags = remove_span(shown, int(word))
            elif action == "span" and index is not None and 0 <= int(index) < len(labels):
                tags = select_span(ex.tokens, shown, int(start or 0), int(end or 0), labels[int(index)])
            else:
                tags = None
            if tags is None:
                st["msg"] = "Select one or more words first."
            else:
                _give(s, st, cur, tags=tags)
        _note_shown(s, st)
    return st


def _undo(s, st: dict) -> None:
    """Put back the value this session's last label replaced, and show that example again."""
    if not st["undo"]:
        st["msg"] = "Nothing to undo."
        return
    *rest, (ex_id, label, tags, by) = st["undo"]
    try:
        repo.restore_label(s, ex_id, label, tags, by)
    except (KeyError, ValueError) as err:
        s.rollback()
        st["msg"] = esc(err)
    st["undo"], st["given"] = rest, max(0, st["given"] - 1)
    if ex_id in st["trail"]:
        st["pos"] = st["trail"].index(ex_id)
    else:
        st["trail"] = [*st["trail"], ex_id][-TRAIL_MAX:]
        st["pos"] = len(st["trail"]) - 1


def view(ctx: Ctx, st: dict) -> dict:
    """The card's plain values (see `label_view.card_html`); also records whether the shown one is labeled."""
    st["n"] = st.get("n", 0) + 1
    base = {"n": st["n"], "task": st.get("task"), "msg": st.get("msg", ""), "example": None}
    if not st.get("dataset"):
        return {**base, "empty": "Choose a dataset above, or create one and type examples in."}
    cur = current_id(st)
    with ctx.sessions() as s:
        labels = repo.label_names(s, st["dataset"])
        if cur is None:
            st["labeled"] = False
            left = "no example left" if st["status"] == "unlabeled" else "nothing more matches this filter"
            return {**base, "labels": labels, "empty": f"Done: {left}. Press ← to go back, u to undo."}
        ex = repo.get_example(s, cur)
        score = repo.example_score(s, repo.latest_score_job_id(s, st["dataset"]), cur)
        st["labeled"] = ex.label is not None or ex.tags is not None
        example = {
            k: getattr(ex, k) for k in ("id", "text", "text_pair", "tokens", "label", "tags", "labeled_by")
        }
        s.commit()
    where = f"{st['pos'] + 1} shown in this session · showing {dict((v, k) for k, v in FILTERS)[st['status']].lower()}"
    if st["label"] and st["status"] == "label":
        where += f" = {st['label']}"
    return {
        **base,
        "labels": labels,
        "example": example,
        "where": where,
        "score": (
            {"label": score.label, "tags": score.tags, "confidence": score.confidence} if score else None
        ),
    }


def progress(ctx: Ctx, st: dict) -> dict:
    """Labeled/total, per-label counts, labels given in this page, disagreements, which model suggests."""
    if not st.get("dataset"):
        return {}
    with ctx.sessions() as s:
        ds = st["dataset"]
        score_job = repo.latest_score_job_id(s, ds)
        train = repo.latest_train_job(s, ds)
        out = {
            "task": st["task"],
            "total": repo.count_examples(s, ds),
            "labeled": repo.count_examples(s, ds, status="labeled"),
            "distribution": repo.label_distribution(s, ds),
            "given": st["given"],
            "disagreements": repo.count_label_view(s, ds, "disagreements", score_job_id=score_job)
            if score_job
            else None,
        }
        if score_job:
            out["model"] = f"suggestions from scoring job #{score_job}"
        elif train is not None:
            out["model"] = f"job #{train.id} is {train.status}; suggestions appear once it is scored"
        else:
            out["model"] = "none yet: label a few examples of each label, then Retrain now"
        s.commit()
    return out


def retrain(ctx: Ctx, dataset_id: int | None) -> str:
    """Queue a train job on the current labels with the dataset's last job's settings (frozen defaults if none)."""
    if not dataset_id:
        return "Choose a dataset first."
    with ctx.sessions() as s:
        last = repo.latest_train_job(s, int(dataset_id))
        plan = repo.training_plan(s, int(dataset_id), (last.config if last else {}).get("eval_split", 0.1))
        if plan["problems"]:
            return esc(plan["problems"][0])
        if last is not None:
            # the labels as they are now: the last job's list misses a label added (or first used) since
            config = {**last.config, "resume": False, "labels": plan["labels"]}
            job = repo.create_job(s, int(dataset_id), config)
            return f"Job **#{job.id}** queued with the settings of job #{last.id}; suggestions follow when it ends."
    from ui.train import DEFAULT_MODEL, start_job

    r = start_job(ctx, int(dataset_id), DEFAULT_MODEL, "auto")  # no job yet: Auto picks for the label count
    return r["message"] + (" Suggestions follow when it ends." if r["ok"] else "")


def score_now(ctx: Ctx, dataset_id: int | None) -> str:
    """Queue scoring the dataset with its newest trained model (for disagreements on a fully labeled set)."""
    if not dataset_id:
        return "Choose a dataset first."
    import worker  # the supervisor side only: no torch

    with ctx.sessions() as s:
        done = [
            j for j in repo.list_jobs(s, int(dataset_id), "completed") if j.kind == "train" and j.model_dir
        ]
    job_id = worker.queue_score_job(ctx.sessions, done[0].id, force=True) if done else None
    return f"Scoring job **#{job_id}** queued." if job_id else "Train a model on this dataset first."


# --- the tab --------------------------------------------------------------------------------------------------------


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
            task = gr.Radio(TASKS, value="sequence", label="Task", elem_id="label-new-task")
            labels = gr.Textbox(
                label="Labels (comma-separated; entity types for words)", elem_id="label-new-labels"
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
        keys = ("index", "start", "end", "word", "example")
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

    def refresh(current):
        return gr.update(choices=dataset_choices(ctx, counts=False), value=current)

    return {"refresh": {"fn": refresh, "inputs": [dataset], "outputs": [dataset]}}
