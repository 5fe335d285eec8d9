"""How fast does a file become rows in the database? Target: 100,000 rows in under 10 s.

Times read + validate (`storage.io.load_examples`) and the one-transaction insert
(`storage.repo.import_examples`) into a fresh temporary SQLite file, for a synthetic 100k-row CSV and,
when present, SST-2 train (/work/shared/data/sst2/train.tsv, 67,349 rows). The reference in the same run
is a bare `pandas.read_csv` of the same file, so the ratio says what validation and storage cost on top.

Wide files (issue 20): reading a 20,000-column CSV must cost about 8x a 2,500-column one (linear), not
100x (the old per-column loop, 1.6 s -> 158 s); and at the default column limit the wide file is refused
at once. `--wide-only` runs just that part (a few seconds).

    .venv/bin/python bench/import_speed.py [--rows 100000] [--sst2 PATH] [--wide-only]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from storage import repo  # noqa: E402
from storage.db import init_db, make_engine, session_factory  # noqa: E402
from storage.io import load_examples, write_examples  # noqa: E402

TARGET_S = 10.0
SST2 = Path("/work/shared/data/sst2/train.tsv")
WORDS = [
    "the",
    "a",
    "film",
    "movie",
    "plot",
    "actor",
    "great",
    "awful",
    "slow",
    "fun",
    "long,",
    "short",
    '"quoted"',
    "é",
    "日本",
    "=sum",
    "-minus",
]


def synthetic_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write a CSV of `rows` random sentences (5-30 words, with quotes, commas, unicode) and 3 labels."""
    rng = random.Random(seed)
    examples = [
        {
            "text": " ".join(rng.choices(WORDS, k=rng.randint(5, 30))),
            "label": rng.choice(["neg", "neu", "pos"]),
        }
        for _ in range(rows)
    ]
    write_examples(examples, path, "csv", "sequence")


def time_import(path: Path, task: str, workdir: Path) -> dict:
    """Reference read, then read+validate and insert into a fresh database; seconds for each phase."""
    t0 = time.perf_counter()
    sep = "\t" if path.suffix == ".tsv" else ","
    pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=3 if sep == "\t" else 0)
    reference_s = time.perf_counter() - t0

    engine = make_engine(f"sqlite:///{workdir / f'{path.stem}.db'}")
    init_db(engine)
    Session = session_factory(engine)
    t0 = time.perf_counter()
    loaded = load_examples(path, task)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Session() as session:
        ds = repo.import_examples(
            session, path.stem, task, loaded.examples, loaded.labels, source_file=path.name
        )
        stored = repo.count_examples(session, ds.id)
    insert_s = time.perf_counter() - t0
    engine.dispose()
    total = read_s + insert_s
    return {
        "file": path.name,
        "rows": stored,
        "read_validate_s": round(read_s, 3),
        "insert_s": round(insert_s, 3),
        "total_s": round(total, 3),
        "rows_per_s": round(stored / total),
        "pandas_read_reference_s": round(reference_s, 3),
        "ratio_to_reference": round(total / reference_s, 1),
    }


def time_wide(workdir: Path, narrow: int = 2_500, wide: int = 20_000) -> dict:
    """Seconds to read a `narrow` and a `wide` CSV (header + 3 rows, every cell formula-quoted by an export)."""
    from storage.io import DataError
    from storage.readers import read_table

    seconds = {}
    for n in (narrow, wide):
        path = workdir / f"wide{n}.csv"
        header = ",".join(f"c{i}" for i in range(n))
        rows = "\n".join(",".join("'=v" for _ in range(n)) for _ in range(3))
        path.write_text(f"{header}\n{rows}\n")
        t0 = time.perf_counter()
        read_table(path, max_columns=n)
        seconds[n] = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        read_table(workdir / f"wide{wide}.csv")
        refused = False
    except DataError:
        refused = True
    refuse_s = time.perf_counter() - t0
    return {
        f"read_{narrow}_columns_s": round(seconds[narrow], 3),
        f"read_{wide}_columns_s": round(seconds[wide], 3),
        "ratio": round(seconds[wide] / seconds[narrow], 1),  # linear: wide / narrow = 8
        "linear_ratio": wide / narrow,
        "refused_at_default_limit": refused,
        "refuse_s": round(refuse_s, 3),
    }


def main() -> int:
    """Run both measurements and print them; exit 1 if the synthetic import misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sst2", type=Path, default=SST2)
    parser.add_argument("--wide-only", action="store_true", help="only the wide-file check")
    args = parser.parse_args()
    results: dict = {"cpus": os.cpu_count(), "target_s": TARGET_S}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results["wide_csv"] = time_wide(workdir)
        print(f"wide CSV: {results['wide_csv']}")
        if args.wide_only:
            print(json.dumps(results))
            return 0 if results["wide_csv"]["ratio"] < 2 * results["wide_csv"]["linear_ratio"] else 1
        csv_path = workdir / "synthetic.csv"
        synthetic_csv(csv_path, args.rows)
        results["synthetic"] = time_import(csv_path, "sequence", workdir)
        print(f"synthetic {args.rows:,} rows: {results['synthetic']}")
        if args.sst2.exists():
            results["sst2_train"] = time_import(args.sst2, "sequence", workdir)
            print(f"SST-2 train: {results['sst2_train']}")
    results["within_target"] = results["synthetic"]["total_s"] < TARGET_S
    print(json.dumps(results))
    return 0 if results["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
