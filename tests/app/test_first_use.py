"""What a first-time user tripped over (issue 21), each as a handler test that failed on the code before the fix."""

from __future__ import annotations

import json

import pytest

import worker
from storage import repo
from ui import common, compare, data, live, train_jobs, try_it
from ui.common import Ctx, Settings


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    """The app context on the test's database, with the 1-layer model for every job."""
    return Ctx(
        Settings(data_dir=data_dir, model_overrides={"num_hidden_layers": 1}, start_worker=False), sessions
    )


def _dataset(ctx, name: str, labels: list[str], rows: list[tuple[str, str | None, str | None]]) -> int:
    """A sequence dataset from (text, label or None, split or None) rows."""
    examples = [{"text": t, "label": lab, **({"split": sp} if sp else {})} for t, lab, sp in rows]
    with ctx.sessions() as s:
        return repo.import_examples(s, name, "sequence", examples, labels).id


def _finished(ctx, dataset_id: int, task: str, metrics: dict, model_dir=None, steps: int = 20) -> int:
    """A completed 2-epoch job with these metrics and `steps` steps (no training: the views only read rows)."""
    with ctx.sessions() as s:
        job = repo.create_job(s, dataset_id, {"task": task, "output_dir": "", "epochs": 2, "mode": "frozen"})
        repo.claim_next_job(s, 0)
        repo.heartbeat(s, job.id, step=steps, total_steps=steps, progress=1.0)
        repo.add_loss_points(
            s,
            job.id,
            [{"step": i, "loss": 1.0 / i, "epoch": 1 + (i > steps // 2)} for i in (steps // 2, steps)],
        )
        repo.finish_job(s, job.id, metrics, str(model_dir or ""))
    return job.id


# --- 1. the Train tab shows the dataset just imported, and after a reload the running job's -------------------


def test_train_tab_picks_the_import_then_the_running_jobs_dataset(ctx, make_dataset, make_job):
    first, second = make_dataset(name="first"), make_dataset(name="second")
    assert common.pick_choice([first, second], current=first, preferred=second) == second  # was: first
    assert common.pick_choice([first, second], current=None) == second  # nothing chosen: the newest
    make_job(first)
    with ctx.sessions() as s:
        repo.claim_next_job(s, 0)  # running on `first`, while `second` is the newest dataset
    shown = live.latest_job_id(ctx)
    assert common.pick_choice([first, second], None, train_jobs.job_dataset(ctx, shown)) == first


# --- 2. the queue count -----------------------------------------------------------------------------------------


def test_queue_count_when_the_worker_claims_the_job_at_once(ctx, make_dataset, monkeypatch):
    """The old count listed queued jobs, then running ones: a claim in between counted the new job twice."""
    ds = make_dataset()
    listed = repo.list_jobs

    def claim_after_listing(session, *args, **kwargs):
        jobs = listed(session, *args, **kwargs)
        repo.claim_next_job(session, 0)  # the worker takes the new job right after this query
        return jobs

    monkeypatch.setattr(train_jobs.repo, "list_jobs", claim_after_listing)
    r = train_jobs.start_job(ctx, ds)
    assert r["ok"] and "ahead" not in r["message"], r["message"]
    monkeypatch.setattr(train_jobs.repo, "list_jobs", listed)
    r = train_jobs.start_job(ctx, ds)
    assert "1 job(s) ahead" in r["message"]  # the first one is running
    r = train_jobs.start_job(ctx, ds)
    assert "2 job(s) ahead" in r["message"]


# --- 3. the check at Start ----------------------------------------------------------------------------------------


def test_start_trains_on_the_labeled_part_and_leaves_empty_labels_out(ctx):
    rows = [(f"good {i}", "pos", None) for i in range(3)] + [(f"bad {i}", "neg", None) for i in range(3)]
    ds = _dataset(
        ctx, "partly", ["pos", "neg", "LOC", "MISC"], rows + [(f"new {i}", None, None) for i in range(14)]
    )
    r = train_jobs.start_job(ctx, ds)
    assert r["ok"], r["message"]
    assert "6 labeled examples of 20" in r["message"] and "LOC, MISC" in r["message"]
    with ctx.sessions() as s:
        assert repo.get_job(s, r["job_id"]).config["labels"] == ["pos", "neg"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("good", "pos", None), ("fine", "pos", None)], "at least two labels"),
        # 3 pos and 1 neg: the held-out example may be the neg one, leaving training a single label
        (
            [("a", "pos", None), ("b", "pos", None), ("c", "pos", None), ("d", "neg", None)],
            "too few examples",
        ),
        ([("a", "pos", "eval"), ("b", "neg", "eval"), ("c", "pos", None)], "outside the dataset's eval"),
    ],
)
def test_start_refuses_what_would_fail_in_the_worker(ctx, rows, expected):
    r = train_jobs.start_job(ctx, _dataset(ctx, "few", ["pos", "neg"], rows))
    assert not r["ok"] and expected in r["message"].replace("&#39;", "'"), r["message"]
    assert live.jobs_table(ctx).empty


def test_a_label_only_in_the_eval_split_trains(ctx, data_dir):
    """Issue 21's failure: "eval example 1: label 'LOC' is not in the label set" (the engine took the training
    part's labels); the job now names every label that has an example."""
    rows = [(f"good film {i}", "pos", None) for i in range(4)] + [
        (f"bad film {i}", "neg", None) for i in range(4)
    ]
    rows += [("Lisbon", "LOC", "eval"), ("good film x", "pos", "eval"), ("bad film x", "neg", "eval")]
    ds = _dataset(ctx, "loc", ["pos", "neg", "LOC"], rows)
    values = {**train_jobs.FORM_DEFAULTS, "mode": "frozen", "epochs": 1, "batch_size": 8}
    r = train_jobs.start_job(ctx, ds, *(values[f] for f in train_jobs.FORM_FIELDS))
    assert r["ok"], r["message"]
    worker.work(ctx.sessions, data_dir / "models", once=True)
    v = live.poll(ctx, r["job_id"])
    assert v["status"] == "completed", v["status_md"]


# --- 6, 5b, 7: the preview -------------------------------------------------------------------------------------------


def test_a_conll_upload_sets_the_token_task(ctx, tmp_path):
    conll = tmp_path / "tweets.conll"
    conll.write_text("Ana B-PER\nlives O\nin O\nLisbon B-LOC\n\nBo B-PER\nsmiled O\n", encoding="utf-8")
    p = data.preview_upload(str(conll), "sequence")
    assert p["ok"] and p["task"] == "token" and "words → tags" in p["message"]
    assert data.import_upload(ctx, str(conll), p["task"], "tweets", "tokens", None, "tags")["ok"]


def test_the_preview_says_how_it_read_the_file_and_shows_the_mapped_columns_first(tmp_path, monkeypatch):
    csv = tmp_path / "questions.csv"
    long = "why " * 80
    csv.write_text(f"id,question,source,label\n1,{long},web,DESC\n2,who is it,web,HUM\n", encoding="utf-8")
    p = data.preview_upload(str(csv), "sequence")
    assert list(p["rows"].columns)[:2] == ["question", "label"]  # the label no longer behind a long text
    assert "encoding utf" in p["message"].lower()
    real = data.io.preview_file

    def with_delimiter(path, task, **options):
        preview = real(path, task, **options)
        preview.delimiter = ";"  # what the readers' sniffer reports for a semicolon file
        return preview

    monkeypatch.setattr(data.io, "preview_file", with_delimiter)
    assert "delimiter semicolon" in data.preview_upload(str(csv), "sequence")["message"]


def test_empty_tables_have_named_columns(ctx):
    """A Dataframe without columns shows the placeholder headers "1 2 3"."""
    assert list(live.jobs_table(ctx).columns) == live.JOB_COLUMNS
    assert list(data.browse(ctx, None)[0].columns) == data.BROWSE_COLUMNS["sequence"]
    assert list(compare.compare_table(ctx, None, None).columns) == ["field", "A", "B"]


def test_confusion_matrix_reads_in_dark_mode_and_fits_its_column():
    html = live.confusion_html({"confusion_matrix": [[9, 1], [0, 5]], "labels": ["a" * 40, "b"]})
    assert (
        "rgb(17,24,39)" not in html and "var(--body-text-color)" in html
    )  # off-diagonal cells were invisible
    assert 'class="ft-scroll"' in html and f'title="{"a" * 40}"' in html


# --- 9, 12: the headline metric and the kept evaluation --------------------------------------------------------------


def test_token_models_are_headlined_by_entity_f1(ctx, make_dataset, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "finetuner.json").write_text(json.dumps({}), encoding="utf-8")
    metrics = {"accuracy": 0.933, "f1": 0.182, "precision": 0.2, "recall": 0.17, "loss": 0.4, "epoch": 2}
    job = _finished(ctx, make_dataset(), "token", metrics, folder)
    assert common.headline_text(metrics, "token") == "entity F1 0.182"
    assert (
        "entity F1 0.18" in dict((j, label) for label, j in common.model_choices(ctx))[job]
    )  # was "acc 0.93"
    assert live.jobs_table(ctx).loc[0, "score"] == "entity F1 0.182"
    assert "**entity F1 0.182**" in live.poll(ctx, job)["status_md"]
    assert common.headline_text({"accuracy": 0.9, "macro_f1": 0.8}, "sequence") == "accuracy 0.900"


def test_a_refit_model_says_its_score_was_taken_before_the_head_saw_every_example(
    ctx, make_dataset, tmp_path
):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "finetuner.json").write_text(json.dumps({}), encoding="utf-8")
    metrics = {"accuracy": 0.75, "macro_f1": 0.7, "loss": 0.5, "epoch": 300, "refit_examples": 40}
    status = live.poll(ctx, _finished(ctx, make_dataset(), "sequence", metrics, folder))["status_md"]
    assert "Held-out score at epoch 300: **accuracy 0.750**" in status and "all 40 examples" in status
    assert "Kept epoch" not in status


def test_only_the_kept_evaluation_is_starred():
    evals = [
        {"epoch": e, "step": 10 * e, "metrics": {"loss": 1.0 / e, "accuracy": 0.5, "is_best": True}}
        for e in (1, 2, 3)
    ]
    evals[2]["metrics"]["is_best"] = False
    running = {"evals": evals, "metrics": None}
    assert list(live.epochs_frame(running)["best"]) == ["", "★", ""]  # was: ★ ★ (each best at its time)
    done = {"evals": evals, "metrics": {"epoch": 2, "accuracy": 0.5}}
    assert list(live.epochs_frame(done)["best"]) == ["", "★", ""]


# --- 16: the first prediction reports the wait, model load included ----------------------------------------------------


class _FakePredictor:
    task, labels, meta = "sequence", ["neg", "pos"], {"metrics": {"accuracy": 0.75}, "base_model": "tiny"}

    def __init__(self, clock):
        self.clock = clock

    def predict(self, text, text_pair=None):
        self.clock[0] += 0.01
        return {"label": "pos", "probabilities": {"neg": 0.2, "pos": 0.8}}


def test_the_first_prediction_reports_the_time_waited(ctx, monkeypatch):
    clock, loaded = [0.0], {}

    def load(_ctx, job_id):
        if job_id not in loaded:
            clock[0] += 11.0  # the first use: torch, the weights
            loaded[job_id] = _FakePredictor(clock)
        return loaded[job_id]

    monkeypatch.setattr(try_it, "_predictor", load)
    monkeypatch.setattr(try_it.time, "perf_counter", lambda: clock[0])
    r = try_it.predict(ctx, 1, "a fine film")
    assert r["latency_ms"] >= 11_000 and "11.0 s" in r["message"]  # was "10 ms": the load went unreported
    info = try_it.model_info(ctx, 2)  # chosen in the dropdown: loaded (and warmed up) before any Predict
    assert info["load_s"] >= 11.0 and "ready in" in info["message"] and "accuracy 0.750" in info["message"]
    assert try_it.predict(ctx, 2, "a fine film")["latency_ms"] < 1_000


# --- 17: comparing jobs ----------------------------------------------------------------------------------------------


def test_compare_by_epoch_and_side_by_side(ctx, make_dataset):
    ds = make_dataset()
    short = _finished(ctx, ds, "sequence", {"accuracy": 0.8, "loss": 0.5, "epoch": 2}, steps=20)
    long = _finished(ctx, ds, "sequence", {"accuracy": 0.9, "loss": 0.3, "epoch": 2}, steps=200)
    frame = compare.overlay(ctx, short, long)
    ends = frame.groupby("series")["epoch"].max()
    assert ends["A train"] == ends["B train"] == 2.0  # step 20 and step 200 both end epoch 2
    assert set(frame.columns) == {"step", "epoch", "loss", "series"}
    table = compare.compare_table(ctx, short, long).set_index("field")
    assert list(table.columns) == [f"A: job #{short}", f"B: job #{long}"]
    assert list(table.loc["score"]) == ["accuracy 0.800", "accuracy 0.900"]
    assert list(table.loc["steps"]) == ["20", "200"]
    assert compare.steps_per_epoch({"config": {}, "evals": []}) is None  # then the plot falls back to steps


def test_try_keeps_the_chosen_model_and_falls_back_to_the_newest():
    """The Try tab on return: the model chosen while it exists (not the newest), the newest once it was deleted in
    Models or when none was chosen, the id typed as text, nothing without models."""
    models = [("#3 reviews", 3), ("#1 reviews", 1)]
    assert common.shown_model(models, 1) == 1
    assert common.shown_model(models, 2) == 3  # #2 was deleted
    assert common.shown_model(models, None) == 3 and common.shown_model(models, "1") == 1
    assert common.shown_model([], None) is None
