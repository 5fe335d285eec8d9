"""The Label tab for multi-label and score datasets (issue 24): toggled sets, typed and keyed scores, undo, the
model's suggestions, and the job Retrain queues. Handlers only; the browser test drives the keys."""

from __future__ import annotations

import pytest

from storage import repo
from ui import label, label_view
from ui.label import act, current_id, new_state, open_dataset, view
from ui.problems import integer_scale, label_list, split_kind


def stored(sessions, example_id: int):
    with sessions() as s:
        return repo.get_example(s, example_id).label


@pytest.fixture
def multilabel(ctx, sessions) -> int:
    """An unlabeled multi-label dataset made in the Label tab: labels sports, politics, tech; three texts."""
    r = label.create_dataset(ctx, "news", "sequence:multilabel", "sports, politics, tech")
    assert r["ok"], r["message"]
    assert label.add_examples(ctx, r["dataset_id"], "match report\nelection night\nnew phone")["added"] == 3
    return r["dataset_id"]


@pytest.fixture
def scores(ctx) -> int:
    """An unlabeled score dataset made in the Label tab, with four texts."""
    r = label.create_dataset(ctx, "ratings", "sequence:regression", "")
    assert r["ok"], r["message"]
    label.add_examples(ctx, r["dataset_id"], "fine\nbad\ngreat\nok")
    return r["dataset_id"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sequence", ("sequence", "single")),
        ("pair:multilabel", ("pair", "multilabel")),
        ("sequence:regression", ("sequence", "regression")),
    ],
)
def test_a_kind_choice_is_a_task_and_a_problem(kind, expected):
    assert split_kind(kind) == expected


def test_token_kinds_take_no_other_problem():
    with pytest.raises(ValueError, match="one tag per word"):
        split_kind("token:multilabel")


@pytest.mark.parametrize(
    ("summary", "scale"),
    [
        ({"count": 3, "min": 1.0, "max": 5.0}, [1, 2, 3, 4, 5]),
        ({"count": 3, "min": 0.0, "max": 9.0}, None),  # ten values: more than nine keys
        ({"count": 3, "min": 1.0, "max": 4.5}, None),  # not whole numbers
        ({"count": 3, "min": 10.0, "max": 12.0}, None),  # no digit key for 10
        ({"count": 0, "min": None, "max": None}, None),
    ],
)
def test_keys_give_scores_only_on_a_small_integer_scale(summary, scale):
    assert integer_scale(summary) == scale


def test_keys_toggle_labels_and_enter_saves_the_set(ctx, sessions, multilabel, example_ids):
    first, second, _ = example_ids(multilabel)
    st = open_dataset(ctx, new_state("tab-1"), multilabel)
    assert st["problem"] == "multilabel" and current_id(st) == first
    for index in (0, 1, 2, 2):  # sports, politics, tech, tech again: tech is off
        st = act(ctx, st, "label", index=index, example=first)
    assert current_id(st) == first and stored(sessions, first) is None  # toggling writes nothing
    v = view(ctx, st)
    assert v["example"]["picked"] == ["sports", "politics"]
    card = label_view.card_html(v)
    assert card.count('aria-pressed="true"') == 2 and 'data-problem="multilabel"' in card

    st = act(ctx, st, "accept", example=first)
    assert label_list(stored(sessions, first)) == ["sports", "politics"] and current_id(st) == second
    assert view(ctx, st)["example"]["picked"] == []  # the next example starts empty, not with the last set

    st = act(ctx, st, "accept", example=second)  # nothing toggled: "none apply" is a label too
    assert label_list(stored(sessions, second)) == []
    with sessions() as s:
        assert repo.count_examples(s, multilabel, status="labeled") == 2
        assert repo.label_distribution(s, multilabel) == {"sports": 1, "politics": 1, "tech": 0}

    st = act(ctx, st, "undo")
    assert stored(sessions, second) is None and current_id(st) == second
    st = act(ctx, st, "undo")
    assert stored(sessions, first) is None and current_id(st) == first


def test_a_labeled_example_shows_its_set_and_leaving_drops_unsaved_toggles(
    ctx, sessions, multilabel, example_ids
):
    first, second, _ = example_ids(multilabel)
    with sessions() as s:
        repo.set_label(s, first, ["tech"])
    st = open_dataset(ctx, new_state("tab-1"), multilabel, status="all")
    assert view(ctx, st)["example"]["picked"] == ["tech"]
    assert "labeled <b>tech</b>" in label_view.card_html(view(ctx, st))
    st = act(ctx, st, "label", index=0, example=first)  # sports on, not saved
    st = act(ctx, st, "skip", example=first)
    st = act(ctx, st, "back")
    assert current_id(st) == first and view(ctx, st)["example"]["picked"] == ["tech"]
    assert label_list(stored(sessions, first)) == ["tech"]


def test_the_models_labels_pre_fill_a_multilabel_card(ctx, sessions, multilabel, example_ids, score_job):
    first, *_ = example_ids(multilabel)
    score_job(multilabel, {first: ('["politics", "tech"]', 0.8, 0.4, 0.3)})
    st = open_dataset(ctx, new_state("tab-1"), multilabel)
    v = view(ctx, st)
    assert v["score"]["labels"] == ["politics", "tech"] and v["example"]["picked_by_model"]
    assert "Model suggests <b>politics, tech</b>" in label_view.card_html(v)
    st = act(ctx, st, "label", index=2, example=first)  # tech off
    st = act(ctx, st, "accept", example=first)
    assert label_list(stored(sessions, first)) == ["politics"]


def test_a_typed_score_is_saved_and_a_bad_one_is_refused(ctx, sessions, scores, example_ids):
    first, second, *_ = example_ids(scores)
    st = open_dataset(ctx, new_state("tab-1"), scores)
    assert st["problem"] == "regression" and st["scale"] is None
    st = act(ctx, st, "score", value="lots", example=first)
    assert "number" in st["msg"] and stored(sessions, first) is None and current_id(st) == first
    st = act(ctx, st, "score", value=" 3,5 ", example=first)  # a decimal comma, as many keyboards type it
    assert float(stored(sessions, first)) == 3.5 and current_id(st) == second
    st = act(ctx, st, "label", index=0, example=second)  # a label key means nothing on a score card
    assert stored(sessions, second) is None
    st = act(ctx, st, "undo")
    assert stored(sessions, first) is None


def test_a_small_integer_scale_gets_keys(ctx, sessions, scores, example_ids):
    first, second, third, _ = example_ids(scores)
    with sessions() as s:
        repo.set_label(s, first, 1.0)
        repo.set_label(s, second, 5.0)
    st = open_dataset(ctx, new_state("tab-1"), scores)
    assert st["scale"] == [1, 2, 3, 4, 5] and current_id(st) == third
    card = label_view.card_html(view(ctx, st))
    assert 'data-scale="1,2,3,4,5"' in card and card.count('data-action="score"') == 5
    st = act(ctx, st, "score", value="4", example=third)
    assert float(stored(sessions, third)) == 4.0
    p = label.progress(ctx, st)
    assert p["summary"]["count"] == 3 and p["summary"]["max"] == 5.0
    assert "3 scores" in label_view.progress_html(p)


def test_the_models_score_is_suggested_and_enter_accepts_it(ctx, sessions, scores, example_ids, score_job):
    first, second, *_ = example_ids(scores)
    score_job(scores, {first: ("3.25", None, None, None)})
    st = open_dataset(ctx, new_state("tab-1"), scores)
    v = view(ctx, st)
    assert v["score"]["value"] == 3.25 and "Model suggests <b>3.25</b>" in label_view.card_html(v)
    st = act(ctx, st, "accept", example=first)
    assert float(stored(sessions, first)) == 3.25 and current_id(st) == second
    st = act(ctx, st, "accept", example=second)  # no suggestion for this one
    assert "type a score" in st["msg"] and stored(sessions, second) is None


def test_a_score_dataset_ignores_typed_labels_and_says_so(ctx):
    r = label.create_dataset(ctx, "stars", "pair:regression", "good, bad")
    assert r["ok"] and "ignored" in r["message"]


def test_retrain_sends_the_datasets_problem(ctx, sessions, scores, example_ids):
    with sessions() as s:
        for i, ex_id in enumerate(example_ids(scores)):
            repo.set_label(s, ex_id, float(i % 5 + 1))
        repo.add_examples(s, scores, [{"text": f"more {i}", "label": float(i % 5 + 1)} for i in range(12)])
    message = label.retrain(ctx, scores)
    assert "queued" in message, message
    with sessions() as s:
        job = repo.latest_train_job(s, scores)
        assert job.config["problem"] == "regression" and job.config["labels"] == ["score"]
    assert "settings of job" in label.retrain(ctx, scores)  # the second from the first's settings
    with sessions() as s:
        assert repo.latest_train_job(s, scores).config["problem"] == "regression"
