"""SetFit's head in the engine: the logistic regression, unit-length features, the train() path, Auto's pick."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from finetuner import TrainConfig, auto, modeling
from finetuner import train as ft_train
from finetuner.explain import describe_representation
from finetuner.logistic import fit_logistic
from finetuner.predict import Predictor
from finetuner.training import Callbacks


@pytest.mark.parametrize("classes", [2, 3])
def test_the_fit_is_scikit_learns_logistic_regression(classes):
    """The same minimiser as LogisticRegression(C=1) (binary for two classes, multinomial above): its probabilities."""
    gen = torch.Generator().manual_seed(classes)
    x = torch.nn.functional.normalize(torch.randn(90, 12, generator=gen), dim=-1)
    y = torch.randint(0, classes, (90,), generator=gen)
    head = nn.Linear(12, classes)
    fit_logistic(head, x, y)
    ours = torch.softmax(head(x), -1).detach().numpy()
    theirs = (
        LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(x.numpy(), y.numpy()).predict_proba(x.numpy())
    )
    assert np.abs(ours - theirs).max() < 2e-3


def test_class_weights_move_the_boundary_toward_the_common_class():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(80, 4, generator=gen) + 0.5, torch.randn(10, 4, generator=gen) - 0.5])
    y = torch.tensor([0] * 80 + [1] * 10)
    plain, weighted = nn.Linear(4, 2), nn.Linear(4, 2)
    fit_logistic(plain, x, y)
    fit_logistic(weighted, x, y, weight=torch.tensor([90 / 160, 90 / 20]))
    assert (weighted(x).argmax(-1) == 1).sum() > (plain(x).argmax(-1) == 1).sum()


def _head_inputs(model: nn.Module, predictor: Predictor, texts: list[str]) -> torch.Tensor:
    seen = []
    hook = modeling.head_of(model).register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        predictor.predict_many(texts)
    finally:
        hook.remove()
    return torch.cat(seen)


def test_a_frozen_run_fits_the_head_on_unit_vectors_and_the_folder_reads_them_so(tiny_config, make_examples):
    data = make_examples("sequence", n=24)
    steps = []
    config = tiny_config(mode="frozen", head_fit="logistic", feature_layers=1)
    result = ft_train(config, data, data, Callbacks(on_step=steps.append))
    assert [s.step for s in steps] == [1] and result.epochs_run == 1  # fitted at once, no epochs
    assert result.metrics["accuracy"] == 1.0 and len(result.history) == 1
    saved = json.loads(Path(result.output_dir, "config.json").read_text())
    assert saved["normalize_features"] is True
    card = Path(result.output_dir, "README.md").read_text()
    assert "scaled to unit length" in card and "- epochs:" not in card  # the card says so; no epochs ran
    meta = json.loads(Path(result.output_dir, modeling.META_FILE).read_text())
    assert "scaled to unit length" in describe_representation("sequence", meta, 384)

    predictor = Predictor.load(result.output_dir)
    assert predictor.predict("the film was superb")["label"] == "pos"
    assert predictor.predict("the film was dreadful")["label"] == "neg"
    inputs = _head_inputs(predictor.model, predictor, ["the film was superb", "a dull plot"])
    assert torch.allclose(inputs.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_the_default_head_still_reads_raw_vectors_and_older_folders_load_as_raw(tiny_config, make_examples):
    data = make_examples("sequence", n=24)
    result = ft_train(tiny_config(mode="frozen", epochs=2), data)
    config_file = Path(result.output_dir, "config.json")
    fields = json.loads(config_file.read_text())
    assert fields["normalize_features"] is False
    predictor = Predictor.load(result.output_dir)
    raw = _head_inputs(predictor.model, predictor, ["the film was superb"])
    assert raw.norm() > 1.5  # MiniLM's mean-pooled vectors are several units long

    del fields["normalize_features"]  # a folder saved before the field existed
    config_file.write_text(json.dumps(fields))
    older = Predictor.load(result.output_dir)
    assert torch.allclose(_head_inputs(older.model, older, ["the film was superb"]), raw)


def test_a_refit_fits_the_head_again_on_every_example(tiny_config, make_examples):
    data = make_examples("sequence", n=30)
    config = tiny_config(mode="frozen", head_fit="logistic", eval_split=0.2, refit=True, keep_best=False)
    result = ft_train(config, data)
    meta = json.loads(Path(result.output_dir, modeling.META_FILE).read_text())
    assert meta["refit"] and meta["train_examples"] == 30 and result.refit_examples == 30


def test_auto_fits_setfits_head_after_its_contrastive_step_and_a_hand_set_fit_wins():
    counts = {"pos": 58, "neg": 57}
    picked = auto.choose("sequence", 115, counts, n_eval=13, english=True, tokens=20.0)
    assert (
        picked.contrastive_steps and picked.head_fit == "logistic" and "logistic regression" in picked.reason
    )
    assert auto.choose("sequence", 115, counts, n_eval=13, english=False).head_fit == "epochs"  # no step
    assert auto.choose("sequence", 20, {"a": 10, "b": 10}, english=True).head_fit == "epochs"
    small = auto.choose("sequence", 58, {"pos": 29, "neg": 29}, n_eval=6, english=True, tokens=20.0)
    assert (
        small.contrastive_steps and small.head_fit == "epochs"
    )  # under auto.LOGISTIC_FROM: it lost at 32 a class

    config = TrainConfig(task="sequence", output_dir="x")
    assert config.resolved(115, counts, n_eval=13, english=True, tokens=20.0).head_fit == "logistic"
    by_hand = TrainConfig(task="sequence", output_dir="x", head_fit="epochs")
    resolved = by_hand.resolved(115, counts, n_eval=13, english=True, tokens=20.0)
    assert resolved.head_fit == "epochs" and "set by hand: head_fit" in resolved.auto_choice
    # Auto fine-tunes large data: a hand-set logistic head, like a refit, holds only where it picks frozen
    assert (
        TrainConfig(task="sequence", output_dir="x", head_fit="logistic").resolved(20_000).head_fit
        == "epochs"
    )
    assert TrainConfig(task="sequence", output_dir="x", mode="frozen").resolved(100).head_fit == "epochs"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "full", "head_fit": "logistic"}, "mode frozen or auto"),
        ({"mode": "frozen", "head_fit": "logistic", "problem": "multilabel"}, "single-label"),
        ({"head_fit": "lbfgs"}, "head_fit must be one of"),
    ],
)
def test_a_head_fit_that_cannot_apply_is_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(task="sequence", output_dir="x", **settings)


def test_the_cli_flag_sets_the_head_fit(tmp_path, tiny_model_dir, capsys):
    from cli_support import run_in_process, toy_train_args

    common = toy_train_args(tmp_path, tiny_model_dir)
    code, _, _ = run_in_process(
        capsys, *common, "--mode", "frozen", "--head-fit", "logistic", "--out", str(tmp_path / "m")
    )
    assert code == 0
    meta = json.loads((tmp_path / "m" / modeling.META_FILE).read_text())
    assert meta["config"]["head_fit"] == "logistic" and meta["normalize_features"] is True
    code, _, err = run_in_process(
        capsys, *common, "--mode", "full", "--head-fit", "logistic", "--out", str(tmp_path / "x")
    )
    assert code != 0 and "mode frozen or auto" in err
