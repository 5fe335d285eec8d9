"""The CLI contract: train / eval / predict on files, JSON out, clear errors on bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import run_in_process, write_csv
from engine_toys import make_examples

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "finetuner", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )


def test_train_eval_predict(tmp_path, tiny_model_dir, capsys):
    data = write_csv(tmp_path / "train.csv", make_examples("sequence", 24))
    out = tmp_path / "model"
    run = cli(
        "train",
        "--task",
        "sequence",
        "--train",
        str(data),
        "--eval",
        str(data),
        "--mode",
        "frozen",
        "--model",
        tiny_model_dir,
        "--pooling",
        "mean",
        "--epochs",
        "20",
        "--lr",
        "0.02",
        "--batch-size",
        "8",
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout.strip().splitlines()[-1])
    assert metrics["accuracy"] == 1.0
    assert "step" in run.stderr  # the progress bar

    # `python -m finetuner` was started once above; eval and predict run main() in process (no second start-up)
    code, out_text, err = run_in_process(capsys, "eval", "--model", str(out), "--data", str(data))
    assert code == 0, err
    assert json.loads(out_text)["accuracy"] == 1.0

    code, out_text, err = run_in_process(
        capsys, "predict", "--model", str(out), "--text", "the film was superb"
    )
    assert code == 0, err
    prediction = json.loads(out_text)
    assert prediction["label"] == "pos" and set(prediction["probabilities"]) == {"neg", "pos"}


def test_token_task_from_conll(tmp_path, tiny_model_dir, capsys):
    conll = tmp_path / "train.conll"
    conll.write_text(
        "\n\n".join(
            "\n".join(f"{w} {t}" for w, t in zip(ex["tokens"], ex["tags"], strict=True))
            for ex in make_examples("token", 24)
        )
        + "\n"
    )
    out = tmp_path / "ner"
    code, out_text, err = run_in_process(
        capsys,
        "train",
        "--task",
        "token",
        "--train",
        str(conll),
        "--eval",
        str(conll),
        "--mode",
        "frozen",
        "--model",
        tiny_model_dir,
        "--epochs",
        "20",
        "--lr",
        "0.02",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert json.loads(out_text.strip().splitlines()[-1])["f1"] == 1.0
    code, out_text, _ = run_in_process(
        capsys, "predict", "--model", str(out), "--text", "alice smith lives in paris"
    )
    assert json.loads(out_text)["tags"] == ["B-PER", "I-PER", "O", "O", "B-LOC"]


@pytest.mark.parametrize(
    "rows,args,message",
    [
        ([{"sentence": "a", "label": "x"}], ["--text-col", "review"], "review"),
        ([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], [], "label"),
        ([{"text": "a", "label": "x"}, {"text": "", "label": "y"}], [], "row"),
    ],
)
def test_bad_input_exits_nonzero_with_file_row_column(tmp_path, capsys, rows, args, message):
    data = write_csv(tmp_path / "bad.csv", rows)
    code, _, err = run_in_process(
        capsys, "train", "--task", "sequence", "--train", str(data), "--out", str(tmp_path / "m"), *args
    )
    assert code != 0
    assert message in err and "bad.csv" in err


def test_empty_file_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = run_in_process(
        capsys, "train", "--task", "sequence", "--train", str(empty), "--out", str(tmp_path / "m")
    )
    assert code != 0 and "empty.csv" in err


def test_optimiser_schedule_and_regularisers_reach_the_saved_config(tmp_path, tiny_model_dir, capsys):
    from finetuner.modeling import META_FILE

    data = write_csv(tmp_path / "train.csv", make_examples("sequence", 16))
    out = tmp_path / "model"
    flags = {
        "--optimizer": "sgd",
        "--schedule": "cosine",
        "--warmup": "0.2",
        "--weight-decay": "0.05",
        "--head-lr-scale": "10",
        "--mask-tokens": "0.1",
    }
    args = f"train --task sequence --train {data} --eval {data} --model {tiny_model_dir}".split()
    code, _, err = run_in_process(
        capsys, *args, "--epochs", "1", "--out", str(out), *[x for kv in flags.items() for x in kv]
    )
    assert code == 0, err
    saved = json.loads((out / META_FILE).read_text())["config"]
    assert (saved["optimizer"], saved["schedule"]) == ("sgd", "cosine")
    assert (saved["warmup"], saved["weight_decay"], saved["head_lr_scale"], saved["mask_tokens"]) == (
        0.2,
        0.05,
        10.0,
        0.1,
    )
    # left out, every flag that is a TrainConfig field is None, so the config's own default applies (the parser
    # holds no second copy of a default)
    from finetuner.__main__ import build_parser
    from finetuner.config import TrainConfig

    plain = vars(build_parser().parse_args(["train", "--task", "sequence", "--train", "t.csv", "--out", "x"]))
    settings = {f.name for f in dataclasses.fields(TrainConfig)} & plain.keys() - {"task", "output_dir"}
    assert {flag[2:].replace("-", "_") for flag in flags} <= settings and len(settings) >= 20
    assert {name: plain[name] for name in settings} == dict.fromkeys(settings)
    # a setting the config refuses is a message and exit code 2, before any data is read
    code, _, err = run_in_process(capsys, *args, "--mode", "frozen", "--mask-tokens", "0.1", "--out", "y")
    assert code == 2 and "mask_tokens needs the encoder" in err
    with pytest.raises(SystemExit):  # argparse names the choices
        run_in_process(capsys, *args, "--schedule", "step", "--out", str(tmp_path / "bad"))
    assert "invalid choice: 'step'" in capsys.readouterr().err
