"""The web app's handlers for multi-label and score datasets and models (issue 24), without a browser.

Data: the list question before a one-label import, multi-label and score imports, the dataset list. Train: the
job config carries the problem; a 1-layer model of each kind trains through the worker, and the live view,
comparison, Models table, Try (prediction and explain), Evaluate and Predict-a-file show that problem's figures.
"""

from __future__ import annotations

import csv
import json

import pytest
from app_rows import TINY

import worker
from storage import repo
from ui import (
    api,
    common,
    compare,
    data,
    evaluate,
    live,
    models,
    predict_file,
    problem_views,
    train_jobs,
    try_it,
)
from ui.common import Ctx, Settings
from ui.problems import label_list

TOPICS = {"sports": ["match", "goal", "league"], "politics": ["vote", "senate", "minister"]}


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(Settings(data_dir=data_dir, model_overrides=TINY, start_worker=False), sessions)


def write_csv(path, header: list[str], rows: list[list]) -> str:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


@pytest.fixture
def topics_csv(tmp_path) -> str:
    """24 texts tagged sports, politics, both (the cell "sports,politics") or neither (the JSON list "[]")."""
    rows = []
    for i in range(24):
        kind = ("sports", "politics", "sports,politics", "[]")[i % 4]
        words = [TOPICS[k][i % 3] for k in kind.split(",") if k in TOPICS] or ["weather"]
        rows.append([f"news about {' and '.join(words)} today {i}", kind])
    return write_csv(tmp_path / "topics.csv", ["text", "label"], rows)


@pytest.fixture
def ratings_csv(tmp_path) -> str:
    """24 texts scored 1 (awful words) to 5 (great words)."""
    words = {1: "awful", 2: "poor", 3: "fine", 4: "good", 5: "great"}
    rows = [[f"a {words[i % 5 + 1]} film {i}", i % 5 + 1] for i in range(24)]
    return write_csv(tmp_path / "ratings.csv", ["text", "label"], rows)


def import_as(ctx, path: str, kind: str, name: str, label_col: str = "label") -> dict:
    r = data.import_upload(ctx, path, kind, name, "text", None, label_col)
    assert r["ok"], r["message"]
    return r


# --- Data ---------------------------------------------------------------------------------------------------------


def test_list_labels_in_a_one_label_import_are_asked_about_first(ctx, topics_csv):
    r = data.import_upload(ctx, topics_csv, "sequence", "topics", "text", None, "label")
    assert not r["ok"] and r["ask"] and "sports,politics" in r["ask"] and "Nothing was imported" in r["ask"]
    assert data.datasets_table(ctx).empty  # nothing until the user answers

    r = data.import_upload(ctx, topics_csv, "sequence", "topics", "text", None, "label", lists_as_single=True)
    assert not r["ask"]  # answered "one label each": the cells are names (here the empty ones are refused)
    assert r["ok"] or "row" in r["message"]


def test_answering_multilabel_imports_label_sets(ctx, topics_csv):
    r = import_as(ctx, topics_csv, "sequence:multilabel", "topics")
    assert r["kind"] == "sequence:multilabel"
    assert dict(zip(r["distribution"]["label"], r["distribution"]["count"], strict=True)) == {
        "sports": 12,
        "politics": 12,
    }
    assert "labels per labeled text" in r["message"] and "6 with none" in r["message"]
    table = data.datasets_table(ctx)
    assert table.loc[0, "problem"] == "multi-label" and "sports: 12" in table.loc[0, "labels"]
    page, _ = data.browse(ctx, r["dataset_id"], search="and")
    assert {frozenset(cell.split(", ")) for cell in page["label"]} == {frozenset({"sports", "politics"})}
    assert "multi-label" in common.dataset_choices(ctx)[0][0]


def test_a_multilabel_separator_is_used(ctx, tmp_path):
    path = write_csv(
        tmp_path / "pipes.csv", ["text", "label"], [["a goal", "sports|news"], ["a vote", "politics"]]
    )
    r = data.import_upload(ctx, path, "sequence:multilabel", "pipes", "text", None, "label", label_sep="|")
    assert r["ok"], r["message"]
    with ctx.sessions() as s:
        first = repo.page_examples(s, r["dataset_id"], limit=1)[0]
        assert set(label_list(first.label)) == {"sports", "news"}


def test_a_score_import_shows_its_range(ctx, ratings_csv):
    p = data.preview_upload(ratings_csv, "sequence:regression")
    assert p["ok"] and "Scores in these first rows: 1 to 5" in p["message"]
    r = import_as(ctx, ratings_csv, "sequence:regression", "ratings")
    assert "24 scores from 1 to 5" in r["message"] and r["distribution"].empty
    table = data.datasets_table(ctx)
    assert table.loc[0, "problem"] == "score" and "from 1 to 5" in table.loc[0, "labels"]


def test_a_score_import_names_the_row_of_a_non_number(ctx, tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["text", "stars"], [["fine", 3], ["odd", "many"]])
    r = data.import_upload(ctx, path, "sequence:regression", "bad", "text", None, "stars")
    assert not r["ok"] and "Nothing was imported" in r["message"] and "row 2" in r["message"]
    assert data.datasets_table(ctx).empty


def test_the_api_imports_with_the_command_lines_task_names(ctx, topics_csv, ratings_csv):
    r = api.import_file(ctx, topics_csv, "multilabel", "topics", "text", "", "label")
    assert r["ok"], r["message"]
    r = api.import_file(ctx, ratings_csv, "regression", "ratings", "text", "", "label")
    assert r["ok"], r["message"]
    with ctx.sessions() as s:
        assert {d.name: d.problem for d in repo.list_datasets(s)} == {
            "topics": "multilabel",
            "ratings": "regression",
        }


# --- metrics views (no training) ---------------------------------------------------------------------------------

MULTI = {
    "loss": 0.4, "micro_f1": 0.61, "macro_f1": 0.52, "subset_accuracy": 0.25, "labels": ["a", "b"],
    "per_class": {"a": {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 4, "threshold": 0.35},
                  "b": {"precision": 0.4, "recall": 0.5, "f1": 0.44, "support": 3, "threshold": 0.6}},
    "thresholds": {"a": 0.35, "b": 0.6},
}  # fmt: skip
SCORE = {"loss": 0.9, "pearson": 0.71, "spearman": 0.69, "rmse": 0.95, "mse": 0.9}


@pytest.mark.parametrize(
    ("metrics", "problem", "expected"),
    [
        (MULTI, "multilabel", "macro-F1 0.520"),
        (SCORE, "regression", "Pearson 0.710"),
        (MULTI, None, "macro-F1 0.520"),  # told by the keys: a job config from before the problem field
        (
            {"loss": 1.0, "pearson": None, "rmse": 1.0},
            "regression",
            "",
        ),  # constant predictions: no correlation
        ({"accuracy": 0.9, "macro_f1": 0.8}, "single", "accuracy 0.900"),
    ],
)
def test_each_problem_is_headlined_by_its_own_figure(metrics, problem, expected):
    assert common.headline_text(metrics, "sequence", problem=problem) == expected


def test_the_live_tables_show_each_problems_figures():
    frame = live.epochs_frame({"evals": [{"epoch": 1, "step": 3, "metrics": MULTI}]})
    assert list(frame.columns) == ["epoch", "step", "loss", "macro_f1", "micro_f1", "subset_accuracy", "best"]
    frame = live.epochs_frame({"evals": [{"epoch": 1, "step": 3, "metrics": {**SCORE, "pearson": None}}]})
    assert list(frame.columns)[2:6] == ["loss", "pearson", "spearman", "rmse"]  # None: NaN, not a crash
    per_label = live.per_class_frame(MULTI)
    assert list(per_label["threshold"]) == [0.35, 0.6]
    assert "threshold" not in live.per_class_frame({"per_class": {"x": {"precision": 1.0}}}).columns
    assert live.confusion_html(MULTI) == ""
    test = live.test_view({"test": {**SCORE, "n": 8}})
    assert "Pearson **0.710**" in test["test_md"] and "RMSE" in test["test_md"]


# --- a model of each kind, through the worker and every view ----------------------------------------------------


def train_through_the_app(ctx, data_dir, dataset_id: int) -> int:
    r = train_jobs.start_job(ctx, dataset_id, "", "full", "cross", "auto", "adamw", 0, "linear", 0.06, 2, 8)
    assert r["ok"], r["message"]
    worker.work(ctx.sessions, data_dir / "models", once=True)
    with ctx.sessions() as s:
        job = repo.get_job(s, r["job_id"])
        assert job.status == "completed", job.error
    return r["job_id"]


def run_queued(ctx, data_dir) -> None:
    worker.work(ctx.sessions, data_dir / "models", once=True)


def test_a_multilabel_model_in_every_view(ctx, data_dir, topics_csv):
    ds = import_as(ctx, topics_csv, "sequence:multilabel", "topics")["dataset_id"]
    job_id = train_through_the_app(ctx, data_dir, ds)
    with ctx.sessions() as s:
        config = repo.get_job(s, job_id).config
    assert config["problem"] == "multilabel" and sorted(config["labels"]) == ["politics", "sports"]

    v = live.poll(ctx, job_id)
    assert "macro-F1" in v["status_md"] and "subset accuracy" in v["status_md"]
    assert "micro_f1" in v["epochs"].columns and "threshold" in v["per_class"].columns
    table = compare.compare_table(ctx, job_id, None).set_index("field")
    assert table.loc["problem"].iloc[0] == "multi-label" and "subset_accuracy" in table.index
    row = models.models_table(ctx).iloc[0]
    assert row["problem"] == "multi-label" and "micro-F1" in row["metrics"] and "macro-F1" in row["score"]
    assert "multi-label" in common.model_choices(ctx)[0][0]

    info = try_it.model_info(ctx, job_id)
    assert info["problem"] == "multilabel" and "multi-label" in info["message"]
    r = try_it.predict(ctx, job_id, "news about goal and vote today")
    assert r["ok"] and r["label"] is None and "threshold" in r["html"]
    assert r["html"].count("<tr") == 3  # the header and both labels, each with its probability
    html = try_it.explain(ctx, job_id, "news about goal today", label=["sports"])
    assert "Sigmoid per label" in html and "BCE" in html and "averaged over the 2 labels" in html
    assert problem_views.explain_title("multilabel").endswith("binary cross-entropy")


def test_a_score_model_in_every_view(ctx, data_dir, ratings_csv):
    ds = import_as(ctx, ratings_csv, "sequence:regression", "ratings")["dataset_id"]
    job_id = train_through_the_app(ctx, data_dir, ds)
    with ctx.sessions() as s:
        config = repo.get_job(s, job_id).config
    assert config["problem"] == "regression" and config["labels"] == ["score"]

    v = live.poll(ctx, job_id)
    assert "Pearson" in v["status_md"] and "RMSE" in v["status_md"] and v["per_class"].empty
    assert "spearman" in v["epochs"].columns
    table = compare.compare_table(ctx, job_id, None).set_index("field")
    assert table.loc["problem"].iloc[0] == "score" and "rmse" in table.index
    assert models.models_table(ctx).iloc[0]["problem"] == "score"

    info = try_it.model_info(ctx, job_id)
    assert info["problem"] == "regression" and "trained on scores 1–5" in info["message"]
    r = try_it.predict(ctx, job_id, "a great film")
    assert r["ok"] and "ft-score-value" in r["html"] and "Predicted score" in r["message"]
    html = try_it.explain(ctx, job_id, "a great film", label="5")
    assert "(ŷ − y)²" in html and "ŷ = hw + b" in html
    assert "type the true score" in try_it.explain(ctx, job_id, "a great film", label=None)
    assert "must be a number" in try_it.explain(ctx, job_id, "a great film", label="lots")


def test_a_multilabel_model_evaluates_and_predicts_a_file(ctx, data_dir, topics_csv):
    ds = import_as(ctx, topics_csv, "sequence:multilabel", "topics")["dataset_id"]
    job_id = train_through_the_app(ctx, data_dir, ds)
    p = predict_file.start_prediction(ctx, job_id, topics_csv, text_col="text")
    assert p["ok"], p["message"]
    run_queued(ctx, data_dir)
    out = predict_file.prediction_status(ctx, p["job_id"])["file"]
    with open(out, encoding="utf-8") as f:
        header = next(csv.reader(f)) if out.endswith(".csv") else list(json.loads(f.readline()))
    assert "predicted_labels" in header

    e = evaluate.start_evaluation(ctx, job_id, ds, "")
    assert e["ok"], e["message"]
    run_queued(ctx, data_dir)
    ev = evaluate.evaluation_view(ctx, e["job_id"])
    assert ev["status"] == "completed", ev["message"]
    assert "macro-F1" in ev["message"] and "threshold" in ev["per_class"].columns


def test_a_score_model_evaluates_and_predicts_a_file(ctx, data_dir, ratings_csv):
    ds = import_as(ctx, ratings_csv, "sequence:regression", "ratings")["dataset_id"]
    job_id = train_through_the_app(ctx, data_dir, ds)
    p = predict_file.start_prediction(ctx, job_id, ratings_csv, text_col="text")
    assert p["ok"], p["message"]
    run_queued(ctx, data_dir)
    out = predict_file.prediction_status(ctx, p["job_id"])["file"]
    with open(out, encoding="utf-8") as f:
        header = next(csv.reader(f)) if out.endswith(".csv") else list(json.loads(f.readline()))
    assert "predicted_score" in header

    e = evaluate.start_evaluation(ctx, job_id, ds, "")
    assert e["ok"], e["message"]
    run_queued(ctx, data_dir)
    ev = evaluate.evaluation_view(ctx, e["job_id"])
    assert ev["status"] == "completed", ev["message"]
    assert "Pearson" in ev["message"] and "RMSE" in ev["message"]
