"""What the CLI tests share: a CSV writer and the CLI's main() run in this process."""

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
