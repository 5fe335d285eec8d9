"""The Label tab's handlers without a browser: label, undo, skip, back, add label, spans, filters, ordering."""

from __future__ import annotations

import re

import pytest

from storage import repo
from ui import label, label_view
from ui.label import act, current_id, new_state, open_dataset, view


def stored(sessions, ex_id: int):
    with sessions() as s:
        ex = repo.get_example(s, ex_id)
        return ex.label, ex.tags, ex.labeled_by


def opened(ctx, dataset_id, owner="tab-1", user="ana", **kw) -> dict:
    return open_dataset(ctx, new_state(owner, user), dataset_id, **kw)


def test_label_is_committed_at_once_and_moves_on(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset()
    ids = example_ids(ds)
    st = opened(ctx, ds)
    assert current_id(st) == ids[0]
    st = act(ctx, st, "label", index=1, example=ids[0])
    assert stored(sessions, ids[0]) == ("pos", None, "ana")
    assert current_id(st) == ids[1] and st["given"] == 1
    st = act(ctx, st, "label", index=0, example=ids[1])
    assert stored(sessions, ids[1])[0] == "neg" and current_id(st) == ids[2]


def test_undo_restores_the_previous_value_and_shows_the_example_again(
    ctx, sessions, make_dataset, example_ids
):
    ds = make_dataset()
    ids = example_ids(ds)
    st = opened(ctx, ds)
    st = act(ctx, st, "label", index=1)
    st = act(ctx, st, "label", index=0)
    st = act(ctx, st, "undo")
    assert stored(sessions, ids[1]) == (None, None, None) and current_id(st) == ids[1]
    assert stored(sessions, ids[0])[0] == "pos" and st["given"] == 1
    st = act(ctx, st, "undo")
    assert stored(sessions, ids[0])[0] is None and current_id(st) == ids[0]
    assert act(ctx, st, "undo")["msg"] == "Nothing to undo."


def test_undo_of_a_relabel_puts_the_old_label_back(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset(labeled=6)
    ids = example_ids(ds)
    st = opened(ctx, ds, status="labeled")
    st = act(ctx, st, "label", index=1)  # "neg" -> "pos"
    assert stored(sessions, ids[0]) == ("pos", None, "ana")
    act(ctx, st, "undo")
    assert stored(sessions, ids[0]) == ("neg", None, "import")


def test_skip_leaves_unlabeled_and_back_returns(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset()
    ids = example_ids(ds)
    st = opened(ctx, ds)
    st = act(ctx, st, "skip")
    assert current_id(st) == ids[1] and stored(sessions, ids[0])[0] is None
    st = act(ctx, st, "label", index=0)
    assert current_id(st) == ids[2]
    st = act(ctx, st, "back")
    assert current_id(st) == ids[1]
    st = act(ctx, st, "back")
    assert current_id(st) == ids[0]
    st = act(ctx, st, "label", index=1)  # label the skipped one; forward goes through the visited ones
    assert stored(sessions, ids[0])[0] == "pos" and current_id(st) == ids[1]
    st = act(ctx, st, "skip")
    assert current_id(st) == ids[2]


def test_skipped_example_goes_back_to_other_labelers(ctx, make_dataset, example_ids):
    ds = make_dataset()
    ids = example_ids(ds)
    a = opened(ctx, ds, owner="a")
    b = opened(ctx, ds, owner="b")
    assert current_id(b) == ids[1]  # ids[0] is leased to a
    act(ctx, a, "skip")
    assert current_id(opened(ctx, ds, owner="c")) == ids[0]


def test_stale_key_for_another_example_is_ignored(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset()
    ids = example_ids(ds)
    st = opened(ctx, ds)
    st = act(ctx, st, "label", index=0, example=ids[0])
    again = act(ctx, st, "label", index=1, example=ids[0])  # a double press that arrives late
    assert stored(sessions, ids[0])[0] == "neg" and current_id(again) == ids[1]


def test_all_done_then_undo(ctx, make_dataset):
    ds = make_dataset(n=1)
    st = act(ctx, opened(ctx, ds), "label", index=0)
    assert current_id(st) is None and "Done" in view(ctx, st)["empty"]
    assert current_id(act(ctx, st, "undo")) is not None


def test_add_label_on_the_fly_gives_a_new_button(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset()
    st = label.add_label(ctx, opened(ctx, ds), "neutral")
    assert "neutral" in label_view.card_html(view(ctx, st))
    st = act(ctx, st, "label", index=2)
    assert stored(sessions, example_ids(ds)[0])[0] == "neutral"


@pytest.mark.parametrize(("task", "kind"), [("sequence", "labels"), ("token", "entity types")])
def test_a_dataset_without_labels_says_how_to_add_the_first(ctx, make_dataset, task, kind):
    """A file of texts alone has no label to press: the card says where the first one comes from, until it has."""
    st = opened(ctx, make_dataset(task=task, labels=()))
    assert f"No {kind} yet" in label_view.card_html(view(ctx, st))
    st = label.add_label(ctx, st, "PER" if task == "token" else "pos")
    assert "yet:" not in label_view.card_html(view(ctx, st))


def test_accept_takes_the_models_suggestion(ctx, sessions, make_dataset, example_ids, score_job):
    ds = make_dataset()
    ids = example_ids(ds)
    st = opened(ctx, ds)
    assert act(ctx, st, "accept")["msg"].startswith("No suggestion")
    score_job(ds, {ids[0]: ("pos", 0.9, 0.3, 0.8)})
    v = view(ctx, st)
    assert v["score"]["label"] == "pos" and "Model suggests <b>pos</b>" in label_view.card_html(v)
    st = act(ctx, st, "accept")
    assert stored(sessions, ids[0])[0] == "pos" and current_id(st) == ids[1]


def test_token_span_selection_is_stored_as_iob2(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset("token", labels=("PER", "LOC"))
    ids = example_ids(ds)  # sentence "Ada met w0 in Paris": Ada 0-3, met 4-7, w0 8-10, in 11-13, Paris 14-19
    st = opened(ctx, ds)
    st = act(ctx, st, "span", index=0, start=1, end=6)  # "da me": snaps to "Ada met"
    assert stored(sessions, ids[0])[1] == ["B-PER", "I-PER", "O", "O", "O"]
    st = act(ctx, st, "span", index=1, start=8, end=10)  # adjacent entity of another type
    assert st["msg"] == ""
    assert stored(sessions, ids[0])[1] == ["B-PER", "I-PER", "B-LOC", "O", "O"]
    st = act(ctx, st, "span", index=1, start=14, end=19)
    st = act(ctx, st, "remove", word=1)  # one click on any word of the entity
    assert stored(sessions, ids[0])[1] == ["O", "O", "B-LOC", "O", "B-LOC"]
    assert act(ctx, st, "span", index=0, start=3, end=4)["msg"].startswith("Select")  # a space only
    st = act(ctx, st, "undo")  # undoes the removal
    assert stored(sessions, ids[0])[1] == ["B-PER", "I-PER", "B-LOC", "O", "B-LOC"]
    assert current_id(st) == ids[0]  # spans keep the example on screen; Enter moves on
    st = act(ctx, st, "accept")
    assert current_id(st) == ids[1]


def test_token_suggestion_is_prefilled_and_accepted(ctx, sessions, make_dataset, example_ids, score_job):
    ds = make_dataset("token", labels=("PER", "LOC"))
    ids = example_ids(ds)
    score_job(ds, {ids[0]: ["B-PER", "O", "O", "O", "B-LOC"]})
    st = opened(ctx, ds)
    html = label_view.card_html(view(ctx, st))
    assert "ft-suggested" in html and "pre-filled" in html
    act(ctx, st, "accept")
    assert stored(sessions, ids[0])[1] == ["B-PER", "O", "O", "O", "B-LOC"]


def test_empty_token_sentence_accepted_as_all_o(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset("token", labels=("PER",))
    act(ctx, opened(ctx, ds), "accept")
    assert stored(sessions, example_ids(ds)[0])[1] == ["O"] * 5


@pytest.mark.parametrize(
    ("status", "by", "expected"),
    [
        ("unlabeled", None, [4, 5]),
        ("labeled", None, [0, 1, 2, 3]),
        ("label", "pos", [1, 3]),
        ("all", None, None),
    ],
)
def test_filters(ctx, make_dataset, example_ids, status, by, expected):
    ds = make_dataset(labeled=4)
    ids = example_ids(ds)
    st, seen = opened(ctx, ds, status=status, label=by), []
    while current_id(st) is not None:
        seen.append(current_id(st))
        st = act(ctx, st, "skip")
    assert seen == ([ids[i] for i in expected] if expected else ids)


def test_disagreements_filter_uses_the_latest_score_job(ctx, make_dataset, example_ids, score_job):
    ds = make_dataset(labeled=4)  # neg pos neg pos, then two unlabeled
    ids = example_ids(ds)
    assert current_id(opened(ctx, ds, status="disagreements")) is None  # no model yet
    score_job(ds, {i: ("neg", 0.9, 0.1, 0.8) for i in ids})  # older job: disagrees on 1 and 3
    score_job(
        ds, {ids[0]: ("pos", 0.6, 0.6, 0.2), ids[1]: ("pos", 0.9, 0.1, 0.8), ids[4]: ("pos", 0.9, 0.1, 0.8)}
    )
    st = opened(ctx, ds, status="disagreements")
    assert current_id(st) == ids[0]
    assert current_id(act(ctx, st, "skip")) is None
    assert label.progress(ctx, st)["disagreements"] == 1


@pytest.mark.parametrize(
    ("order", "expected"),
    [("entropy", [2, 0, 1, 3, 4, 5]), ("margin", [1, 2, 0, 3, 4, 5]), ("id", [0, 1, 2, 3, 4, 5])],
)
def test_uncertainty_order_uses_the_stored_scores(ctx, make_dataset, example_ids, score_job, order, expected):
    ds = make_dataset()
    ids = example_ids(ds)
    # (label, confidence, entropy, margin); 3 has no entropy/margin, 4 and 5 no score: they come last
    score_job(
        ds,
        {
            ids[0]: ("pos", 0.7, 0.6, 0.4),
            ids[1]: ("pos", 0.55, 0.5, 0.1),
            ids[2]: ("neg", 0.6, 0.69, 0.2),
            ids[3]: ("neg", 0.9, None, None),
        },
    )
    st, seen = opened(ctx, ds, order=order), []
    while current_id(st) is not None:
        seen.append(current_id(st))
        st = act(ctx, st, "label", index=0)
    assert seen == [ids[i] for i in expected]


def test_random_order_is_seeded_per_session(ctx, make_dataset, example_ids):
    ds = make_dataset(n=30)

    def order(seed):
        st = open_dataset(ctx, new_state(f"tab-{seed}", seed=seed), ds, order="random")
        seen = []
        while current_id(st) is not None:
            seen.append(current_id(st))
            st = act(ctx, st, "skip")
        return seen

    first = order(1)
    assert sorted(first) == example_ids(ds) and first != example_ids(ds)
    for ex in first:  # the leases of session 1 must not hide examples from the next check
        with ctx.sessions() as s:
            repo.release_lease(s, ex, "tab-1")
    assert order(1) == first and order(2) != first


def test_two_sessions_never_overwrite_each_other(ctx, sessions, make_dataset, example_ids):
    ds = make_dataset(n=2)
    ids = example_ids(ds)
    a = opened(ctx, ds, owner="a", user="ana")
    with sessions() as s:
        assert not repo.give_label(s, ids[0], "pos", labeled_by="bo", owner="b")  # a holds it
        repo.release_lease(s, ids[0], "a")  # as if a's lease ran out: b labels it first
        assert repo.give_label(s, ids[0], "pos", labeled_by="bo", owner="b")
    a = act(ctx, a, "label", index=0)
    assert stored(sessions, ids[0]) == ("pos", None, "bo") and "Someone else" in a["msg"]


def test_user_text_is_escaped_in_the_card(ctx, sessions, make_dataset):
    with sessions() as s:
        ds = repo.create_dataset(s, "x", "pair", ["a", "b"])
        repo.add_examples(s, ds.id, [{"text": "<img src=x onerror=alert(1)>", "text_pair": "${1+1} `x`"}])
    html = label_view.card_html(view(ctx, opened(ctx, ds.id)))
    assert "<img" not in html and "${" not in html and "`" not in html


def test_create_dataset_and_typed_examples(ctx, sessions):
    r = label.create_dataset(ctx, "typed", "pair", "same, different")
    assert r["ok"]
    bad = label.add_examples(ctx, r["dataset_id"], "no tab here")
    assert not bad["ok"] and "line 1" in bad["message"]
    assert label.add_examples(ctx, r["dataset_id"], "a cat\ta feline\n\nthe sky\tthe sea\n")["added"] == 2
    assert not label.create_dataset(ctx, "typed", "pair", "x")["ok"]  # the name is taken
    tok = label.create_dataset(ctx, "ner", "token", "PER")
    label.add_examples(ctx, tok["dataset_id"], "Ada met Alan, in London.")
    with sessions() as s:
        assert repo.page_examples(s, tok["dataset_id"])[0].tokens == [
            "Ada",
            "met",
            "Alan",
            ",",
            "in",
            "London",
            ".",
        ]


def test_progress_counts(ctx, make_dataset):
    ds = make_dataset(labeled=3)
    st = act(ctx, opened(ctx, ds), "label", index=1)
    p = label.progress(ctx, st)
    assert (p["total"], p["labeled"], p["given"], p["distribution"]) == (6, 4, 1, {"neg": 2, "pos": 2})
    html = label_view.progress_html(p)
    assert "4</b> / 6 labeled" in html and "1</b> labels given" in html


def test_retrain_reuses_the_last_jobs_settings(ctx, sessions, make_dataset):
    ds = make_dataset(labeled=6)
    message = label.retrain(ctx, ds)
    assert "queued" in message and re.search(
        r"when it ends, in about \d+ (s|min)\.$", message
    )  # no job yet: Auto
    with sessions() as s:
        first = repo.latest_train_job(s, ds)
        assert first.config["mode"] == "auto"
        repo.request_cancel(s, first.id)
    message = label.retrain(ctx, ds)
    assert f"settings of job #{first.id}" in message and ", in about " in message
    with sessions() as s:
        again = repo.latest_train_job(s, ds)
        assert again.id != first.id and again.config == {**first.config, "resume": False}
    assert "two labels" in label.retrain(ctx, make_dataset(labeled=0, name="empty"))


def test_a_full_disk_is_a_sentence_not_a_driver_toast(ctx, make_dataset, monkeypatch):
    """Create dataset and Add examples on a full disk: a readable message naming the cause, no SQL, no raise."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def full(*_args, **_kwargs):
        raise OperationalError(
            "INSERT INTO datasets ...", {}, sqlite3.OperationalError("database or disk is full")
        )

    ds = make_dataset(n=2)
    monkeypatch.setattr(repo, "create_dataset", full)
    monkeypatch.setattr(repo, "add_examples", full)
    for out in (
        label.create_dataset(ctx, "new", "sequence", "a, b"),
        label.add_examples(ctx, ds, "one\ntwo"),
    ):
        assert out["ok"] is False
        assert "disk full" in out["message"] and "INSERT" not in out["message"]
