"""Multi-label classification and score regression: losses, thresholds and metrics on hand-worked numbers, validation
messages, and 1-layer models trained through train() and answered by Predictor and transformers.pipeline."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from finetuner import TrainConfig, train
from finetuner.metrics import multilabel_metrics, regression_metrics, tune_thresholds
from finetuner.problems import MultiLabel, Problem, Regression
from finetuner.tasks import DataValidationError, make_task
from finetuner.training import check_diverged

POSITIVE = ["good", "great", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "terrible", "dreadful"]


def multilabel_examples(kind: str, n: int = 32, seed: int = 0) -> list[dict]:
    """'pos' when a positive word is there, 'person' when a name is: 0, 1 or 2 labels per text."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive, person = i % 2 == 0, (i // 2) % 2 == 0
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        text = f"{'alice said' if person else 'it was said'} the film was {word}"
        label = [name for name, on in (("person", person), ("pos", positive)) if on]
        out.append({"text": text, "label": label} if kind == "sequence" else
                   {"text": "what was said ?", "text_pair": text, "label": label})  # fmt: skip
    return out


def regression_examples(kind: str, n: int = 32, seed: int = 0) -> list[dict]:
    """A positive word scores 4.5, a negative one 1.0 (scores as on ASSIN's 1-5 scale)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive = i % 2 == 0
        text = f"the film was {rng.choice(POSITIVE if positive else NEGATIVE)}"
        score = 4.5 if positive else 1.0
        out.append({"text": text, "label": score} if kind == "sequence" else
                   {"text": "how was it ?", "text_pair": text, "label": score})  # fmt: skip
    return out


# --- losses, worked by hand -------------------------------------------------------------------------------------


def test_multilabel_loss_is_bce_averaged_over_every_cell():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    gold = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # bce(x, y) = log(1 + e^x) - y x per cell:
    #   (0, 1): log 2 = 0.693147        (2, 0): log(1 + e^2) = log 8.389056 = 2.126928
    #   (-1, 0): log(1 + e^-1) = log 1.367879 = 0.313262    (0, 1): 0.693147
    # sum 3.826484 over 4 cells: mean 0.956621
    assert float(MultiLabel().loss(logits, gold)) == pytest.approx(0.956621, abs=1e-6)
    assert float(MultiLabel().loss(logits, gold, reduction="sum")) == pytest.approx(3.826484, abs=1e-6)
    assert float(MultiLabel().loss_denominator(gold)) == 4.0
    # a NaN row is a padding row (distributed.shard_batch): no loss, no cells in the denominator
    padded = torch.cat([gold, torch.full((1, 2), float("nan"))])
    logits3 = torch.cat([logits, torch.tensor([[5.0, 5.0]])])
    assert float(MultiLabel().loss(logits3, padded)) == pytest.approx(0.956621, abs=1e-6)
    assert float(MultiLabel().loss_denominator(padded)) == 4.0


def test_regression_loss_is_mean_squared_error_and_minus_100_is_a_score():
    logits = torch.tensor([[1.0], [2.5], [-1.0]])
    gold = torch.tensor([2.0, 2.0, -100.0])
    # errors -1, 0.5, 99: squares 1 + 0.25 + 9801 = 9802.25, mean 3267.416667 (-100 is no IGNORE index here)
    assert float(Regression().loss(logits, gold)) == pytest.approx(3267.416667, rel=1e-6)
    assert float(Regression().loss_denominator(gold)) == 3.0
    with_padding = torch.tensor([2.0, float("nan")])
    # (1 - 2)^2; the NaN row is skipped
    assert float(Regression().loss(torch.tensor([[1.0], [7.0]]), with_padding)) == 1.0


def test_single_label_loss_is_todays_cross_entropy():
    # -log softmax([2, 0])[0] = log(1 + e^-2) = 0.126928; the IGNORE row adds nothing
    logits, gold = torch.tensor([[2.0, 0.0], [0.0, 9.0]]), torch.tensor([0, -100])
    assert float(Problem().loss(logits, gold)) == pytest.approx(0.126928, abs=1e-6)
    assert float(Problem().loss_denominator(gold)) == 1.0


def test_divergence_limits_follow_each_problems_chance_loss():
    assert Problem().divergence_limit(4) == pytest.approx(100 * math.log(4))
    assert MultiLabel().divergence_limit(28) == pytest.approx(100 * math.log(2))
    # targets 1 and 3: E[y^2] = (1 + 9) / 2 = 5, so the limit is 100 x (5 + 1) = 600
    scores = Regression.from_examples([{"label": 1.0}, {"label": "3"}])
    assert scores.score_range == (1.0, 3.0) and scores.divergence_limit(1) == pytest.approx(600)
    check_diverged("training", 599.0, "step 1", scores.divergence_limit(1))  # big, but no divergence
    with pytest.raises(RuntimeError, match="diverged"):
        check_diverged("training", 601.0, "step 1", scores.divergence_limit(1))


def test_a_fresh_regression_head_starts_at_the_mean_score():
    head = torch.nn.Linear(4, 1)
    Regression.from_examples([{"label": 1.0}, {"label": 4.0}]).init_head(head, ["score"])  # mean (1 + 4) / 2
    assert float(head.bias.detach()) == 2.5
    single = torch.nn.Linear(4, 2)
    before = single.bias.clone()
    Problem().init_head(single, ["neg", "pos"])
    assert torch.equal(single.bias, before)  # classifiers keep their initialisation


def test_a_fresh_multilabel_head_starts_at_each_labels_log_odds():
    examples = [{"label": ["a", "b"]}, {"label": ["a"]}, {"label": []}, {"label": ["a", "a"]}]
    head = torch.nn.Linear(4, 3)
    MultiLabel.from_examples(examples).init_head(head, ["a", "b", "c"])
    # rates: a 3/4 (a repeated name counts once), b 1/4, c 0/4 -> floored at 1e-3
    # log-odds: ln(0.75 / 0.25) = 1.0986, ln(0.25 / 0.75) = -1.0986, ln(0.001 / 0.999) = -6.9068
    assert head.bias.detach().tolist() == pytest.approx([1.0986, -1.0986, -6.9068], abs=1e-4)
    assert torch.sigmoid(head.bias.detach()).tolist() == pytest.approx([0.75, 0.25, 0.001], abs=1e-6)


# --- thresholds and metrics on hand-made tables --------------------------------------------------------------------


def test_thresholds_maximise_each_labels_f1_with_ties_nearest_one_half():
    probs = [
        [0.9, 0.8, 0.9],
        [0.7, 0.3, 0.8],
        [0.65, 0.1, 0.51],
        [0.2, 0.1, 0.52],
        [0.1, 0.1, 0.53],
        [0.1, 0.1, 0.54],
        [0.1, 0.1, 0.46],
        [0.1, 0.1, 0.47],
    ]
    gold = [
        [1, 1, 1],
        [1, 0, 1],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 1],
        [0, 0, 1],
    ]
    got = tune_thresholds(probs, gold, ["a", "b", "c"])
    # a: positives 0.9, 0.7, the best negative 0.65: only t = 0.70 separates them (F1 1)
    # b: positive 0.8, negatives <= 0.3: every t in 0.35..0.80 gives F1 1; the nearest 0.5 is 0.5 itself
    # c: positives 0.9, 0.8, 0.47, 0.46; negatives 0.51..0.54.
    #    t <= 0.45: tp 4, fp 4 -> F1 8/12 = 2/3;  t = 0.50: tp 2, fp 4, fn 2 -> 4/10;  0.55..0.80: tp 2, fn 2 -> 4/6
    #    the best, 2/3, is tied; 0.45 and 0.55 are equally near 0.5: the lower wins
    assert got == {"a": 0.7, "b": 0.5, "c": 0.45}


def test_a_label_without_positives_or_data_keeps_one_half():
    assert tune_thresholds([[0.9], [0.8]], [[0], [0]], ["rare"]) == {"rare": 0.5}
    assert tune_thresholds([], [], ["a", "b"]) == {"a": 0.5, "b": 0.5}


def test_multilabel_metrics_by_hand():
    gold = [[1, 0], [1, 1], [0, 0]]
    probs = [[0.9, 0.2], [0.8, 0.4], [0.3, 0.7]]
    m = multilabel_metrics(gold, probs, ["a", "b"], {"a": 0.5, "b": 0.5})
    # predicted [[1, 0], [1, 0], [0, 1]]: a tp 2 (F1 1); b tp 0, fp 1, fn 1 (F1 0)
    # micro: tp 2, fp 1, fn 1 -> 4 / 6; macro (1 + 0) / 2; exact rows: only the first -> 1/3
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "threshold": 0.5}
    lower = multilabel_metrics(gold, probs, ["a", "b"], {"a": 0.5, "b": 0.35})
    # b now fires on rows 2 (0.4) and 3 (0.7): tp 1, fp 1 -> F1 2/3; rows 1 and 2 match exactly
    assert lower["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert lower["subset_accuracy"] == pytest.approx(2 / 3)
    assert lower["thresholds"] == {"a": 0.5, "b": 0.35}


def test_regression_metrics_by_hand():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0])
    # one error of 1 in 4: MSE 0.25, RMSE 0.5; same order: Spearman 1
    # Pearson: deviations x (-1.75, -0.75, 0.25, 2.25), y (-1.5, -0.5, 0.5, 1.5): 6.5 / sqrt(8.75 * 5) = 0.982708
    assert m["mse"] == pytest.approx(0.25) and m["rmse"] == pytest.approx(0.5)
    assert m["spearman"] == pytest.approx(1.0) and m["pearson"] == pytest.approx(0.982708, abs=1e-6)
    constant = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert constant["pearson"] == 0.0 and constant["spearman"] == 0.0  # undefined correlation: 0, never NaN


# --- validation ------------------------------------------------------------------------------------------------------


def test_make_task_builds_each_problem():
    multi = make_task("sequence", multilabel_examples("sequence", 4), problem="multilabel")
    assert multi.labels == ["person", "pos"] and multi.problem.name == "multilabel"
    assert multi.problem.target(["pos"], multi.labels) == [0.0, 1.0]
    scores = make_task("pair", regression_examples("pair", 4), problem="regression")
    assert scores.labels == ["score"] and scores.problem.score_range == (1.0, 4.5)


@pytest.mark.parametrize(
    "problem, examples, message",
    [
        ("multilabel", [{"text": "a", "label": ["x"]}, {"text": "b", "label": "x,y"}],
         "training example 2: field 'label' must be a list of labels"),
        ("multilabel", [{"text": "a", "label": ["x", ""]}], "training example 1: field 'label' holds ''"),
        ("multilabel", [{"text": "a", "label": []}, {"text": "b", "label": []}], "no label on any example"),
        ("regression", [{"text": "a", "label": 1.0}, {"text": "b", "label": "high"}],
         "training example 2: field 'label' must be a finite number"),
        ("regression", [{"text": "a", "label": float("nan")}], "training example 1: field 'label' must be a finite"),
        ("regression", [{"text": "a", "label": 2}, {"text": "b", "label": "2.0"}], "only one score value"),
    ],
)  # fmt: skip
def test_bad_labels_name_the_example_and_field(problem, examples, message):
    with pytest.raises(DataValidationError, match=message):
        make_task("sequence", examples, problem=problem)


def test_an_empty_label_list_is_a_label_and_unknown_labels_are_named():
    task = make_task(
        "sequence", [{"text": "a", "label": []}, {"text": "b", "label": ["x"]}], problem="multilabel"
    )
    with pytest.raises(
        DataValidationError, match=r"eval example 1: label 'z' is not in the label set \['x'\]"
    ):
        task.check_labels([{"text": "c", "label": ["z"]}], "eval")


def test_config_validates_the_problem():
    with pytest.raises(ValueError, match="problem must be one of"):
        TrainConfig(task="sequence", output_dir="x", problem="ranking")
    with pytest.raises(ValueError, match="token tagging is single-label"):
        TrainConfig(task="token", output_dir="x", problem="multilabel")
    with pytest.raises(ValueError, match="class_weight applies to single-label"):
        TrainConfig(task="sequence", output_dir="x", problem="regression", class_weight=True)
    with pytest.raises(ValueError, match="metric_for_best for problem 'regression' is one of"):
        TrainConfig(task="sequence", output_dir="x", problem="regression", metric_for_best="accuracy")
    config = TrainConfig(task="pair", output_dir="x", problem="multilabel")
    assert config.metric_for_best == "macro_f1"
    assert TrainConfig(task="sequence", output_dir="x", problem="regression").metric_for_best == "pearson"
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_auto_counts_each_label_and_weights_single_label_only():
    from finetuner import auto

    examples = [{"label": ["a"]}] * 9 + [{"label": ["a", "b"]}]
    counts = auto.label_counts("sequence", examples, "multilabel")
    assert counts == {"a": 10, "b": 1}
    assert auto.choose("sequence", 10, counts, problem="multilabel").class_weight is False
    assert auto.label_counts("sequence", [{"label": 1.5}], "regression") == {}


# --- training end to end (1 layer) -----------------------------------------------------------------------------------


def _config(tmp_path, kind: str, problem: str, mode: str, name: str) -> TrainConfig:
    fast = {"lr": 2e-2, "epochs": 40} if mode == "frozen" else {"lr": 3e-4, "epochs": 6}
    return TrainConfig(
        task=kind,
        problem=problem,
        output_dir=str(tmp_path / name),
        mode=mode,
        batch_size=8,
        eval_split=0.0,
        seed=0,
        log_every=1,
        model_overrides={"num_hidden_layers": 1},
        **fast,
    )


@pytest.fixture(scope="module")
def multilabel_folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multilabel")
    out = {}
    for kind, mode in (("sequence", "frozen"), ("pair", "full")):
        data = multilabel_examples(kind)
        out[kind] = train(_config(tmp, kind, "multilabel", mode, kind), data, data)
    return out


@pytest.fixture(scope="module")
def regression_folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regression")
    out = {}
    for kind, mode in (("sequence", "full"), ("pair", "frozen")):
        data = regression_examples(kind)
        out[kind] = train(_config(tmp, kind, "regression", mode, kind), data, data)
    return out


@pytest.mark.parametrize("kind", ["sequence", "pair"])
def test_multilabel_trains_saves_thresholds_and_predicts(multilabel_folders, kind):
    from finetuner.predict import Predictor

    result = multilabel_folders[kind]
    metrics = result.metrics
    wanted = {"loss", "micro_f1", "macro_f1", "subset_accuracy", "per_class", "labels", "thresholds"}
    assert wanted <= set(metrics)
    assert metrics["macro_f1"] >= 0.9, metrics  # a separable toy set
    meta = json.loads(Path(result.output_dir, "finetuner.json").read_text())
    assert meta["problem"] == "multilabel" and meta["thresholds"] == metrics["thresholds"]
    config = json.loads(Path(result.output_dir, "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    predictor = Predictor.load(result.output_dir)
    sample = multilabel_examples(kind, 4)
    pairs = [ex["text_pair"] for ex in sample] if kind == "pair" else None
    got = predictor.predict_many([ex["text"] for ex in sample], pairs)
    assert [g["labels"] for g in got] == [ex["label"] for ex in sample]
    assert got[0]["thresholds"] == meta["thresholds"] and set(got[0]["probabilities"]) == {"person", "pos"}
    explained = predictor.explain(sample[0]["text"], "person,pos", sample[0].get("text_pair"))
    losses = explained["per_label_loss"]
    # mean BCE over the labels, each from its sigmoid probability: -log p for the gold labels (both apply here)
    assert losses["pos"] == pytest.approx(-math.log(explained["probabilities"]["pos"]), rel=1e-4)
    assert explained["loss"] == pytest.approx((losses["pos"] + losses["person"]) / 2, rel=1e-6)
    assert explained["label"] == ["person", "pos"] and explained["predicted"] == sample[0]["label"]


@pytest.mark.parametrize("kind", ["sequence", "pair"])
def test_regression_trains_and_predicts_scores(regression_folders, kind):
    from finetuner.predict import Predictor

    result = regression_folders[kind]
    assert {"loss", "pearson", "spearman", "rmse", "mse"} <= set(result.metrics)
    assert result.metrics["pearson"] > 0.9, result.metrics
    meta = json.loads(Path(result.output_dir, "finetuner.json").read_text())
    assert meta["problem"] == "regression" and meta["labels"] == ["score"]
    assert meta["score_range"] == [1.0, 4.5]
    config = json.loads(Path(result.output_dir, "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    predictor = Predictor.load(result.output_dir)
    sample = regression_examples(kind, 2)
    pair = sample[0].get("text_pair")
    high, low = (predictor.predict(ex["text"], ex.get("text_pair"))["score"] for ex in sample)
    assert high > low
    explained = predictor.explain(sample[0]["text"], 4.5, pair)
    assert explained["weight_shape"][1] == 1 and explained["predicted"] == pytest.approx(high, abs=1e-5)
    assert explained["loss"] == pytest.approx((explained["score"] - 4.5) ** 2, rel=1e-6)
    assert predictor.explain(sample[0]["text"], None, pair)["loss"] is None


def test_pipeline_loads_multilabel_and_regression_folders(multilabel_folders, regression_folders):
    from transformers import pipeline

    from finetuner.predict import Predictor

    folder = multilabel_folders["sequence"].output_dir
    classify = pipeline("text-classification", model=folder, top_k=None, trust_remote_code=True)
    text = multilabel_examples("sequence", 1)[0]["text"]
    scores = {r["label"]: r["score"] for r in classify([text])[0]}
    ours = Predictor.load(folder).predict(text)["probabilities"]
    assert set(scores) == {"person", "pos"}
    assert all(scores[k] == pytest.approx(ours[k], abs=1e-4) for k in ours)  # sigmoids, not a softmax
    assert sum(scores.values()) != pytest.approx(1.0, abs=1e-3)

    folder = regression_folders["sequence"].output_dir
    score = pipeline("text-classification", model=folder, trust_remote_code=True, function_to_apply="none")
    text = regression_examples("sequence", 1)[0]["text"]
    got = score(text)[0]
    assert got["label"] == "score"
    assert got["score"] == pytest.approx(Predictor.load(folder).predict(text)["score"], abs=1e-4)
    # problem_type "regression" makes no function the pipeline's default too
    assert pipeline("text-classification", model=folder, trust_remote_code=True)(text)[0] == got


def test_eval_of_a_folder_uses_its_stored_thresholds(multilabel_folders):
    from finetuner.training import evaluate_folder

    folder = multilabel_folders["sequence"].output_dir
    stored = json.loads(Path(folder, "finetuner.json").read_text())["thresholds"]
    metrics = evaluate_folder(folder, multilabel_examples("sequence", 12, seed=3))
    assert metrics["thresholds"] == stored and metrics["macro_f1"] >= 0.9


def test_batch_predictions_write_the_problems_columns(multilabel_folders, regression_folders):
    from finetuner.batch_predict import predict_rows
    from finetuner.predict import Predictor

    texts = [ex["text"] for ex in multilabel_examples("sequence", 3)]
    rows = predict_rows(Predictor.load(multilabel_folders["sequence"].output_dir), texts + [""])
    assert list(rows[0]) == ["predicted_labels", "p_person", "p_pos"]
    assert rows[0]["predicted_labels"] == "person,pos" and rows[3]["predicted_labels"] == ""
    rows = predict_rows(Predictor.load(regression_folders["sequence"].output_dir), texts)
    assert list(rows[0]) == ["predicted_score"] and isinstance(rows[0]["predicted_score"], float)


def test_card_names_the_problem_thresholds_and_score_range(multilabel_folders, regression_folders):
    card = Path(multilabel_folders["sequence"].output_dir, "README.md").read_text()
    assert "multi-label classification" in card and "| `pos` |" in card and "top_k=None" in card
    assert "Macro F1" in card and "Subset accuracy" in card
    card = Path(regression_folders["sequence"].output_dir, "README.md").read_text()
    assert "score regression" in card and "from 1 to 4.5" in card and 'function_to_apply="none"' in card
    assert "Pearson" in card and "RMSE" in card


def test_old_folder_without_problem_still_predicts_single(tmp_path, make_examples):
    from finetuner.predict import Predictor

    data = make_examples("sequence", 16)
    config = TrainConfig(
        task="sequence", output_dir=str(tmp_path / "old"), mode="frozen", epochs=20, lr=2e-2, batch_size=8,
        eval_split=0.0, seed=0, model_overrides={"num_hidden_layers": 1},
    )  # fmt: skip
    folder = Path(train(config, data, data).output_dir)
    meta = json.loads((folder / "finetuner.json").read_text())
    assert meta["problem"] == "single"
    del meta["problem"]  # as folders saved before problems existed
    (folder / "finetuner.json").write_text(json.dumps(meta))
    hub = json.loads((folder / "config.json").read_text())
    hub.pop("problem_type")
    (folder / "config.json").write_text(json.dumps(hub))
    predictor = Predictor(folder)
    assert predictor.problem == "single"
    got = predictor.predict("the film was superb")
    assert got["label"] == "pos" and sum(got["probabilities"].values()) == pytest.approx(1.0)


def test_a_rank_without_rows_adds_nothing_to_float_losses(monkeypatch):
    from finetuner import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")  # a global batch of one row leaves rank 1 a padding row
    multi = distributed.shard_batch({"features": torch.ones(1, 3), "labels": torch.tensor([[1.0, 0.0]])})
    assert torch.isnan(multi["labels"]).all()
    assert float(MultiLabel().loss(torch.zeros(1, 2), multi["labels"], reduction="sum")) == 0.0
    assert float(distributed.loss_denominator(multi["labels"], None, MultiLabel())) == 0.0
    scores = distributed.shard_batch({"features": torch.ones(1, 3), "labels": torch.tensor([-100.0])})
    assert float(Regression().loss(torch.zeros(1, 1), scores["labels"], reduction="sum")) == 0.0
    assert float(distributed.loss_denominator(scores["labels"], None, Regression())) == 0.0


def test_the_saved_models_forward_loss_follows_problem_type(multilabel_folders, regression_folders):
    from torch.nn import functional as F

    from finetuner.predict import Predictor

    for folder, labels, expected in [
        (
            multilabel_folders["sequence"].output_dir,
            torch.tensor([[1.0, 0.0]]),
            F.binary_cross_entropy_with_logits,
        ),
        (
            regression_folders["sequence"].output_dir,
            torch.tensor([3.0]),
            lambda x, y: F.mse_loss(x.reshape(-1), y),
        ),
    ]:
        predictor = Predictor.load(folder)
        enc = predictor.tokenizer(["alice said the film was good"], return_tensors="pt")
        with torch.no_grad():
            out = predictor.model(**enc, labels=labels)
        assert float(out.loss) == pytest.approx(float(expected(out.logits, labels)), rel=1e-6)
