"""The CLI on multi-label and regression files: --task multilabel / regression, --label-sep, metrics JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import run_in_process as run
from cli_support import write_csv
from test_engine_problems import multilabel_examples, regression_examples


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_multilabel_train_eval_predict(tmp_path, tiny_model_dir, capsys):
    # an empty cell is unlabeled: "[]" says no label applies
    rows = [
        {"text": ex["text"], "label": "|".join(ex["label"]) or "[]"} for ex in multilabel_examples("sequence")
    ]
    data = write_csv(tmp_path / "train.csv", rows)
    out = str(tmp_path / "model")
    common = ("--mode", "frozen", "--epochs", "40", "--lr", "0.02", "--batch-size", "8", "--pooling", "mean",
              "--model", tiny_model_dir)  # fmt: skip
    code, stdout, err = run(
        capsys, "train", "--task", "multilabel", "--label-sep", "|", "--train", str(data), "--eval", str(data),
        *common, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    metrics = last_json(stdout)
    assert {"micro_f1", "macro_f1", "subset_accuracy", "thresholds"} <= set(metrics)
    meta = json.loads(Path(out, "finetuner.json").read_text())
    assert meta["task"] == "sequence" and meta["problem"] == "multilabel"
    code, stdout, err = run(capsys, "eval", "--model", out, "--file", str(data), "--label-sep", "|")
    assert code == 0, err
    assert last_json(stdout)["thresholds"] == meta["thresholds"]  # the folder's own thresholds
    code, stdout, err = run(capsys, "predict", "--model", out, "--text", "alice said the film was superb")
    assert code == 0, err
    assert last_json(stdout)["labels"] == ["person", "pos"]


def test_regression_pair_train_names_pearson_spearman_rmse(tmp_path, tiny_model_dir, capsys):
    rows = [
        {"a": ex["text"], "b": ex["text_pair"], "score": ex["label"]} for ex in regression_examples("pair")
    ]
    data = write_csv(tmp_path / "pairs.csv", rows)
    out = str(tmp_path / "model")
    code, stdout, err = run(
        capsys, "train", "--task", "regression", "--text-col", "a", "--text-pair-col", "b", "--label-col", "score",
        "--train", str(data), "--eval", str(data), "--mode", "frozen", "--epochs", "60", "--lr", "0.02",
        "--pooling", "mean", "--model", tiny_model_dir, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    metrics = last_json(stdout)
    assert {"pearson", "spearman", "rmse"} <= set(metrics) and metrics["pearson"] > 0.9
    meta = json.loads(Path(out, "finetuner.json").read_text())
    assert meta["task"] == "pair" and meta["problem"] == "regression" and meta["score_range"] == [1.0, 4.5]
    code, stdout, err = run(
        capsys, "predict", "--model", out, "--text", "how was it ?", "--text-pair", "the film was superb"
    )
    assert code == 0, err
    assert isinstance(last_json(stdout)["score"], float)


def test_a_non_number_score_names_file_row_and_column(tmp_path, tiny_model_dir, capsys):
    rows = [{"text": "good", "score": "4"}, {"text": "bad", "score": "high"}]
    data = write_csv(tmp_path / "bad.csv", rows)
    code, _, err = run(
        capsys, "train", "--task", "regression", "--label-col", "score", "--train", str(data),
        "--model", tiny_model_dir, "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert code == 2 and "bad.csv" in err and "score" in err, err
