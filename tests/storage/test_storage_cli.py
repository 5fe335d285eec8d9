"""The `python -m storage` command line: import, export, list; bad input leaves the database unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.__main__ import main
from storage.db import make_engine, session_factory


@pytest.fixture
def cli_env(monkeypatch, db_url):
    """Point the CLI at this test's database through DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


def _snapshot(db_url, db_snapshot):
    """Row counts, read through a fresh engine as another process would."""
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        counts = db_snapshot(s)
    engine.dispose()
    return counts


def test_import_list_export(cli_env, write_file, tmp_path, capsys):
    src = write_file("sst.tsv", 'sentence\tlabel\n"odd" quote\t1\nplain\t0\n=cmd\t1\n')
    assert main(["import", str(src), "--dataset", "sst", "--task", "sequence", "--split", "train"]) == 0
    assert (
        "imported 3 examples into 'sst' (read as TSV, delimiter TAB, encoding utf-8)"
        in capsys.readouterr().out
    )
    assert main(["list", "--json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary | {"id": 0} == {
        "id": 0, "name": "sst", "task": "sequence", "problem": "single", "labels": ["0", "1"], "examples": 3,
        "labeled": 3,
        "distribution": {"0": 1, "1": 2},
    }  # fmt: skip
    assert main(["list"]) == 0
    assert "sst\tsequence\t3/3 labeled\t0: 1, 1: 2" in capsys.readouterr().out
    out = tmp_path / "out.csv"
    assert main(["export", "--dataset", "sst", "--format", "csv", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [
        "text,label",
        '"""odd"" quote",1',
        "plain,0",
        "'=cmd,1",
    ]
    assert main(["import", str(out), "--dataset", "again", "--task", "sequence"]) == 0
    jl = tmp_path / "a.jsonl"
    assert (
        main(["export", "--dataset", "again", "--format", "jsonl", "--out", str(jl), "--labeled-only"]) == 0
    )
    assert [json.loads(x)["text"] for x in jl.read_text(encoding="utf-8").splitlines()] == [
        '"odd" quote',
        "plain",
        "=cmd",
    ]


def test_token_import_export_conll(cli_env, write_file, tmp_path):
    src = write_file("ner.conll", "-DOCSTART- O\n\nAnn I-PER\nsmiles O\n")
    assert main(["import", str(src), "--dataset", "ner", "--task", "token"]) == 0
    out = tmp_path / "ner.conll"
    assert main(["export", "--dataset", "ner", "--format", "conll", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "Ann B-PER\nsmiles O\n\n"


GOOD = {"sequence": ("good.csv", "text,label\nx,1\ny,0\n"), "pair": ("good.tsv", "s1\ts2\tlabel\na\tb\t1\n"),
        "token": ("good.conll", "Ann B-PER\nsmiles O\n")}  # fmt: skip


@pytest.mark.parametrize(
    ("task", "name", "content", "args", "message"),
    [
        ("sequence", "bad.csv", "sentence,label\na,1\n", ["--label-col", "Quality"],
         "bad.csv, column 'Quality': column not found; columns are ['sentence', 'label']"),
        ("sequence", "bad.csv", "", [], "bad.csv: file is empty"),
        ("sequence", "bad.csv", "text,label\n", [], "bad.csv: file has a header but no data rows"),
        ("sequence", "bad.csv", "text,label\na,1\n,0\n", [], "bad.csv, row 2, column 'text': text is empty"),
        ("sequence", "bad.csv", "text,label\na,1\nb,2\n", [], "bad.csv, row 2, column 'label': label '2' is not in"),
        ("sequence", "bad.jsonl", '{"text": "a"}\n{"text": \n', [], "bad.jsonl, row 2: invalid JSON"),
        ("sequence", "bad.tsv", "text\tlabel\na\t1\tx\n", [], "bad.tsv, row 1: 3 fields where the header has 2"),
        ("pair", "bad.tsv", "s1\ts2\tlabel\na\t \t1\n", ["--text-col", "s1", "--text-pair-col", "s2"],
         "bad.tsv, row 1, column 's2': text pair is empty"),
        ("token", "bad.conll", "Ann B-PER\nin O\nRome B-LOC\n", [], "bad.conll, line 3, column 'tag': entity type 'LOC'"),
        ("token", "bad.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', [],
         "bad.jsonl, row 1, column 'tags': 1 tags for 2 tokens"),
        ("token", "bad.conll", "Ann B-PER\nsmiles\n", [], "bad.conll, line 2, column 'tag': word without a tag"),
        # these escaped as ImportError, RecursionError, BadZipFile or a bare UnicodeEncodeError (issue 20 item 7)
        ("sequence", "bad.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), [],
         "bad.xls: an Excel 97-2003 (.xls) or password-protected workbook, which this install cannot read"),
        ("sequence", "bad.jsonl", '{"text": ' + "[" * 50_000 + "]" * 50_000 + "}\n", [],
         "bad.jsonl, row 1: invalid JSON: nested too deeply"),
        ("sequence", "bad.xlsx", b"PK\x03\x04" + bytes(64), [], "bad.xlsx: not a valid .xlsx: the zip archive is damaged"),
        ("sequence", "bad.jsonl", '{"text": "a\\ud800", "label": "1"}\n', [],
         "bad.jsonl, row 1, column 'text': \\ud800 is half of a UTF-16 surrogate pair"),
        ("sequence", "bad.csv", "text,label\n\u200b,1\n", [], "bad.csv, row 1, column 'text': text has no visible"),
    ],
)  # fmt: skip
def test_bad_input_exits_nonzero_and_changes_nothing(
    cli_env, write_file, db_snapshot, capsys, task, name, content, args, message
):
    good = write_file(*GOOD[task])
    assert main(["import", str(good), "--dataset", "d", "--task", task, "--text-col", "s1", "--text-pair-col", "s2"]
                if task == "pair" else ["import", str(good), "--dataset", "d", "--task", task]) == 0  # fmt: skip
    before = _snapshot(cli_env, db_snapshot)
    bad = write_file(name, content)
    assert main(["import", str(bad), "--dataset", "d", "--task", task, *args]) == 2
    assert message in capsys.readouterr().err
    assert _snapshot(cli_env, db_snapshot) == before


def test_semicolon_csv_imports_and_says_how_it_was_read(cli_env, write_file, capsys):
    """Issue 21 item 5: "row 1: 6 fields where the header has 1" before the delimiter was sniffed."""
    src = write_file(
        "q.csv", "id;question;a;b;c;label\n1;What is DNA?;x;y;z;DESC\n2;Who won, and when?;x;y;z;HUM\n"
    )
    assert main(["import", str(src), "--dataset", "q", "--task", "sequence", "--text-col", "question"]) == 0
    assert (
        "imported 2 examples into 'q' (read as CSV, delimiter ';', encoding utf-8)" in capsys.readouterr().out
    )


def test_export_to_an_unwritable_place_is_a_clean_error(cli_env, write_file, tmp_path, capsys):
    assert (
        main(
            ["import", str(write_file("g.csv", "text,label\nx,1\n")), "--dataset", "g", "--task", "sequence"]
        )
        == 0
    )
    out = tmp_path / "no" / "such" / "dir.csv"
    assert main(["export", "--dataset", "g", "--format", "csv", "--out", str(out)]) == 2
    assert f"error: cannot write {out}: No such file or directory" in capsys.readouterr().err


def test_task_mismatch_and_unknown_dataset(cli_env, write_file, capsys, tmp_path):
    good = write_file("good.csv", "text,label\nx,1\ny,0\n")
    assert main(["import", str(good), "--dataset", "d", "--task", "sequence"]) == 0
    assert main(["import", str(good), "--dataset", "d", "--task", "pair"]) == 2
    assert "is a sequence dataset" in capsys.readouterr().err
    assert main(["export", "--dataset", "nope", "--format", "csv", "--out", str(tmp_path / "x.csv")]) == 2


def test_python_dash_m_entry_point(cli_env, write_file):
    """One real subprocess: the module runs, and a bad file gives exit status 2 with the row in stderr."""
    bad = write_file("bad.tsv", "text\tlabel\nok\t1\nmissing\t\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [sys.executable, "-m", "storage", "import", str(bad), "--dataset", "x", "--task", "sequence"]
    # a missing label is allowed on import (unlabeled), so force a real error with a wrong column
    proc = subprocess.run([*args, "--label-col", "nope"], capture_output=True, text=True, env=env, cwd=root)
    assert proc.returncode == 2
    assert "bad.tsv, column 'nope': column not found; columns are ['text', 'label']" in proc.stderr
