"""Multi-label and regression datasets in storage: label values, import, labeling, statistics, export, the CLI."""

from __future__ import annotations

import json

import pytest

from storage import repo
from storage.__main__ import main
from storage.io import DataError, load_examples, read_examples, refuse_list_labels, write_examples
from storage.label_values import (
    coerce_label,
    decode_label,
    describe_list_labels,
    encode_label,
    label_text,
    task_and_problem,
)

# --- label values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "value", "label_set", "stored", "decoded"),
    [
        ("single", "pos", ["neg", "pos"], "pos", "pos"),
        ("multilabel", ["sports", "politics"], ["politics", "sports"], '["politics", "sports"]', ["politics", "sports"]),
        ("multilabel", [], ["a"], "[]", []),
        ("multilabel", ["é", "a"], ["a", "é"], '["a", "é"]', ["a", "é"]),
        ("multilabel", '["b", "a", "b"]', ["a", "b"], '["a", "b"]', ["a", "b"]),
        ("multilabel", "b, a", ["a", "b"], '["a", "b"]', ["a", "b"]),
        ("regression", 3.5, None, "3.5", 3.5),
        ("regression", "4", None, "4.0", 4.0),
        ("regression", -1e-7, None, "-1e-07", -1e-7),
    ],
)  # fmt: skip
def test_encode_decode_round_trip(problem, value, label_set, stored, decoded):
    assert encode_label(problem, value, label_set) == stored
    assert decode_label(problem, stored) == decoded


@pytest.mark.parametrize(
    ("problem", "value", "message"),
    [
        ("multilabel", ["a", "zz"], "label 'zz' is not in the label set"),
        ("multilabel", "[1, [2]]", "item 2 of the label list is not a label name"),
        ("multilabel", '["a", ""]', "item 2 of the label list is empty"),
        ("multilabel", 3.0, "a multi-label label is a list of names"),
        ("regression", "high", "label 'high' is not a number"),
        ("regression", float("nan"), "is not a finite number"),
        ("regression", "inf", "is not a finite number"),
        ("regression", True, "is not a number"),
        ("single", ["a", "b"], "is a list of labels: import the file as multi-label"),
        ("single", "zz", "label 'zz' is not in the label set"),
    ],
)
def test_encode_refuses_bad_values(problem, value, message):
    with pytest.raises(ValueError, match=message):
        encode_label(problem, value, ["a", "b"])


def test_task_names_and_label_text():
    assert task_and_problem("multilabel", has_pair=False) == ("sequence", "multilabel")
    assert task_and_problem("regression", has_pair=True) == ("pair", "regression")
    assert task_and_problem("token", has_pair=False) == ("token", "single")
    with pytest.raises(ValueError, match="task must be one of"):
        task_and_problem("ranking", has_pair=False)
    assert label_text(["a", "b"]) == "a,b"
    assert label_text([]) == "[]"  # a blank cell would read back as unlabeled
    assert label_text(["x, y", "z"]) == '["x, y", "z"]'
    assert label_text(["[draft]"]) == '["[draft]"]'  # would otherwise read back as a broken JSON list
    assert coerce_label("multilabel", '["a"]') == ["a"] and coerce_label("regression", " 2 ") == 2.0


# --- the list-label detector -----------------------------------------------------------------------------


def test_detector_finds_separator_lists_whose_parts_recur():
    cells = [
        (1, "sports"),
        (2, "sports,politics"),
        (3, "news"),
        (4, "news, politics"),
        (5, "sports,politics"),
    ]
    assert describe_list_labels(cells) == "rows 2, 4, 5 hold lists like 'sports,politics'"
    many = [(i, "a,b" if i % 2 else "a") for i in range(1, 12)]
    assert describe_list_labels(many) == "rows 1, 3, 5 (6 in all) hold lists like 'a,b'"
    assert describe_list_labels([(1, "a;b"), (2, "b")], sep=";") == "row 1 holds a list like 'a;b'"


def test_detector_reports_json_lists():
    assert describe_list_labels([(3, ["a", "b"]), (4, "c")]) == 'row 3 holds a list like \'["a", "b"]\''


def test_detector_leaves_labels_with_a_comma_alone():
    """The rule: a comma makes a list only when a part is also found in a different cell."""
    cells = [(1, "Washington, D.C."), (2, "Paris"), (3, "Washington, D.C."), (4, "Rome")]
    assert describe_list_labels(cells) is None
    assert describe_list_labels([(1, "a,"), (2, "a")]) is None  # one non-empty part: no list


# --- import ----------------------------------------------------------------------------------------------


def test_multilabel_csv_and_jsonl_import(write_file):
    csv_file = write_file("m.csv", 'text,label\nhello,"sports, politics"\nbye,sports\nnone,[]\nblank,\n')
    loaded = load_examples(csv_file, "sequence", problem="multilabel")
    assert [(e["text"], e["label"]) for e in loaded.examples] == [
        ("hello", ["sports", "politics"]), ("bye", ["sports"]), ("none", []), ("blank", None),
    ]  # fmt: skip
    assert loaded.labels == ["politics", "sports"] and loaded.problem == "multilabel"
    lines = [
        '{"text": "a", "label": ["x", "y"]}',
        '{"text": "b", "label": "y|z"}',
        '{"text": "c", "label": [2, 10]}',
    ]
    jsonl = load_examples(
        write_file("m.jsonl", "\n".join(lines)), "sequence", problem="multilabel", label_sep="|"
    )
    assert [e["label"] for e in jsonl.examples] == [["x", "y"], ["y", "z"], ["2", "10"]]
    assert jsonl.labels == ["2", "10", "x", "y", "z"]  # natural order, numbers first


def test_multilabel_pair_import_with_a_label_set(write_file):
    path = write_file("p.csv", 'premise,hypothesis,labels\na,b,x\nc,d,"x,q"\n')
    with pytest.raises(DataError) as info:
        load_examples(path, "pair", problem="multilabel", labels=["x", "y"])
    assert "row 2, column 'labels': label 'q' is not in the label set ['x', 'y']" in str(info.value)
    rows = read_examples(path, "pair", problem="multilabel")
    assert rows == [
        {"text": "a", "label": ["x"], "text_pair": "b"},
        {"text": "c", "label": ["x", "q"], "text_pair": "d"},
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('" , "', "row 1, column 'label': no label between the separators ','"),
        ('"[""a"", "', "row 1, column 'label': not a valid JSON list of labels"),
        ('"[""a"", [1]]"', "row 1, column 'label': item 2 of the label list is not a label name"),
    ],
)
def test_bad_multilabel_cells_name_row_and_column(write_file, cell, message):
    with pytest.raises(DataError) as info:
        load_examples(write_file("b.csv", f"text,label\nx,{cell}\n"), "sequence", problem="multilabel")
    assert message in str(info.value)


def test_regression_import_score_range_and_bad_cells(write_file):
    good = write_file("r.csv", "text,score\na,1\nb, 4.5 \nc,\nd,-2e0\n")
    loaded = load_examples(good, "sequence", label_col="score", problem="regression")
    assert [e["label"] for e in loaded.examples] == [1.0, 4.5, None, -2.0]
    assert loaded.score_range == (-2.0, 4.5) and loaded.labels == []
    bad = write_file("bad.csv", "text,score\na,high\nb,nan\nc,3\nd,inf\n")
    with pytest.raises(DataError) as info:
        load_examples(bad, "sequence", label_col="score", problem="regression")
    message = str(info.value)
    assert "bad.csv, row 1, column 'score': label 'high' is not a number" in message
    assert "row 2, column 'score': label 'nan' is not a finite number" in message
    assert "row 4, column 'score'" in message and "row 3" not in message
    jsonl = write_file("r.jsonl", '{"text": "a", "label": 0.25}\n{"text": "b", "label": [1]}\n')
    with pytest.raises(
        DataError, match="row 2, column 'label': a JSON list, not text; a score is one number"
    ):
        load_examples(jsonl, "sequence", problem="regression")


def test_token_task_takes_no_other_problem(write_file):
    with pytest.raises(ValueError, match="multilabel datasets take sequence or pair inputs, not token"):
        load_examples(write_file("t.csv", "tokens,tags\na,O\n"), "token", problem="multilabel")


def test_single_import_reports_lists_and_still_imports(write_file, session):
    path = write_file("s.csv", 'text,label\na,sports\nb,"sports,politics"\nc,news\n')
    loaded = load_examples(path, "sequence")
    assert loaded.list_labels == "row 2 holds a list like 'sports,politics'"
    assert loaded.labels == ["news", "sports", "sports,politics"]
    refuse_list_labels(loaded)  # separator lists are a question, not a refusal
    ds = repo.import_examples(session, "s", "sequence", loaded.examples, loaded.labels)
    assert repo.label_distribution(session, ds.id) == {"news": 1, "sports": 1, "sports,politics": 1}


def test_single_import_of_json_lists_refuses_naming_row_and_column(write_file, session, db_snapshot):
    path = write_file("j.jsonl", '{"text": "x", "label": "p"}\n{"text": "y", "label": ["p", "q"]}\n')
    loaded = load_examples(path, "sequence")  # no refusal yet: the UI asks first
    assert loaded.list_labels == 'row 2 holds a list like \'["p", "q"]\'' and loaded.labels == ["p"]
    with pytest.raises(DataError) as info:
        refuse_list_labels(loaded)
    assert "j.jsonl, row 2, column 'label': a list of labels: import the file as multi-label" in str(
        info.value
    )
    with pytest.raises(DataError, match="row 2, column 'label': a list of labels"):
        read_examples(path, "sequence")
    before = db_snapshot(session)
    with pytest.raises(ValueError, match=r"row 2: label \['p', 'q'\] is a list of labels"):
        repo.import_examples(session, "j", "sequence", loaded.examples, loaded.labels)
    assert db_snapshot(session) == before
    as_lists = load_examples(path, "sequence", problem="multilabel")
    assert [e["label"] for e in as_lists.examples] == [["p"], ["p", "q"]] and as_lists.list_labels is None


def test_import_creates_with_problem_and_refuses_another(session, db_snapshot):
    ds = repo.import_examples(
        session, "emo", "sequence", [{"text": "a", "label": ["joy"]}], ["joy"], problem="multilabel"
    )
    assert ds.problem == "multilabel" and repo.get_dataset(session, ds.id).label_names == ["joy"]
    before = db_snapshot(session)
    with pytest.raises(
        ValueError, match="'emo' holds lists of labels, and this import one label per example"
    ):
        repo.import_examples(session, "emo", "sequence", [{"text": "b", "label": "joy"}], ["joy"])
    with pytest.raises(ValueError, match="row 7: label 'sad' is not in the label set"):
        repo.import_examples(
            session,
            "emo",
            "sequence",
            [{"text": "b", "label": ["sad"], "source_row": 7}],
            problem="multilabel",
        )
    with pytest.raises(ValueError, match="row 1: label 'x' is not a number"):
        repo.import_examples(
            session, "sts", "pair", [{"text": "a", "text_pair": "b", "label": "x", "source_row": 1}],
            problem="regression",
        )  # fmt: skip
    assert db_snapshot(session) == before


def test_create_dataset_validates_the_problem(session):
    with pytest.raises(ValueError, match="regression datasets take sequence or pair inputs, not token"):
        repo.create_dataset(session, "x", "token", problem="regression")
    with pytest.raises(ValueError, match="problem must be one of"):
        repo.create_dataset(session, "x", "sequence", problem="ranking")
    with pytest.raises(ValueError, match="a regression dataset has no label set"):
        repo.create_dataset(session, "x", "sequence", ["a"], problem="regression")
    ds = repo.create_dataset(session, "sts", "pair", problem="regression")
    with pytest.raises(ValueError, match="a regression dataset has no label set"):
        repo.add_labels(session, ds.id, ["a"])
    assert repo.create_dataset(session, "plain", "sequence", ["a"]).problem == "single"


# --- labeling --------------------------------------------------------------------------------------------


def _multilabel(session, name="ml"):
    ds = repo.create_dataset(session, name, "sequence", ["sports", "politics", "Sport"], problem="multilabel")
    repo.add_examples(session, ds.id, [{"text": t} for t in ("a", "b", "c", "d")])
    return ds, [e.id for e in repo.page_examples(session, ds.id)]


def test_set_label_and_give_label_per_problem(session):
    ds, ids = _multilabel(session)
    assert (
        repo.set_label(session, ids[0], ["politics", "sports"], labeled_by="ana").label
        == '["sports", "politics"]'
    )
    assert repo.set_label(session, ids[1], []).label == "[]"  # labeled: none applies
    with pytest.raises(ValueError, match="label 'chess' is not in the label set"):
        repo.set_label(session, ids[2], ["chess"])
    with pytest.raises(ValueError, match="give tags for token datasets and a label otherwise"):
        repo.set_label(session, ids[2], None)
    assert repo.give_label(session, ids[2], ["Sport"], owner="tab", expect_unlabeled=True)
    assert not repo.give_label(session, ids[2], ["sports"], expect_unlabeled=True)  # labeled meanwhile
    assert repo.get_example(session, ids[2]).label == '["Sport"]'
    assert (
        repo.restore_label(session, ids[2], '["sports"]', None, "ana").label == '["sports"]'
    )  # Undo: ex.label
    assert repo.restore_label(session, ids[2], None, None, None).label is None
    sts = repo.create_dataset(session, "sts", "pair", problem="regression")
    repo.add_examples(session, sts.id, [{"text": "a", "text_pair": "b"}])
    ex_id = repo.page_examples(session, sts.id)[0].id
    assert repo.set_label(session, ex_id, "2.5").label == "2.5"
    assert repo.give_label(session, ex_id, 4) and repo.get_example(session, ex_id).label == "4.0"
    with pytest.raises(ValueError, match="not a number"):
        repo.give_label(session, ex_id, "much")
    with pytest.raises(ValueError, match="not a finite number"):
        repo.set_label(session, ex_id, float("inf"))
    assert repo.get_example(session, ex_id).label == "4.0"  # a refused label changes nothing


def test_label_filter_matches_lists_holding_the_label(session):
    ds, ids = _multilabel(session)
    repo.set_label(session, ids[0], ["sports", "politics"])
    repo.set_label(session, ids[1], ["Sport"])
    repo.set_label(session, ids[2], [])
    by_label = {
        name: [e.id for e in repo.page_examples(session, ds.id, label=name)]
        for name in ("sports", "Sport", "politics")
    }
    assert by_label == {
        "sports": [ids[0]],
        "Sport": [ids[1]],
        "politics": [ids[0]],
    }  # case-sensitive everywhere
    assert repo.count_examples(session, ds.id, label="sports") == 1
    assert repo.count_label_view(session, ds.id, "label", "politics") == 1
    leased = repo.lease_next_example(session, ds.id, owner="tab", status="label", label="Sport")
    assert leased.id == ids[1]
    assert repo.lease_next_example(session, ds.id, owner="tab").id == ids[3]  # the one unlabeled


def test_label_distribution_score_summary_and_summaries(session):
    ds, ids = _multilabel(session)
    repo.set_label(session, ids[0], ["sports", "politics"])
    repo.set_label(session, ids[1], ["sports"])
    repo.set_label(session, ids[2], [])
    assert repo.label_distribution(session, ds.id) == {"sports": 2, "politics": 1, "Sport": 0}
    assert repo.label_distribution(session, ds.id, include_zero=False) == {"sports": 2, "politics": 1}
    sts = repo.create_dataset(session, "sts", "sequence", problem="regression")
    assert repo.score_summary(session, sts.id) == {"count": 0, "min": None, "max": None, "mean": None}
    repo.add_examples(
        session, sts.id, [{"text": t, "label": v} for t, v in (("a", 1.0), ("b", 4.0), ("c", 2.5))]
    )
    assert repo.label_distribution(session, sts.id) == {}
    assert repo.score_summary(session, sts.id) == {"count": 3, "min": 1.0, "max": 4.0, "mean": 2.5}
    summaries = {s["name"]: s for s in repo.dataset_summaries(session)}
    assert summaries["ml"]["problem"] == "multilabel" and summaries["ml"]["labeled"] == 3
    assert summaries["sts"]["problem"] == "regression" and summaries["sts"]["scores"]["mean"] == 2.5


def test_set_labels_reorders_stored_lists(session):
    ds, ids = _multilabel(session)
    repo.set_label(session, ids[0], ["sports", "politics"])
    repo.set_labels(session, ds.id, ["politics", "sports", "Sport"])
    session.expire_all()
    assert repo.get_example(session, ids[0]).label == '["politics", "sports"]'
    with pytest.raises(ValueError, match="labels still in use"):
        repo.set_labels(session, ds.id, ["politics"])


def test_training_plan_messages(session):
    ds, ids = _multilabel(session)
    assert repo.training_plan(session, ds.id)["problems"] == [
        "training needs at least two labeled examples; so far: 0"
    ]
    repo.set_label(session, ids[0], [])
    repo.set_label(session, ids[1], [])
    assert repo.training_plan(session, ds.id)["problems"] == [
        "training needs at least one label in use; so far none of the 2 labeled examples has a label that applies"
    ]
    assert repo.training_problems(session, ds.id) == repo.training_plan(session, ds.id)["problems"]
    repo.set_label(session, ids[2], ["politics"])
    plan = repo.training_plan(session, ds.id, eval_split=0.2)
    assert plan["problems"] == [] and plan["labels"] == ["politics"] and plan["counts"] == {"politics": 1}
    assert plan["notes"][-1] == "Labels with no examples are left out: sports, Sport."
    sts = repo.create_dataset(session, "sts", "sequence", problem="regression")
    repo.add_examples(session, sts.id, [{"text": t, "label": 3} for t in ("a", "b", "c")])
    assert repo.training_plan(session, sts.id)["problems"] == [
        "training needs at least two different scores; so far all 3 labeled examples score 3"
    ]
    repo.add_examples(session, sts.id, [{"text": "d", "label": 1.5, "split": "test"}])
    assert repo.training_plan(session, sts.id)["problems"] == [
        "training needs at least two different scores outside its test split; so far all 3 labeled examples score 3"
    ]
    repo.add_examples(session, sts.id, [{"text": "e", "label": 0.5}])
    plan = repo.training_plan(session, sts.id)
    assert plan["problems"] == [] and plan["labels"] == ["score"] and plan["labeled"] == 4
    assert repo.assign_split(session, sts.id, eval_fraction=0.4, seed=1) == {"train": 3, "eval": 2, "test": 0}


def test_training_rows_are_engine_values(session):
    ds, ids = _multilabel(session)
    repo.set_label(session, ids[0], ["politics", "sports"])
    repo.set_label(session, ids[1], [])
    rows = repo.examples_for_training(session, ds.id)
    assert [(r["id"], r["label"]) for r in rows] == [(ids[0], ["sports", "politics"]), (ids[1], [])]


# --- export / import round trips -------------------------------------------------------------------------


def _as_sets(rows: list[dict]) -> list[dict]:
    return [
        {**r, "label": frozenset(r["label"]) if isinstance(r["label"], list) else r["label"]} for r in rows
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_round_trip_multilabel_and_regression(session, tmp_path, fmt):
    ml = repo.create_dataset(session, "ml", "pair", ["a", "b, c", "[x]", "=d"], problem="multilabel")
    ml_rows = [
        {"text": "1", "text_pair": "p", "label": ["a", "=d"]},
        {"text": "2", "text_pair": "q", "label": ["b, c"]},
        {"text": "3", "text_pair": "r", "label": []},
        {"text": "4", "text_pair": "s", "label": None},
        {"text": "5", "text_pair": "t", "label": ["[x]"]},
    ]
    repo.add_examples(session, ml.id, ml_rows)
    reg = repo.create_dataset(session, "reg", "sequence", problem="regression")
    reg_rows = [{"text": "x", "label": -0.125}, {"text": "y", "label": 1e-7}, {"text": "z", "label": None}]
    repo.add_examples(session, reg.id, reg_rows)
    for ds, task, problem in ((ml, "pair", "multilabel"), (reg, "sequence", "regression")):
        exported = repo.examples_for_export(session, ds.id)
        path = tmp_path / f"{ds.name}.{fmt}"
        write_examples(exported, path, fmt, task)
        loaded = load_examples(path, task, problem=problem)
        copy = repo.import_examples(
            session, f"{ds.name}-copy", task, loaded.examples, loaded.labels, problem=problem
        )
        # a file does not carry the label set's order: the copy's lists follow its own (natural) order
        assert _as_sets(repo.examples_for_export(session, copy.id)) == _as_sets(exported)
    assert sorted(repo.label_names(session, ml.id)) == sorted(
        repo.get_dataset_by_name(session, "ml-copy").label_names
    )
    if fmt == "jsonl":
        first = json.loads((tmp_path / "ml.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert first["label"] == ["a", "=d"]
        assert (
            json.loads((tmp_path / "reg.jsonl").read_text(encoding="utf-8").splitlines()[0])["label"]
            == -0.125
        )
    else:
        lines = (tmp_path / "ml.csv").read_text(encoding="utf-8").splitlines()
        assert lines[1:4] == ['1,p,"a,=d"', '2,q,"[""b, c""]"', "3,r,[]"]


# --- the command line ------------------------------------------------------------------------------------


def test_cli_imports_and_exports_multilabel_and_regression(monkeypatch, db_url, write_file, tmp_path, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    src = write_file("emo.csv", "text,labels\nyay,joy|love\nugh,anger\nmeh,\n")
    args = ["import", str(src), "--dataset", "emo", "--task", "multilabel", "--label-sep", "|"]
    assert main(args) == 0
    sts = write_file("sts.csv", "sentence1,sentence2,score\na,b,4.5\nc,d,1\n")
    assert main(["import", str(sts), "--dataset", "sts", "--task", "regression", "--text-pair-col", "sentence2",
                 "--label-col", "score"]) == 0  # fmt: skip
    assert "scores 1 to 4.5" in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert (listed["emo"]["task"], listed["emo"]["problem"], listed["emo"]["labels"]) == (
        "sequence", "multilabel", ["anger", "joy", "love"],
    )  # fmt: skip
    assert (listed["sts"]["task"], listed["sts"]["problem"], listed["sts"]["labeled"]) == (
        "pair",
        "regression",
        2,
    )
    out = tmp_path / "emo.jsonl"
    assert main(["export", "--dataset", "emo", "--format", "jsonl", "--out", str(out)]) == 0
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == [
        ["joy", "love"],
        ["anger"],
        None,
    ]
    out = tmp_path / "sts.csv"
    assert main(["export", "--dataset", "sts", "--format", "csv", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["text,text_pair,label", "a,b,4.5", "c,d,1.0"]
    capsys.readouterr()
    assert main(["import", str(src), "--dataset", "emo", "--task", "sequence"]) == 2
    assert "'emo' is a multilabel dataset, not single" in capsys.readouterr().err


def test_cli_single_import_warns_about_lists(monkeypatch, db_url, write_file, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    src = write_file("s.csv", 'text,label\na,x\nb,"x,y"\n')
    assert main(["import", str(src), "--dataset", "s", "--task", "sequence"]) == 0
    assert "row 2 holds a list like 'x,y'; imported as single labels" in capsys.readouterr().err


def test_a_long_label_list_fits(session):
    """A JSON list of many labels passes 200 characters: PostgreSQL's label column is Text since 0004."""
    names = [f"emotion-{i:02d}" for i in range(28)]
    ds = repo.create_dataset(session, "go", "sequence", names, problem="multilabel")
    repo.add_examples(session, ds.id, [{"text": "all of them", "label": names[::-1]}])
    stored = repo.page_examples(session, ds.id)[0].label
    assert len(stored) > 200 and json.loads(stored) == names
    assert repo.examples_for_training(session, ds.id)[0]["label"] == names


def test_a_score_column_is_guessed_as_the_label_of_a_regression_import(tmp_path):
    from storage import io

    path = tmp_path / "assin.tsv"
    path.write_text(
        "premise\thypothesis\tentailment\tsimilarity\na b\tc d\tNone\t2.5\ne f\tg h\tEntailment\t4\n"
    )
    assert io.preview_file(path, "pair", problem="regression").roles["label"] == "similarity"
    assert io.preview_file(path, "pair").roles["label"] == "entailment"  # a class column first for classes
    loaded = io.load_examples(path, "pair", problem="regression")
    assert [ex["label"] for ex in loaded.examples] == [2.5, 4.0] and loaded.score_range == (2.5, 4.0)
