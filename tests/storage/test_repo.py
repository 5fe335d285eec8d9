"""Dataset, label and example queries in storage.repo."""

from __future__ import annotations

import pytest
from storage_factories import example_dict

from storage import examples as examples_module
from storage import repo
from storage.models import Example


def test_create_list_rename_delete_dataset(session, make_dataset, db_snapshot):
    ds = repo.create_dataset(session, "reviews", "sequence", ["neg", "pos"])
    assert ds.label_names == ["neg", "pos"]
    assert [d.name for d in repo.list_datasets(session)] == ["reviews"]
    with pytest.raises(ValueError, match="already exists"):
        repo.create_dataset(session, "reviews", "pair")
    with pytest.raises(ValueError, match="task must be"):
        repo.create_dataset(session, "x", "regression")
    other = make_dataset(session, "pair", n=4)
    with pytest.raises(ValueError, match="already exists"):
        repo.rename_dataset(session, ds.id, other.name)
    assert repo.rename_dataset(session, ds.id, "films").name == "films"
    assert repo.get_dataset_by_name(session, "films").id == ds.id
    assert repo.get_dataset_by_name(session, "reviews") is None

    repo.create_job(session, other.id, {})
    before = db_snapshot(session)
    with pytest.raises(ValueError, match="cancel"):
        repo.delete_dataset(session, other.id)
    assert db_snapshot(session) == before
    repo.delete_dataset(session, ds.id)
    with pytest.raises(KeyError):
        repo.get_dataset(session, ds.id)
    after = db_snapshot(session)
    assert after["examples"] == 4 and after["labels"] == 2  # only the pair dataset's rows are left


def test_delete_dataset_cascades_to_examples_and_jobs(session, make_dataset, db_snapshot):
    ds = make_dataset(session, "sequence", n=5)
    job = repo.create_job(session, ds.id, {})
    repo.add_loss_points(session, job.id, [{"step": 1, "loss": 0.5}])
    repo.mark_cancelled(session, job.id)
    repo.delete_dataset(session, ds.id)
    counts = db_snapshot(session)
    assert counts["examples"] == counts["jobs"] == counts["loss_points"] == counts["labels"] == 0


def test_label_set_order_add_and_set(session, make_dataset):
    ds = make_dataset(session, "sequence", n=4)
    assert repo.add_labels(session, ds.id, ["neutral", "pos"]) == ["pos", "neg", "neutral"]
    assert repo.set_labels(session, ds.id, ["neg", "neutral", "pos"]) == ["neg", "neutral", "pos"]
    assert repo.label_names(session, ds.id) == ["neg", "neutral", "pos"]
    with pytest.raises(ValueError, match="still in use"):
        repo.set_labels(session, ds.id, ["neutral"])


def test_token_dataset_tags_follow_from_entity_types(session, make_dataset):
    ds = make_dataset(session, "token", n=2)
    assert repo.tag_names(session, ds.id) == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def test_add_examples_validates_against_label_set(session, make_dataset, db_snapshot):
    ds = make_dataset(session, "sequence", n=2)
    before = db_snapshot(session)
    with pytest.raises(ValueError, match="not in the label set"):
        repo.add_examples(session, ds.id, [{"text": "ok", "label": "pos"}, {"text": "x", "label": "meh"}])
    session.rollback()
    assert db_snapshot(session) == before
    tok = make_dataset(session, "token", n=1)
    with pytest.raises(ValueError, match="2 tags for 1 tokens"):
        repo.add_examples(session, tok.id, [{"tokens": ["a"], "tags": ["O", "O"]}])
    session.rollback()
    with pytest.raises(ValueError, match="tag set"):
        repo.add_examples(session, tok.id, [{"tokens": ["a"], "tags": ["B-LOC"]}])


def test_import_is_one_transaction(session, monkeypatch, db_snapshot):
    """A failure after some chunks were inserted leaves no dataset, no labels, no examples."""
    monkeypatch.setattr(examples_module, "INSERT_CHUNK", 10)
    calls = []
    real = examples_module._insert_chunk

    def failing(sess, rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real(sess, rows)

    monkeypatch.setattr(examples_module, "_insert_chunk", failing)
    examples = [example_dict("sequence", i) for i in range(50)]
    before = db_snapshot(session)
    with pytest.raises(RuntimeError, match="disk full"):
        repo.import_examples(session, "half", "sequence", examples, ["pos", "neg"])
    assert calls == [10, 10, 10]  # two chunks really were written before the failure
    assert db_snapshot(session) == before
    monkeypatch.setattr(examples_module, "_insert_chunk", real)
    ds = repo.import_examples(session, "half", "sequence", examples, ["pos", "neg"], split="train")
    assert repo.count_examples(session, ds.id, split="train") == 50


def test_import_into_existing_dataset_checks_task_and_extends_labels(session, make_dataset, db_snapshot):
    ds = make_dataset(session, "sequence", n=2, name="d")
    before = db_snapshot(session)
    with pytest.raises(ValueError, match="is a sequence dataset"):
        repo.import_examples(session, "d", "pair", [example_dict("pair", 0)])
    assert db_snapshot(session) == before
    repo.import_examples(session, "d", "sequence", [{"text": "meh", "label": "neutral"}], ["neutral"])
    assert repo.label_names(session, ds.id) == ["pos", "neg", "neutral"]


def test_page_filter_count_and_search(session, make_dataset):
    ds = make_dataset(session, "sequence", n=10)
    repo.add_examples(session, ds.id, [{"text": "100% sure_thing", "label": None}, {"text": "Café au lait"}])
    assert repo.count_examples(session, ds.id) == 12
    assert repo.count_examples(session, ds.id, status="labeled") == 10
    assert repo.count_examples(session, ds.id, status="unlabeled") == 2
    assert repo.count_examples(session, ds.id, label="pos") == 5
    page = repo.page_examples(session, ds.id, offset=2, limit=3)
    assert [e.text for e in page] == ["film example 2", "plot example 3", "actor example 4"]
    assert [e.text for e in repo.page_examples(session, ds.id, search="100%")] == ["100% sure_thing"]
    assert repo.count_examples(session, ds.id, search="%") == 1  # % is literal, not a wildcard
    assert repo.count_examples(session, ds.id, search="_") == 1
    assert repo.count_examples(session, ds.id, search="EXAMPLE", status="labeled", label="neg") == 5
    with pytest.raises(ValueError):
        repo.count_examples(session, ds.id, status="weird")


def test_search_finds_tokens_and_pairs(session, make_dataset):
    tok = make_dataset(session, "token", n=3)
    repo.add_examples(session, tok.id, [{"tokens": ["São", "Paulo"], "tags": None}])
    assert repo.count_examples(session, tok.id, search="são") == 1
    assert repo.count_examples(session, tok.id, search="Acme") == 3
    pair = make_dataset(session, "pair", n=3)
    assert repo.count_examples(session, pair.id, search="pair 2") == 1


def test_set_and_clear_label(session, make_dataset):
    ds = make_dataset(session, "sequence", n=2, labeled=False)
    ex = repo.page_examples(session, ds.id)[0]
    assert ex.label is None
    repo.set_label(session, ex.id, "neg", labeled_by="ana")
    session.expire_all()
    got = repo.get_example(session, ex.id)
    assert (got.label, got.labeled_by) == ("neg", "ana") and got.labeled_at is not None
    with pytest.raises(ValueError, match="not in the label set"):
        repo.set_label(session, ex.id, "meh")
    with pytest.raises(ValueError, match="give tags"):
        repo.set_label(session, ex.id, tags=["O"])
    repo.clear_label(session, ex.id)
    assert repo.count_examples(session, ds.id, status="labeled") == 0


def test_set_tags_repairs_stray_inside_tags(session, make_dataset):
    ds = make_dataset(session, "token", n=1, labeled=False)
    ex = repo.page_examples(session, ds.id)[0]
    got = repo.set_label(session, ex.id, tags=["I-PER", "O", "B-ORG", "I-ORG"])
    assert got.tags == ["B-PER", "O", "B-ORG", "I-ORG"]
    with pytest.raises(ValueError, match="3 tags for 4 tokens"):
        repo.set_label(session, ex.id, tags=["O", "O", "O"])
    assert repo.count_examples(session, ds.id, status="labeled") == 1


def test_label_distribution(session, make_dataset):
    ds = make_dataset(session, "sequence", n=5)
    repo.add_labels(session, ds.id, ["neutral"])
    assert repo.label_distribution(session, ds.id) == {"pos": 3, "neg": 2, "neutral": 0}
    assert repo.label_distribution(session, ds.id, include_zero=False) == {"pos": 3, "neg": 2}
    tok = make_dataset(session, "token", n=3)
    assert repo.label_distribution(session, tok.id) == {"PER": 1, "ORG": 3}  # entity spans, not tokens


def test_dataset_summaries(session, make_dataset):
    make_dataset(session, "pair", n=3)
    (summary,) = repo.dataset_summaries(session)
    assert summary["examples"] == 3 and summary["labeled"] == 3
    assert summary["distribution"] == {"pos": 2, "neg": 1}


def test_split_is_stratified_and_deterministic(session, make_dataset):
    ds = make_dataset(session, "sequence", n=40)
    repo.add_examples(session, ds.id, [{"text": "unlabeled"}])
    counts = repo.assign_split(session, ds.id, eval_fraction=0.25, test_fraction=0.1, seed=7)
    assert counts == {"train": 26, "eval": 10, "test": 4}
    for label in ("pos", "neg"):  # 20 each -> 5 eval and 2 test per label
        assert repo.count_examples(session, ds.id, label=label, split="eval") == 5
        assert repo.count_examples(session, ds.id, label=label, split="test") == 2
    assert repo.count_examples(session, ds.id, status="unlabeled", split="train") == 0
    first = [e["id"] for e in repo.examples_for_training(session, ds.id, "eval")]
    repo.assign_split(session, ds.id, eval_fraction=0.25, test_fraction=0.1, seed=7)
    assert [e["id"] for e in repo.examples_for_training(session, ds.id, "eval")] == first
    repo.assign_split(session, ds.id, eval_fraction=0.25, test_fraction=0.1, seed=8)
    assert [e["id"] for e in repo.examples_for_training(session, ds.id, "eval")] != first
    with pytest.raises(ValueError):
        repo.assign_split(session, ds.id, eval_fraction=0.6, test_fraction=0.5)


def test_split_keeps_singleton_classes_in_train(session):
    ds = repo.create_dataset(session, "rare", "sequence", ["a", "b"])
    repo.add_examples(
        session, ds.id, [{"text": f"t{i}", "label": "a"} for i in range(9)] + [{"text": "x", "label": "b"}]
    )
    repo.assign_split(session, ds.id, eval_fraction=0.5)
    assert repo.examples_for_training(session, ds.id, "train")[-1]["label"] == "b"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sequence", {"text": "good example 0", "label": "pos"}),
        ("pair", {"text": "good example 0", "text_pair": "pair 0", "label": "pos"}),
        ("token", {"tokens": ["w0", "good", "Acme", "Corp"], "tags": ["O", "B-ORG", "O", "O"]}),
    ],
)
def test_examples_for_training_engine_format(session, make_dataset, kind, expected):
    ds = make_dataset(session, kind, n=3)
    repo.add_examples(session, ds.id, [example_dict(kind, 9, labeled=False)])
    rows = repo.examples_for_training(session, ds.id)
    assert len(rows) == 3  # the unlabeled one is left out
    first = dict(rows[0])
    assert isinstance(first.pop("id"), int)
    assert first == expected
    assert repo.examples_for_training(session, ds.id, split="train") == []
    exported = repo.examples_for_export(session, ds.id)
    assert len(exported) == 4 and "id" not in exported[0]


def test_training_problems(session, make_dataset):
    ds = make_dataset(session, "sequence", n=1)
    assert "at least two classes" in repo.training_problems(session, ds.id)[0]
    repo.add_examples(session, ds.id, [{"text": "x", "label": "neg"}])
    assert repo.training_problems(session, ds.id) == []
    tok = make_dataset(session, "token", n=1, labeled=False)
    assert repo.training_problems(session, tok.id)
    repo.set_label(session, repo.page_examples(session, tok.id)[0].id, tags=["B-PER", "O", "O", "O"])
    assert repo.training_problems(session, tok.id) == []


def test_next_example_respects_leases(session, make_dataset):
    ds = make_dataset(session, "sequence", n=3, labeled=False)
    a = repo.next_example(session, ds.id, owner="ana")
    b = repo.next_example(session, ds.id, owner="bo")
    assert a.id != b.id
    assert repo.next_example(session, ds.id, owner="ana").id == a.id  # own lease is handed back
    repo.set_label(session, a.id, "pos")
    c = repo.next_example(session, ds.id, owner="cy")
    assert c.id not in (a.id, b.id)
    assert repo.next_example(session, ds.id, owner="dee") is None
    assert repo.next_example(session, ds.id, owner="dee", lease_s=0) is None
    session.get(Example, b.id).lease_until = None  # lease expired
    session.commit()
    assert repo.next_example(session, ds.id, owner="dee").id == b.id


def test_delete_examples(session, make_dataset):
    ds = make_dataset(session, "sequence", n=4)
    ids = [e.id for e in repo.page_examples(session, ds.id)][:2]
    assert repo.delete_examples(session, ids) == 2
    assert repo.count_examples(session, ds.id) == 2
