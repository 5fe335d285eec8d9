"""The labeling queries: atomic leases, guarded label writes, score jobs, filters and orders of the label view."""

from __future__ import annotations

import pytest

from storage import repo


def finished_score_job(session, dataset_id: int, rows: list[dict]) -> int:
    job = repo.create_job(session, dataset_id, {}, kind="score")
    repo.add_example_scores(session, job.id, rows)
    repo.claim_next_job(session, 1, kinds=("score",))
    repo.finish_job(session, job.id, {}, "")
    return job.id


def ids(session, dataset_id):
    return [e.id for e in repo.page_examples(session, dataset_id, limit=1000)]


def lease_all(session, dataset_id: int, **view) -> list[int]:
    """Lease example after example for owner "a" (each excluded once seen) until none is left; the ids in order."""
    seen: list[int] = []
    while (ex := repo.lease_next_example(session, dataset_id, "a", exclude=seen, **view)) is not None:
        seen.append(ex.id)
    return seen


def test_latest_score_and_train_jobs(session, make_dataset):
    ds = make_dataset(session, "sequence", n=2)
    assert repo.latest_score_job_id(session, ds.id) is None and repo.latest_train_job(session, ds.id) is None
    train = repo.create_job(session, ds.id, {"mode": "frozen"})
    queued_score = repo.create_job(session, ds.id, {}, kind="score")
    assert repo.latest_train_job(session, ds.id).id == train.id
    assert repo.latest_score_job_id(session, ds.id) is None  # not completed yet
    repo.claim_next_job(session, 1, kinds=("score",))
    repo.finish_job(session, queued_score.id, {}, "")
    newer = finished_score_job(session, ds.id, [])
    assert repo.latest_score_job_id(session, ds.id) == newer


def test_lease_next_example_hands_each_example_to_one_owner(session, make_dataset):
    ds = make_dataset(session, "sequence", n=3, labeled=False)
    a = repo.lease_next_example(session, ds.id, "a")
    b = repo.lease_next_example(session, ds.id, "b")
    assert a.id != b.id and a.lease_owner == "a"
    assert repo.lease_next_example(session, ds.id, "a").id == a.id  # one's own lease is free to oneself
    assert repo.lease_next_example(session, ds.id, "a", exclude=[a.id]).id not in (a.id, b.id)
    assert repo.lease_next_example(session, ds.id, "c") is None  # all three are leased
    assert repo.lease_next_example(session, ds.id, "c", status="all") is None
    repo.release_lease(session, a.id, "b")  # not b's: nothing happens
    assert repo.lease_next_example(session, ds.id, "c") is None
    repo.release_lease(session, a.id, "a")
    assert repo.lease_next_example(session, ds.id, "c").id == a.id


def test_expired_lease_is_free(session, make_dataset):
    ds = make_dataset(session, "sequence", n=1, labeled=False)
    a = repo.lease_next_example(session, ds.id, "a", lease_s=-1)
    assert repo.lease_next_example(session, ds.id, "b").id == a.id


@pytest.mark.parametrize(
    ("status", "label", "expected"),
    [
        ("unlabeled", None, [4, 5]),
        ("labeled", None, [0, 1, 2, 3]),
        ("label", "neg", [1, 3]),
        ("all", None, range(6)),
    ],
)
def test_label_view_filters(session, make_dataset, status, label, expected):
    ds = make_dataset(session, "sequence", n=6)
    every = ids(session, ds.id)
    for ex_id in every[4:]:
        repo.clear_label(session, ex_id)
    seen = lease_all(session, ds.id, status=status, label=label)
    assert seen == [every[i] for i in expected]
    assert repo.count_label_view(session, ds.id, status, label) == len(seen)


def test_token_by_label_filter_finds_entity_types(session, make_dataset):
    ds = make_dataset(session, "token", n=2)  # example 0 has ORG only, example 1 PER and ORG
    assert repo.count_label_view(session, ds.id, "label", "PER") == 1
    assert repo.count_label_view(session, ds.id, "label", "ORG") == 2


def test_disagreements_compare_with_the_score_job(session, make_dataset):
    ds = make_dataset(session, "sequence", n=4)  # pos neg pos neg
    every = ids(session, ds.id)
    assert repo.count_label_view(session, ds.id, "disagreements") == 0  # no scores: nothing to disagree with
    job = finished_score_job(session, ds.id, [{"example_id": i, "label": "pos"} for i in every])
    assert repo.count_label_view(session, ds.id, "disagreements", score_job_id=job) == 2
    tok = make_dataset(session, "token", n=2)
    t_ids = ids(session, tok.id)
    t_job = finished_score_job(
        session,
        tok.id,
        [
            {"example_id": t_ids[0], "tags": ["O", "B-ORG", "O", "O"]},
            {"example_id": t_ids[1], "tags": ["O"] * 4},
        ],
    )
    assert repo.count_label_view(session, tok.id, "disagreements", score_job_id=t_job) == 1


@pytest.mark.parametrize(
    ("order", "expected"), [("entropy", [1, 0, 2, 3]), ("margin", [2, 1, 0, 3]), ("id", [0, 1, 2, 3])]
)
def test_uncertainty_orders(session, make_dataset, order, expected):
    ds = make_dataset(session, "sequence", n=4, labeled=False)
    every = ids(session, ds.id)
    job = finished_score_job(
        session,
        ds.id,
        [
            {"example_id": every[0], "entropy": 0.5, "margin": 0.3, "confidence": 0.6},
            {"example_id": every[1], "entropy": 0.6, "margin": 0.2, "confidence": 0.6},
            {"example_id": every[2], "entropy": 0.4, "margin": 0.1, "confidence": 0.6},
        ],
    )
    seen = lease_all(session, ds.id, order=order, score_job_id=job)
    assert seen == [every[i] for i in expected]


def test_random_order_depends_on_the_seed_only(session, make_dataset):
    ds = make_dataset(session, "sequence", n=20, labeled=False)

    def order(seed):
        return lease_all(session, ds.id, order="random", seed=seed)

    assert order(3) == order(3) != order(4)
    assert sorted(order(3)) == ids(session, ds.id)


def test_give_label_guards(session, make_dataset):
    ds = make_dataset(session, "sequence", n=2, labeled=False)
    a = repo.lease_next_example(session, ds.id, "a")
    assert not repo.give_label(session, a.id, "pos", labeled_by="bo", owner="b")  # leased to a
    assert repo.give_label(session, a.id, "pos", labeled_by="ana", owner="a", expect_unlabeled=True)
    assert not repo.give_label(session, a.id, "neg", labeled_by="bo", owner="b", expect_unlabeled=True)
    session.expire_all()
    ex = repo.get_example(session, a.id)
    assert (ex.label, ex.labeled_by, ex.lease_owner) == ("pos", "ana", None)
    assert repo.give_label(session, a.id, "neg", labeled_by="bo", owner="b")  # a deliberate relabel
    with pytest.raises(ValueError):
        repo.give_label(session, a.id, "meh")


def test_give_label_repairs_token_tags(session, make_dataset):
    ds = make_dataset(session, "token", n=1, labeled=False)
    ex_id = ids(session, ds.id)[0]
    assert repo.give_label(session, ex_id, tags=["I-PER", "O", "O", "O"], labeled_by="ana")
    session.expire_all()
    assert repo.get_example(session, ex_id).tags == ["B-PER", "O", "O", "O"]


def test_restore_label_and_example_score(session, make_dataset):
    ds = make_dataset(session, "sequence", n=1)
    ex_id = ids(session, ds.id)[0]
    repo.restore_label(session, ex_id, None, None, None)
    assert repo.get_example(session, ex_id).label is None
    repo.restore_label(session, ex_id, "neg", None, "ana")
    assert repo.get_example(session, ex_id).labeled_by == "ana"
    assert repo.example_score(session, None, ex_id) is None
    job = finished_score_job(session, ds.id, [{"example_id": ex_id, "label": "pos", "confidence": 0.8}])
    assert repo.example_score(session, job, ex_id).confidence == 0.8
