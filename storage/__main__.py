"""Command line: import a file into a dataset, export a dataset, list datasets.

    python -m storage import FILE --dataset NAME --task {sequence,pair,token,multilabel,regression}
                             [--text-col C] [--text-pair-col C] [--label-col C] [--label-sep ,]
                             [--split train|dev|test] [--split-col C]
    python -m storage export --dataset NAME --format {csv,jsonl,conll} --out FILE [--labeled-only]
    python -m storage list

``--task multilabel`` / ``regression`` take pair inputs when ``--text-pair-col`` is given, else sequence
inputs; multi-label cells are JSON lists or names split on ``--label-sep``. The database is ``$DATABASE_URL`` or ``$DATA_DIR/finetuner.db``. Bad input exits with status 2 and a
message naming file, row and column; the database is unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys

from storage import repo
from storage.db import open_db
from storage.io import DataError, load_examples, refuse_list_labels, write_examples
from storage.label_values import CLI_TASKS, task_and_problem


def _parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import a CSV/TSV/JSONL/Excel/CoNLL file in one transaction")
    imp.add_argument("file")
    imp.add_argument("--dataset", required=True)
    imp.add_argument(
        "--task",
        required=True,
        choices=CLI_TASKS,
        help="multilabel / regression: pair inputs with --text-pair-col",
    )
    imp.add_argument("--text-col")
    imp.add_argument("--text-pair-col")
    imp.add_argument("--label-col")
    imp.add_argument(
        "--label-sep", default=",", help="separates the labels of a multi-label cell (default ',')"
    )
    imp.add_argument("--split", help="the file's split: train, dev (validation, eval) or test; any case")
    imp.add_argument(
        "--split-col", help="a column naming each row's split (train / dev / test); --split fills blanks"
    )
    imp.add_argument("--duplicates", choices=("keep", "skip"), default="keep")
    exp = sub.add_parser("export", help="export a dataset")
    exp.add_argument("--dataset", required=True)
    exp.add_argument("--format", required=True, choices=("csv", "jsonl", "conll"))
    exp.add_argument("--out", required=True)
    exp.add_argument("--labeled-only", action="store_true")
    lst = sub.add_parser("list", help="datasets with task, counts and label distribution")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _import(session, args) -> int:
    """Validate the whole file, then write it in one transaction."""
    task, problem = task_and_problem(args.task, has_pair=args.text_pair_col is not None)
    existing = repo.get_dataset_by_name(session, args.dataset)
    if existing is not None and existing.task != task:
        raise DataError(f"dataset {args.dataset!r} is a {existing.task} dataset, not {task}", args.file)
    if existing is not None and existing.problem != problem:
        raise DataError(
            f"dataset {args.dataset!r} is a {existing.problem} dataset, not {problem}: import into another dataset",
            args.file,
        )
    known = existing.label_names if existing is not None and existing.label_names else None
    loaded = load_examples(
        args.file, task, args.text_col, args.text_pair_col, args.label_col,
        labels=known, duplicates=args.duplicates, split_col=args.split_col, problem=problem,
        label_sep=args.label_sep,
    )  # fmt: skip
    refuse_list_labels(loaded)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if loaded.list_labels:
        print(
            f"warning: {loaded.file}: {loaded.list_labels}; imported as single labels "
            "(--task multilabel imports them as lists)",
            file=sys.stderr,
        )
    ds = repo.import_examples(
        session,
        args.dataset,
        task,
        loaded.examples,
        loaded.labels,
        split=args.split,
        source_file=loaded.file,
        problem=problem,
    )
    scores = f", scores {loaded.score_range[0]:g} to {loaded.score_range[1]:g}" if loaded.score_range else ""
    print(f"imported {len(loaded.examples)} examples into {ds.name!r} ({loaded.read_as}{scores})")
    return 0


def _export(session, args) -> int:
    """Write a dataset to a file."""
    ds = repo.get_dataset_by_name(session, args.dataset)
    if ds is None:
        print(f"error: no dataset named {args.dataset!r}", file=sys.stderr)
        return 2
    examples = repo.examples_for_export(session, ds.id, labeled_only=args.labeled_only)
    try:
        n = write_examples(examples, args.out, args.format, ds.task)
    except OSError as err:
        print(f"error: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"exported {n} examples to {args.out}")
    return 0


def _list(session, args) -> int:
    """Print datasets."""
    summaries = repo.dataset_summaries(session)
    if args.json:
        print(json.dumps(summaries, ensure_ascii=False))
        return 0
    if not summaries:
        print("no datasets")
    for s in summaries:
        dist = ", ".join(f"{k}: {v}" for k, v in s["distribution"].items()) or "-"
        if s["problem"] == "regression" and s["scores"]["count"]:
            sc = s["scores"]
            dist = f"scores {sc['min']:g} to {sc['max']:g}, mean {sc['mean']:.3g}"
        kind = s["task"] if s["problem"] == "single" else f"{s['task']} {s['problem']}"
        print(f"{s['name']}\t{kind}\t{s['labeled']}/{s['examples']} labeled\t{dist}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    Session = open_db()
    with Session() as session:
        try:
            return {"import": _import, "export": _export, "list": _list}[args.command](session, args)
        except (DataError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
