"""What the CLI tests share: a CSV writer, a toy training command and the CLI's main() run in this process."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI's main() in this process: no interpreter start-up, same exit codes and output."""
    from finetuner.__main__ import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def toy_train_args(folder: Path, model_dir: str, n: int = 16) -> list[str]:
    """`train` on a toy sequence CSV written into folder, used as training and eval data, with a local model."""
    from engine_toys import make_examples

    data = str(write_csv(folder / "train.csv", make_examples("sequence", n)))
    return ["train", "--task", "sequence", "--train", data, "--eval", data, "--model", model_dir]
