"""Headless CLI: ``python -m finetuner train | eval | predict | push`` (a stable contract: the app and scripts rely on it)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from finetuner.config import OPTIMIZERS, PAIR_ENCODINGS, SCHEDULES, TrainConfig

_FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
# The task names a user types: the input's shape, or a problem whose input is a pair when --text-pair-col is given
TASK_CHOICES = ["sequence", "pair", "token", "multilabel", "regression"]


def _default(field: str) -> str:
    """A help text's "default: ..." read from TrainConfig, so the parser holds no second copy of it."""
    return f"default: {_FIELDS[field].default}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetuner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fine-tune on a file and save a model folder")
    # A flag whose dest is a TrainConfig field and that is left out parses to None: the config's own default applies
    # (one place for defaults; _default() quotes it in the help).
    t.add_argument(
        "--task",
        required=True,
        choices=TASK_CHOICES,
        help="multilabel / regression: pair inputs when --text-pair-col is given, else one text",
    )
    t.add_argument("--train", required=True, help="CSV, TSV, JSONL, or CoNLL (token task)")
    held_out = t.add_mutually_exclusive_group()
    held_out.add_argument("--eval", help="eval file (same format as --train)")
    held_out.add_argument(
        "--eval-split", type=float, help=f"fraction held out when --eval is absent; {_default('eval_split')}"
    )
    t.add_argument("--text-col")
    t.add_argument("--text-pair-col")
    t.add_argument("--label-col")
    t.add_argument(
        "--label-sep", default=",", help="multilabel: what separates the labels in a cell (default: ,)"
    )
    t.add_argument("--model", help=f"bundled default, hub id, or local folder; {_default('model')}")
    t.add_argument("--mode", help=f"auto (picked from the data), frozen, full, or top-N; {_default('mode')}")
    t.add_argument(
        "--pair-encoding",
        choices=PAIR_ENCODINGS,
        help="default: auto mode reads pairs siamese ([u, v, |u-v|, u*v]) when it trains a frozen head, else cross; "
        "other modes cross",
    )
    t.add_argument(
        "--pooling", choices=["cls", "mean"], help="default: the model's own (MiniLM: mean), else cls"
    )
    t.add_argument(
        "--feature-layers", type=int, help="pool the last N layers, concatenated (frozen default: 4)"
    )
    t.add_argument("--epochs", type=int, help="default: by mode and data size")
    t.add_argument("--lr", type=float, help="default: by mode and data size")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help=_default("optimizer"))
    t.add_argument(
        "--schedule", choices=SCHEDULES, help=f"lr after warm-up; {_default('schedule')} (decay to 0)"
    )
    t.add_argument("--warmup", type=float, help=f"fraction of all steps warming up; {_default('warmup')}")
    t.add_argument(
        "--weight-decay",
        type=float,
        help=f"AdamW / SGD, not on biases or LayerNorm; {_default('weight_decay')}",
    )
    t.add_argument(
        "--head-lr-scale",
        type=float,
        help=f"full / top-N: the head's lr is this times --lr; {_default('head_lr_scale')}",
    )
    t.add_argument(
        "--mask-tokens",
        type=float,
        help=f"full / top-N training: this fraction of text tokens become the mask token; {_default('mask_tokens')}",
    )
    t.add_argument("--batch-size", type=int, help=_default("batch_size"))
    t.add_argument("--max-length", type=int, help=f"tokens; {_default('max_length')}")
    t.add_argument("--seed", type=int, help=_default("seed"))
    t.add_argument(
        "--early-stopping",
        dest="early_stopping_patience",
        metavar="PATIENCE",
        type=int,
        help=f"patience: epochs in which no evaluation improved (0: off); {_default('early_stopping_patience')}",
    )
    t.add_argument(
        "--evals-per-epoch",
        type=int,
        help="evaluations per epoch, evenly spaced, the best kept; default: 4 from 20,000 training examples, else 1",
    )
    t.add_argument(
        "--ema-decay",
        type=float,
        help="evaluate and keep a moving average of the weights whose decay is capped here, e.g. 0.9999; 0: off (the last "
        "step's weights); default: 0.9999 from 20,000 training examples, else off",
    )
    t.add_argument(
        "--layer-lr-decay",
        type=float,
        help="each layer down from the head trains at this times the lr of the one above (1: the same lr); "
        + _default("layer_lr_decay"),
    )
    t.add_argument(
        "--label-smoothing",
        type=float,
        help="training targets: 1 - this on the gold label, plus this spread evenly over all labels (0: off); "
        + _default("label_smoothing"),
    )
    t.add_argument(
        "--class-weight",
        type=lambda v: {"on": True, "off": False}[v],
        metavar="{on,off}",
        help="weight the loss by inverse class frequency (token tasks: tag frequency); default: auto turns it on for "
        "skewed classes and for token sets it fine-tunes below 2,000 sentences, else off",
    )
    t.add_argument(
        "--keep",
        dest="keep_best",
        type=lambda v: {"best": True, "last": False}[v],
        metavar="{best,last}",
        help="which evaluation's weights to keep; default: best (auto: last with under 50 eval examples)",
    )
    t.add_argument(
        "--refit",
        type=lambda v: {"on": True, "off": False}[v],
        metavar="{on,off}",
        help="frozen: once scored, train the head again on the training and eval examples together; default: "
        "auto turns it on with under 50 eval examples, else off",
    )
    t.add_argument(
        "--contrastive-steps",
        type=int,
        metavar="N",
        help="sequence / pair: first tune the encoder SetFit-style on same / different-label pairs, at most N steps "
        "of 16 pairs (MiniLM on a CPU: ~1 s each for short sentences, ~2.5 s for reviews); 0: off; default: auto "
        "decides (English single-label sets of 50-500 training examples, within a 90 s budget), other modes off",
    )
    t.add_argument(
        "--head-fit",
        choices=("epochs", "logistic"),
        help="frozen: train the head for epochs over the cached features, or fit SetFit's head at once (a logistic "
        "regression on unit-length vectors); default: auto fits it after its contrastive step, else epochs",
    )
    t.add_argument("--resume", action="store_true", default=None, help="continue from DIR/checkpoint")
    t.add_argument("--out", dest="output_dir", metavar="DIR", required=True, help="model folder to write")

    e = sub.add_parser("eval", help="metrics of a model folder on a labeled file (one JSON object)")
    e.add_argument("--model", required=True)
    # --file as predict names it; --data kept: scripts written before use it
    e.add_argument(
        "--file", "--data", dest="data", required=True, help="labeled CSV, TSV, JSONL, XLSX or CoNLL"
    )
    for col in ("--text-col", "--text-pair-col", "--label-col"):
        e.add_argument(col)
    e.add_argument("--label-sep", default=",", help="multi-label models: the labels' separator (default: ,)")
    e.add_argument(
        "--split",
        help="only the rows whose split column says this (train, dev / validation / eval, test; any case)",
    )
    e.add_argument("--split-col", help="with --split: the column naming each row's split; default: guessed")

    p = sub.add_parser(
        "predict", help="predict one input (one JSON object), or a whole file (--file IN --out OUT)"
    )
    p.add_argument("--model", required=True)
    one_or_file = p.add_mutually_exclusive_group(required=True)
    one_or_file.add_argument("--text")
    one_or_file.add_argument("--file", help="CSV, TSV, JSONL, XLSX or CoNLL: every row is predicted")
    p.add_argument("--text-pair")
    p.add_argument("--out", help="with --file: the output file; its extension picks the format")
    p.add_argument("--text-col", help="with --file: the text (token models: tokens) column; guessed")
    p.add_argument("--text-pair-col", help="with --file: the second text column (pair models); guessed")

    h = sub.add_parser("push", help="upload a model folder to the Hugging Face Hub (needs HF_TOKEN)")
    h.add_argument("--model", required=True, help="a saved model folder")
    h.add_argument("--repo", required=True, help="the Hub repository, user/name or org/name")
    h.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": _train, "eval": _eval, "predict": _predict, "push": _push}[args.command](args)
    except (
        ValueError,
        RuntimeError,
        OSError,
    ) as exc:  # bad input and load failures: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        if getattr(exc, "cli_hint", None):  # what only a command-line user can do (ModelLoadError)
            print(f"hint: {exc.cli_hint}", file=sys.stderr)
        return 2


def task_and_problem(name: str, text_pair_col: str | None) -> tuple[str, str]:
    """(input shape, problem) for a --task name.

    >>> task_and_problem("multilabel", "sentence2")
    ('pair', 'multilabel')
    >>> task_and_problem("pair", None)
    ('pair', 'single')
    """
    if name in ("multilabel", "regression"):
        return ("pair" if text_pair_col else "sequence"), name
    return name, "single"


def _read(path: str, task: str, args, problem: str = "single") -> list[dict]:
    from storage.io import read_examples  # the CLI may use storage's file readers; the engine itself does not

    options = {"problem": problem, "label_sep": args.label_sep} if problem != "single" else {}
    return read_examples(
        path,
        task,
        text_col=args.text_col,
        text_pair_col=args.text_pair_col,
        label_col=args.label_col,
        **options,
    )


def _train(args) -> int:
    from tqdm import tqdm

    from finetuner.tasks import DataValidationError
    from finetuner.training import Callbacks, train

    given = {name: value for name, value in vars(args).items() if name in _FIELDS and value is not None}
    task, problem = task_and_problem(args.task, args.text_pair_col)
    given.update(task=task, problem=problem)
    if args.eval:
        given["eval_split"] = 0.0  # the eval file is the held-out set
    config = TrainConfig(**given)
    train_data = _read(args.train, task, args, problem)
    eval_data = _read(args.eval, task, args, problem) if args.eval else None
    from finetuner import distributed

    main_rank = distributed.is_main()  # under torchrun the other ranks train silently
    bar = tqdm(total=1, unit="step", file=sys.stderr, dynamic_ncols=True, disable=not main_rank)

    def on_step(info) -> None:
        bar.total = info.total_steps
        bar.set_postfix(
            epoch=f"{info.epoch}/{info.epochs}", loss=f"{info.loss:.4f}", ex_s=f"{info.examples_per_s:.0f}"
        )
        bar.update(info.step - bar.n)

    def on_eval(info) -> None:
        bar.write(
            f"epoch {info.epoch}: "
            + ", ".join(f"{k}={v:.4f}" for k, v in info.metrics.items() if isinstance(v, float))
        )

    def on_phase(name: str, fraction: float) -> None:
        bar.set_description(name if fraction < 1 else "training")

    try:
        result = train(
            config, train_data, eval_data, Callbacks(on_step=on_step, on_eval=on_eval, on_phase=on_phase)
        )
    except DataValidationError as exc:  # name the file: the engine only knows example numbers
        raise ValueError(f"{args.eval if str(exc).startswith('eval') else args.train}: {exc}") from exc
    finally:
        bar.close()
    if main_rank:
        print(f"saved {result.output_dir}", file=sys.stderr)
        print(json.dumps(result.metrics))
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from finetuner.modeling import META_FILE
    from finetuner.training import evaluate_folder

    meta_file = Path(args.model) / META_FILE
    if not meta_file.is_file():
        raise ValueError(f"{args.model} is not a Finetuner model folder (no {META_FILE})")
    meta = json.loads(meta_file.read_text())
    task, problem = meta["task"], meta.get("problem") or "single"
    rows = (
        _read_split(args.data, task, args, problem) if args.split else _read(args.data, task, args, problem)
    )
    print(json.dumps(evaluate_folder(args.model, rows)))  # multi-label: at the folder's stored thresholds
    return 0


def _read_split(path: str, task: str, args, problem: str = "single") -> list[dict]:
    """The labeled rows of one split of a file that has a split column."""
    from storage.io import load_examples, preview_file
    from storage.splits import split_name

    wanted = split_name(args.split)
    column = args.split_col or preview_file(path, task, n=0).split_col
    if column is None:
        raise ValueError(f"{path}: no split column found; name it with --split-col")
    options = {"problem": problem, "label_sep": args.label_sep} if problem != "single" else {}
    loaded = load_examples(
        path,
        task,
        args.text_col,
        args.text_pair_col,
        args.label_col,
        require_labels=True,
        split_col=column,
        **options,
    )
    rows = [{k: v for k, v in ex.items() if k not in ("source_row", "split")} for ex in loaded.examples
            if ex.get("split") == wanted]  # fmt: skip
    if not rows:
        raise ValueError(f"{path}: no rows of the {args.split} split in column {column!r}")
    return rows


def _predict(args) -> int:
    from finetuner.predict import Predictor

    if args.file and not args.out:
        raise ValueError("--file needs --out (the predictions file to write)")
    predictor = Predictor.load(args.model)
    if args.file:
        return _predict_file(predictor, args)
    print(json.dumps(predictor.predict(args.text, args.text_pair)))
    return 0


def _predict_file(predictor, args) -> int:
    """Every row of --file, with its columns plus the predictions, to --out; a JSON summary on stdout."""
    from tqdm import tqdm

    from finetuner.batch_predict import predict_rows
    from storage import predict_files  # the CLI may use storage's file readers; the engine itself does not

    table = predict_files.read_inputs(args.file, predictor.task, args.text_col, args.text_pair_col)
    with tqdm(total=len(table.inputs), unit="row", file=sys.stderr, dynamic_ncols=True) as bar:
        rows = predict_rows(
            predictor, table.inputs, table.pairs, on_progress=lambda done, _: bar.update(done - bar.n)
        )
    n = predict_files.write_predictions(predict_files.with_predictions(table.df, rows), args.out)
    print(json.dumps({"rows": n, "out": args.out, "text_col": table.text_col}))
    return 0


def _push(args) -> int:
    from finetuner.hub import push

    print(push(args.model, args.repo, private=not args.public))
    return 0


if __name__ == "__main__":
    sys.exit(main())
