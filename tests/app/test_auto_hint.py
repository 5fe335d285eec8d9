"""The Train tab's Auto line: Auto's pick and reason, and an estimated time that says where its speed came from."""

from __future__ import annotations

import html
from types import SimpleNamespace

import pytest

from finetuner import auto
from ui.auto_hint import measured_speeds, plan_line


def job(
    mode: str, speed: float | None, status: str = "completed", model: str = "m", dataset: int = 1, ran_as=None
):
    return SimpleNamespace(
        config={"mode": mode, "model": model}, examples_per_s=speed, status=status, dataset_id=dataset,
        metrics={"accuracy": 0.9} | ({"ran_as": ran_as} if ran_as else {}),
    )  # fmt: skip


def test_measured_speeds_use_finished_fine_tuning_jobs_of_the_model():
    jobs = [job("full", 40.0), job("full", 60.0), job("full", 50.0), job("top-2", 90.0),
            job("frozen", 9000.0), job("auto", 500.0), job("full", 1.0, status="failed"), job("full", 5.0, model="x")]  # fmt: skip
    assert measured_speeds(jobs, "m", lambda dataset, batch: 10.0) == {"full": 500.0, "top": 900.0}


def test_an_auto_job_counts_as_what_it_ran_as():
    jobs = [
        job("auto", 30.0, ran_as="full"),
        job("auto", 70.0, ran_as="top-2"),
        job("auto", 9000.0, ran_as="frozen"),
    ]
    assert measured_speeds(jobs, "m", lambda dataset, batch: 1.0) == {"full": 30.0, "top": 70.0}


def test_measured_speeds_are_tokens_so_a_job_on_short_texts_speaks_for_long_ones():
    """40 examples/s of 20 tokens and 10 of 80 are the same 800 tokens/s."""
    jobs = [job("full", 40.0, dataset=1), job("full", 10.0, dataset=2), job("full", 10.0, dataset=2)]
    assert measured_speeds(jobs, "m", lambda dataset, batch: {1: 20.0, 2: 80.0}[dataset]) == {"full": 800.0}


def test_the_estimate_grows_with_the_texts_length():
    """LeNER-Br's sentences hold about 2.5x CoNLL's tokens; fine-tuning on them took 2-2.5x longer."""

    def seconds(tokens):
        line = plan_line("token", 200, {"PER": 90, "LOC": 80}, "auto", None, 32, 0.1, tokens=tokens)
        assert f"{tokens:.0f} tokens an example" in line
        return line

    assert seconds(24.0) != seconds(60.0)
    short = auto.estimate_seconds("full", 20, 180, 20, tokens=24.0)[0] - auto.STARTUP_S
    long = auto.estimate_seconds("full", 20, 180, 20, tokens=60.0)[0] - auto.STARTUP_S
    assert long == pytest.approx(2.5 * short)


@pytest.mark.parametrize(
    ("n", "counts", "expect"),
    [
        (64, {"a": 32, "b": 32}, "**Auto: frozen**"),
        (500, {"a": 420, "b": 80}, "weighted"),
        (50_000, {"a": 25_000, "b": 25_000}, "**Auto: full**"),
    ],
)
def test_the_line_names_the_pick_and_the_estimate(n, counts, expect):
    line = plan_line("sequence", n, counts, "auto", None, 32, 0.1)
    assert expect in line and "Estimated time" in line and "conservative constant" in line


def test_a_hand_set_mode_is_said_and_past_jobs_speed_the_estimate():
    slow = plan_line("sequence", 3000, {"a": 1500, "b": 1500}, "full", 3, 32, 0.1, measured={"full": 20.0})
    fast = plan_line("sequence", 3000, {"a": 1500, "b": 1500}, "full", 3, 32, 0.1, measured={"full": 200.0})
    assert slow.startswith("Mode full, set by hand") and "past jobs" in slow and slow != fast


def test_a_skewed_multilabel_dataset_is_not_promised_class_weights():
    counts = {"joy": 40, "anger": 4}  # 10x skew: a single-label set would be class-weighted
    single = plan_line("sequence", 44, counts, "auto", None, 32, 0.1)
    multi = plan_line("sequence", 44, counts, "auto", None, 32, 0.1, problem="multilabel")
    assert "weight" in single and "weight" not in multi


def test_a_hand_set_pair_encoding_reaches_the_line():
    """Auto reads a small pair set siamese, and says so; with cross picked in the form the line does not."""
    counts = {"a": 32, "b": 32}
    assert "pairs are read as" in plan_line("pair", 64, counts, "auto", None, 32, 0.1)
    assert "pairs are read as" not in plan_line(
        "pair", 64, counts, "auto", None, 32, 0.1, pair_encoding="cross"
    )


def test_the_line_says_when_the_eval_examples_train_the_head_too():
    """36 pair examples and a 10% split leave 4 to evaluate: too few to pick a best, so the head trains again on all."""
    line = plan_line("pair", 40, {"yes": 20, "no": 20}, "auto", None, 32, 0.1)
    assert "trains again on all 40" in line
    assert "trains again" not in plan_line("pair", 40, {"yes": 20, "no": 20}, "auto", None, 32, 0.0)


def test_the_line_says_when_auto_tunes_the_encoder_first_and_counts_its_time():
    """64 English sentences: Auto's contrastive step, with the steps the run takes (its 58 training examples after
    the 10% split: 29 a class, 2 x 841 pairs / 16 = 106 steps, cut to the 90 s budget's 80 at 35 tokens)."""
    args = ("sequence", 64, {"pos": 32, "neg": 32}, "auto", None, 32, 0.1)
    english = html.unescape(plan_line(*args, tokens=35.0, english=True))
    other = html.unescape(plan_line(*args, tokens=35.0, english=False))
    assert "SetFit-style" in english and "80 steps of 16" in english and "SetFit-style" not in other
    assert "about 20 s" in other and "about 2 min" in english  # 15 s start-up + 80 x 32 x 35 / 1,000 tokens/s


def test_a_dataset_that_cannot_train_yet_says_why_before_start(sessions, data_dir):
    """An unlabeled upload (one text a line, to label) gets the reason and where to go, not an empty line."""
    from storage import repo
    from ui.auto_hint import auto_hint
    from ui.common import Ctx, Settings

    ctx = Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)
    with sessions() as s:
        rows = [{"text": f"sentence {i}"} for i in range(6)]
        ds = repo.import_examples(s, "to label", "sequence", rows, labels=["neg", "pos"])
    line = auto_hint(ctx, ds.id, "auto", None, 32, 0.1, "all-MiniLM-L6-v2")
    assert (
        line.startswith("**Not ready to train:**") and "at least two labels" in line and "**Label**" in line
    )
    with sessions() as s:
        for i, example in enumerate(repo.page_examples(s, ds.id)):
            repo.set_label(s, example.id, ["neg", "pos"][i % 2])
    assert auto_hint(ctx, ds.id, "auto", None, 32, 0.1, "all-MiniLM-L6-v2").startswith("**Auto: frozen**")
    assert auto_hint(ctx, None, "auto", None, 32, 0.1, "all-MiniLM-L6-v2") == ""
