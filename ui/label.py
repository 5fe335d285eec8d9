"""Label tab: one example at a time, labeled by key or click, each label committed at once; the model suggests.

The handlers are plain functions of a small state dict (ids and counters only, kept in `gr.State`):

    {"dataset", "task", "owner" (lease id: the browser session), "user" (labeled_by), "seed", "status",
     "label", "order", "trail" (example ids visited, in order), "pos" (index of the shown one in trail;
     len(trail) when none is left), "undo" ([id, previous label, previous tags, previous labeled_by], ...),
     "given", "labeled" (whether the shown example was labeled when drawn), "msg", "n" (draw counter),
     "problem" (single, multilabel, regression), "scale" (scores keys give, or None), "picked", "picked_for"
     (the multi-label set toggled on the card, see `ui.label_problems`)}

The tab itself (layout and wiring) is `ui.label_tab`.

Several browser sessions label one dataset at once: each example they are shown is leased to them
(`repo.lease_next_example`), and a label is written only if no one else holds the example and, when it was shown
unlabeled, no one labeled it meanwhile (`repo.give_label`).
"""

from __future__ import annotations

import zlib

from storage import repo
from ui import label_problems
from ui.common import Ctx, esc
from ui.label_data import (  # noqa: F401  (re-exported: the tab and its tests find them here)
    add_examples,
    add_label,
    create_dataset,
    parse_examples,
    retrain,
    score_now,
)
from ui.spans import remove_span, select_span

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


# --- handlers: plain values in, plain values out ----------------------------------------------------------------


def new_state(owner: str, user: str = "local", seed: int | None = None) -> dict:
    """A fresh labeling state for one browser session (`owner` leases examples, `user` signs labels)."""
    seed = zlib.crc32(owner.encode()) if seed is None else seed  # one shuffle per session, stable on reload
    return {
        "dataset": None, "task": None, "owner": owner, "user": user, "seed": seed, "status": "unlabeled",
        "label": None, "order": "id", "trail": [], "pos": 0, "undo": [], "given": 0, "labeled": False,
        "msg": "", "n": 0, "problem": "single", "scale": None, "picked": None, "picked_for": None,
    }  # fmt: skip


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
        st.update(label_problems.dataset_kind(s, st["dataset"]))
        label_problems.forget_picked(st)
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


def _give(s, st: dict, ex_id: int, label=None, tags: list[str] | None = None) -> bool:
    """Commit one label (a name; a list of names for multi-label; a number for a score) for this session;
    remembers the previous value for Undo."""
    ex = repo.get_example(s, ex_id)
    previous = [
        ex_id,
        label_problems.restorable(ex.label, st.get("problem", "single")),
        ex.tags,
        ex.labeled_by,
    ]
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
    label_problems.forget_picked(st)
    return True


def act(
    ctx: Ctx, st: dict, action: str, index: int | None = None, start: int | None = None,
    end: int | None = None, word: int | None = None, example: int | None = None, value=None,
) -> dict:  # fmt: skip
    """One key press or click on the card.

    Args:
        ctx: app context.
        st: the labeling state.
        action: ``label`` (index: which label; multi-label: toggles it on the card), ``accept`` (the model's
            suggestion, or the shown tags; multi-label: the toggled set, empty = none apply), ``score`` (value: a
            typed or keyed number, score datasets), ``skip``, ``back``, ``undo``, ``span`` (index: entity type;
            start/end: character selection), ``remove`` (word: any word of the entity).
        value: the score of a ``score`` action.
        example: the id the browser showed; a stale key (another example is shown by now) is ignored.

    Returns:
        The new state; ``msg`` says what went wrong, if anything.
    """
    st = {**st, "msg": ""}
    cur = current_id(st)
    if not st.get("dataset") or (example is not None and (example or None) != cur):
        return st
    problem = st.get("problem", "single")
    if action in ("undo", "back", "skip"):
        label_problems.forget_picked(st)  # a set toggled on the card and not confirmed is dropped
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
        elif problem != "single" and action in ("label", "accept", "score"):
            _act_problem(s, st, action, cur, labels, index, value)
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


def _act_problem(s, st: dict, action: str, cur: int, labels: list[str], index, value) -> None:
    """A key or click on a multi-label card (toggle, confirm) or a score card (a score, the model's score)."""
    ex = repo.get_example(s, cur)
    if st["problem"] == "multilabel":
        if action == "label" and index is not None and 0 <= int(index) < len(labels):
            label_problems.toggle(s, st, ex, labels, int(index))
        elif action == "accept" and _give(s, st, cur, label=label_problems.picked(s, st, ex)):
            _advance(s, st)
        return
    if action == "accept":
        score = repo.example_score(s, repo.latest_score_job_id(s, st["dataset"]), cur)
        value = label_problems.suggested_score(score)
        if value is None:
            st["msg"] = "No suggestion for this example yet: type a score and press Enter."
            return
    elif action != "score":
        return
    try:
        number = label_problems.parse_score(value)
    except ValueError as err:
        st["msg"] = esc(err)
        return
    if _give(s, st, cur, label=number):
        _advance(s, st)


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
    problem = st.get("problem", "single")
    base = {"n": st["n"], "task": st.get("task"), "msg": st.get("msg", ""), "example": None, "problem": problem,
            "scale": st.get("scale")}  # fmt: skip
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
        if problem == "multilabel":  # the set on the card, and whether it is the model's (not yet confirmed)
            example["picked"] = label_problems.picked(s, st, ex)
            example["picked_by_model"] = (
                st.get("picked_for") != ex.id
                and ex.label is None
                and bool(label_problems.suggested_labels(score))
            )
        s.commit()
    where = f"{st['pos'] + 1} shown in this session · showing {dict((v, k) for k, v in FILTERS)[st['status']].lower()}"
    if st["label"] and st["status"] == "label":
        where += f" = {st['label']}"
    return {
        **base,
        "labels": labels,
        "example": example,
        "where": where,
        "score": _suggestion(score, problem),
    }


def _suggestion(score, problem: str) -> dict | None:
    """What the model suggests, per problem: a label, tags, a set of labels (``labels``) or a score (``value``)."""
    if score is None:
        return None
    if problem == "multilabel":
        return {"labels": label_problems.suggested_labels(score), "confidence": score.confidence}
    if problem == "regression":
        return {"value": label_problems.suggested_score(score)}
    return {"label": score.label, "tags": score.tags, "confidence": score.confidence}


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
            "problem": st.get("problem", "single"),
            "summary": label_problems.score_summary(s, ds) if st.get("problem") == "regression" else None,
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
            out["model"] = (
                "none yet: score some examples, then Retrain now"
                if st.get("problem") == "regression"
                else "none yet: label a few examples of each label, then Retrain now"
            )
        s.commit()
    return out
