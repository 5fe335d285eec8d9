"""Batch predictions: rows through a Predictor as columns, files read and written back, and the CLI's --file."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from engine_toys import make_examples

from finetuner import TrainConfig, train
from finetuner.batch_predict import output_names, predict_rows
from finetuner.predict import Predictor
from storage import predict_files
from storage.conll import DataError


def _trained(tmp_path_factory, task: str) -> Predictor:
    folder = tmp_path_factory.mktemp(f"batch-{task}")
    config = TrainConfig(
        task=task, output_dir=str(folder), mode="frozen", model_overrides={"num_hidden_layers": 1},
        epochs=20, lr=0.02, batch_size=8, eval_split=0.0, seed=0,
    )  # fmt: skip
    train(config, make_examples(task, 24))
    return Predictor.load(folder)


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory) -> Predictor:
    """A 1-layer frozen sentiment model (pos / neg) trained once for the module."""
    return _trained(tmp_path_factory, "sequence")


@pytest.fixture(scope="module")
def token_model(tmp_path_factory) -> Predictor:
    """A 1-layer frozen PER / LOC tagger trained once for the module."""
    return _trained(tmp_path_factory, "token")


def test_rows_keep_input_order_and_match_single_predictions(sequence_model):
    texts = ["the film was superb and I would see it again", "awful", "", "the film was bad"]
    progress = []
    rows = predict_rows(sequence_model, texts, on_progress=lambda done, total: progress.append((done, total)))
    assert list(rows[0]) == output_names("sequence", sequence_model.labels)
    for text, row in zip(texts, rows, strict=True):
        if not text:  # an empty row gets empty cells rather than failing the whole file
            assert set(row.values()) == {""}
            continue
        one = sequence_model.predict(text)
        assert row["label"] == one["label"]
        assert row["score"] == pytest.approx(one["probabilities"][one["label"]], abs=1e-5)
        assert sum(row[f"p_{label}"] for label in sequence_model.labels) == pytest.approx(1.0)
    assert progress[-1] == (len(texts), len(texts))


def test_should_stop_returns_none(sequence_model):
    assert predict_rows(sequence_model, ["good"], should_stop=lambda: True) is None


def test_pair_model_needs_pairs(sequence_model, monkeypatch):
    monkeypatch.setattr(sequence_model, "task", "pair")
    with pytest.raises(ValueError, match="second text column"):
        predict_rows(sequence_model, ["a"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".xlsx"])
def test_file_round_trip_keeps_columns_and_adds_predictions(tmp_path, sequence_model, suffix):
    # a formula-like text must come back as it was (to_excel would write it as a live formula: not for .xlsx)
    awful = "the film was awful" if suffix == ".xlsx" else "=the film was awful"
    df = pd.DataFrame({"id": ["1", "2"], "review": ["the film was great", awful], "label": ["pos", "neg"]})
    src = tmp_path / f"in{suffix}"
    if suffix == ".jsonl":
        src.write_text("\n".join(json.dumps(r) for r in df.to_dict(orient="records")))
    elif suffix == ".xlsx":
        df.to_excel(src, index=False)
    else:
        df.to_csv(src, index=False, sep="\t" if suffix == ".tsv" else ",")
    table = predict_files.read_inputs(src, "sequence")
    assert table.text_col == "review"
    rows = predict_rows(sequence_model, table.inputs)
    out = tmp_path / predict_files.output_path_for(table.file, table.format)
    assert out.suffix == suffix
    predict_files.write_predictions(predict_files.with_predictions(table.df, rows), out)
    back = predict_files.read_inputs(out, "sequence", text_col="review").df
    # the gold label keeps its name; the prediction's is prefixed; one probability column per class
    assert list(back.columns) == ["id", "review", "label", "predicted_label", "score", "p_neg", "p_pos"]
    assert list(back["predicted_label"]) == ["pos", "neg"]
    assert list(back["review"]) == ["the film was great", awful]


def test_excel_output_never_holds_a_live_formula(tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "out.xlsx"
    predict_files.write_predictions(pd.DataFrame({"text": ["=1+1"], "label": ["a"]}), out)
    assert load_workbook(out).active["A2"].value == "'=1+1"


def test_named_column_that_is_missing_is_refused(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\nx,y\n")
    with pytest.raises(DataError, match=r"no text column 'review'; the file has 'a', 'b'"):
        predict_files.read_inputs(src, "sequence", text_col="review")


@pytest.mark.slow  # a trained tagger: ~25 s of CPU
def test_conll_file_gives_tags_and_entity_spans(tmp_path, token_model):
    src = tmp_path / "in.conll"
    src.write_text("alice\nsmith\nlives\nin\nparis\n\nwe\nvisited\nberlin\n")
    table = predict_files.read_inputs(src, "token")
    rows = predict_rows(token_model, table.inputs)
    out = tmp_path / predict_files.output_path_for(table.file, table.format)
    predict_files.write_predictions(predict_files.with_predictions(table.df, rows), out)
    first = json.loads(out.read_text().splitlines()[0])
    assert first["tokens"] == ["alice", "smith", "lives", "in", "paris"]
    assert first["tags"] == ["B-PER", "I-PER", "O", "O", "B-LOC"]
    assert [(e["text"], e["type"]) for e in first["entities"]] == [("alice smith", "PER"), ("paris", "LOC")]


@pytest.mark.slow  # a trained tagger: ~25 s of CPU
def test_token_sentence_column_gives_character_offsets(tmp_path, token_model):
    src = tmp_path / "in.csv"
    src.write_text("sentence\nalice smith lives in paris\n")
    table = predict_files.read_inputs(src, "token", text_col="sentence")
    entities = json.loads(predict_rows(token_model, table.inputs)[0]["entities"])
    assert {(e["text"], e["start"], e["end"]) for e in entities} >= {("paris", 21, 26)}


def test_cli_predict_file(tmp_path, sequence_model, capsys):
    from finetuner.__main__ import main

    src = tmp_path / "reviews.csv"
    src.write_text("text\nthe film was superb\nthe film was dreadful\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", sequence_model.folder, "--file", str(src), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == ["pos", "neg"]
    # --file without --out is a message, not a traceback
    assert main(["predict", "--model", sequence_model.folder, "--file", str(src)]) == 2
    assert "--out" in capsys.readouterr().err
