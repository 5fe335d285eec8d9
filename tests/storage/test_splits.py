"""Splits from files: a split column (any spelling of train / dev / test) or one split per file, into one dataset."""

from __future__ import annotations

import pytest

from storage import io, repo
from storage.models import SPLITS
from storage.splits import SPLIT_ALIASES, guess_split_column, split_name


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("train", "train"),
        ("Training", "train"),
        ("dev", "eval"),
        ("VALIDATION", "eval"),
        (" valid ", "eval"),
        ("eval", "eval"),
        ("Test", "test"),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_split_names_map_case_insensitively_onto_the_stored_splits(cell, stored):
    assert split_name(cell) == stored


def test_every_stored_split_has_a_spelling_and_nothing_else_is_stored():
    assert set(SPLIT_ALIASES.values()) == set(SPLITS)


def test_an_unknown_split_names_the_accepted_values():
    with pytest.raises(ValueError, match="'holdout' is not one of train, dev"):
        split_name("holdout")


def test_split_column_is_guessed_by_name():
    assert guess_split_column(["text", "label", "Split"]) == "Split"
    assert guess_split_column(["text", "label"]) is None


def test_split_column_fills_train_dev_and_test(write_file, session):
    path = write_file(
        "all.csv",
        "text,label,split\ngood,pos,train\nbad,neg,TRAIN\nfine,pos,dev\nawful,neg,validation\n"
        "great,pos,test\nworse,neg,Test\nmeh,neg,\n",
    )
    loaded = io.load_examples(path, "sequence", split_col="split")
    assert [ex.get("split") for ex in loaded.examples] == [
        "train", "train", "eval", "eval", "test", "test", None,
    ]  # fmt: skip
    assert io.preview_file(path, "sequence").split_col == "split"
    ds = repo.import_examples(session, "mixed", "sequence", loaded.examples, loaded.labels, split="train")
    # the blank cell takes the import's own split; the others keep the column's
    assert repo.split_counts(session, ds.id) == {"train": 3, "eval": 2, "test": 2}


def test_a_bad_split_cell_names_file_row_and_column_and_nothing_is_read(write_file):
    path = write_file("bad.csv", "text,label,part\ngood,pos,train\nbad,neg,holdout\n")
    with pytest.raises(io.DataError, match=r"bad.csv, row 2, column 'part': split 'holdout' is not one of"):
        io.load_examples(path, "sequence", split_col="part")


def test_a_missing_split_column_lists_the_columns(write_file):
    path = write_file("x.csv", "text,label\ngood,pos\n")
    with pytest.raises(io.DataError, match="column not found; columns are"):
        io.load_examples(path, "sequence", split_col="split")


def test_without_a_split_column_the_split_cells_are_ignored(write_file):
    """Compatibility: a file's "split" column only counts when the import names it."""
    path = write_file("s.csv", "text,label,split\ngood,pos,test\n")
    assert "split" not in io.load_examples(path, "sequence").examples[0]


def test_separate_files_append_into_one_dataset_with_their_split(write_file, session):
    train = io.load_examples(write_file("train.csv", "text,label\ngood,pos\nbad,neg\nok,pos\n"), "sequence")
    test = io.load_examples(write_file("test.csv", "text,label\nfine,pos\nawful,neg\n"), "sequence")
    ds = repo.import_examples(session, "two-files", "sequence", train.examples, train.labels, split="train")
    again = repo.import_examples(session, "two-files", "sequence", test.examples, test.labels, split="test")
    assert again.id == ds.id
    assert repo.split_counts(session, ds.id) == {"train": 3, "eval": 0, "test": 2}
    dev = io.load_examples(write_file("dev.csv", "text,label\nnice,pos\n"), "sequence")
    repo.import_examples(session, "two-files", "sequence", dev.examples, dev.labels, split="dev")
    assert repo.split_counts(session, ds.id)["eval"] == 1  # "dev" names the stored eval split


def test_an_unknown_split_for_a_whole_file_is_refused(session):
    with pytest.raises(ValueError, match="is not one of"):
        repo.import_examples(
            session, "x", "sequence", [{"text": "a", "label": "pos"}], ["pos"], split="holdout"
        )
    assert repo.get_dataset_by_name(session, "x") is None  # one transaction: nothing written


def test_new_labels_in_the_app_count_as_train(session, make_dataset):
    ds = make_dataset(session, "sequence", n=4, labeled=False)
    first = repo.page_examples(session, ds.id)[0]
    repo.set_label(session, first.id, "pos")
    assert repo.split_counts(session, ds.id) == {"train": 1, "eval": 0, "test": 0}


def test_the_training_plan_never_trains_on_the_test_split(session):
    rows = [{"text": f"good {i}", "label": "pos"} for i in range(4)]
    rows += [{"text": f"bad {i}", "label": "neg"} for i in range(4)]
    rows += [{"text": f"odd {i}", "label": "odd", "split": "test"} for i in range(2)]
    ds = repo.import_examples(session, "plan", "sequence", rows, ["pos", "neg", "odd"])
    plan = repo.training_plan(session, ds.id, eval_split=0.25)
    assert plan["labeled"] == 8  # no eval split: the engine holds out a share of the 8, never the test 2
    assert plan["labels"] == ["pos", "neg", "odd"]  # a test-only label is still one of the model's classes
    assert any("2 test examples are held out" in note for note in plan["notes"])


def test_a_dataset_whose_classes_are_only_in_test_cannot_train(session):
    rows = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg", "split": "test"}]
    ds = repo.import_examples(session, "thin", "sequence", rows, ["pos", "neg"])
    (problem,) = repo.training_plan(session, ds.id, eval_split=0)["problems"]
    assert "outside its test split" in problem


def test_the_storage_cli_imports_a_split_column_and_a_test_file(
    monkeypatch, db_url, write_file, Session, capsys
):
    from storage.__main__ import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    mixed = write_file("mixed.csv", "text,label,fold\ngood,pos,train\nbad,neg,Validation\nok,pos,\n")
    assert main(["import", str(mixed), "--dataset", "d", "--task", "sequence", "--split-col", "fold"]) == 0
    test = write_file("test.csv", "text,label\nfine,pos\nawful,neg\n")
    assert main(["import", str(test), "--dataset", "d", "--task", "sequence", "--split", "TEST"]) == 0
    assert main(["import", str(test), "--dataset", "d", "--task", "sequence", "--split", "holdout"]) == 2
    assert "split 'holdout' is not one of" in capsys.readouterr().err
    with Session() as s:
        assert repo.split_counts(s, repo.get_dataset_by_name(s, "d").id) == {"train": 2, "eval": 1, "test": 2}


def test_the_sampled_inputs_are_both_texts_of_a_pair_and_a_sentence_s_words(session):
    """What the Train tab's estimated time counts the tokens of; unlabeled rows are not read."""
    pairs = [
        {"text": "abcd", "text_pair": "ef", "label": "yes"},
        {"text": "ab", "text_pair": "cdef", "label": "no"},
    ]
    pairs.append({"text": "a much longer text that nobody labeled", "text_pair": "x"})
    ds = repo.import_examples(session, "pairs", "pair", pairs, ["yes", "no"])
    assert repo.sample_inputs(session, ds.id) == [("abcd", "ef"), ("ab", "cdef")]
    assert repo.sample_inputs(session, ds.id, sample=1) == [("abcd", "ef")]
    tagged = [{"tokens": ["Ada", "visited", "Paris"], "tags": ["B-PER", "O", "B-LOC"]}]
    ds = repo.import_examples(session, "tags", "token", tagged, ["PER", "LOC"])
    assert repo.sample_inputs(session, ds.id) == [["Ada", "visited", "Paris"]]
    plain = repo.import_examples(
        session, "plain", "sequence", [{"text": "fine", "label": "a"}, {"text": "no"}], ["a"]
    )
    assert repo.sample_inputs(session, plain.id) == ["fine"]
