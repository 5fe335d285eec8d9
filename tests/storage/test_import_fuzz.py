"""Fuzz both import paths with generated files: a clean error or an exact import, the database unchanged on error.

The two paths are the Data tab's handlers (`ui.data.preview_upload` then `ui.data.import_upload`, plain
functions with a Ctx) and the command line (`python -m storage import`, its `main(argv)` in process). Each
generated file goes through both. Files are valid CSV (any of four delimiters), TSV, JSONL, XLSX or CoNLL
with random unicode, BOMs, encodings and line ends -- these must import *exactly* -- or such a file
corrupted (cut short, bytes flipped or inserted, NULs, a wrong extension, a foreign BOM, deep nesting, noise),
which must either be refused with a message naming the file or import exactly what the reader returns.

The default run tries `FILES` files, each through both paths (about 40 s of CPU on a loaded 2-core box);
``-m slow`` runs `SLOW_FILES` more with another seed. Both use a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from storage import repo
from storage.conll import to_iob2, visible
from storage.io import load_examples
from storage.writers import _neutralise

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

FILES = 1_000  # the "at least 1,000 generated files through both import paths"
SLOW_FILES = 5_000  # five times the default, another seed
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-32", "cp1252"]
LINE_ENDS = ["\n", "\r\n", "\r"]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TRIED: Counter = Counter()  # (format, "valid"/"corrupt", outcome) -> files; printed for the README's table

# Random unicode without surrogates (files cannot hold them); a visible letter closes every text so that a
# valid file is valid by construction. Excel cannot hold control characters or a bare CR (XML), and writes
# a cell starting with "=" as a formula, so its texts come from a tamer alphabet.
ANY = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")  # a NUL is refused: its own test
TAME = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="=")
NO_SPACE = st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"))


def _text(alphabet=ANY, max_size=12):
    return st.tuples(st.text(alphabet, max_size=max_size), st.sampled_from("aé日🙂Z1")).map("".join)


def _label(alphabet=ANY):
    common = st.sampled_from(["pos", "neg", "0", "1", "-1", "=x", "\tx", "é", "a b", " pad "])
    return st.one_of(st.none(), common, _text(alphabet, 4))


# built once: a strategy made anew at every draw costs hypothesis more than the draw itself
TEXT = {"any": _text(ANY), "tame": _text(TAME)}
LABEL = {"any": _label(ANY), "tame": _label(TAME)}
TOKEN = _text(NO_SPACE, 6).filter(lambda t: not any(c.isspace() for c in t) and t != "-DOCSTART-")
TOKENS = st.lists(TOKEN, min_size=1, max_size=6)


@st.composite
def text_rows(draw, task: str, alphabet: str = "any") -> list[dict]:
    n = draw(st.integers(1, 6))
    rows = []
    for _ in range(n):
        row = {"text": draw(TEXT[alphabet])}
        if task == "pair":
            row["text_pair"] = draw(TEXT[alphabet])
        row["label"] = draw(LABEL[alphabet])
        rows.append(row)
    return rows


@st.composite
def token_rows(draw) -> list[dict]:
    rows = []
    for _ in range(draw(st.integers(1, 5))):
        tokens = draw(TOKENS)
        tags = draw(
            st.one_of(st.none(), st.lists(st.sampled_from(TAGS), min_size=len(tokens), max_size=len(tokens)))
        )
        rows.append({"tokens": tokens, "tags": to_iob2(tags)[0] if tags is not None else None})
    return rows


def _encode(draw, text: str) -> bytes:
    """Text in a random encoding; cp1252 only where it can hold the text and is not also valid UTF-8."""
    codec = draw(st.sampled_from(ENCODINGS))
    if codec == "cp1252":
        try:
            data = text.encode("cp1252")
            data.decode("utf-8")
            codec = "utf-8"  # ASCII (or UTF-8 look-alike) bytes: reading them as UTF-8 is right
        except UnicodeEncodeError:
            codec = "utf-8"
        except UnicodeDecodeError:
            return data
    return text.encode(codec)


def _delimited(rows: list[dict], names: list[str], delimiter: str, end: str, neutralise: bool) -> str:
    buf = io.StringIO()
    # a bare CR or LF inside a cell is only quoted by the writer when it is in the line terminator; QUOTE_ALL
    # quotes every cell whatever the terminator
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=end, quoting=csv.QUOTE_ALL)
    writer.writerow(names)
    for row in rows:
        cells = [row[n] if row[n] is not None else "" for n in names]
        writer.writerow([_neutralise(c) if neutralise else c for c in cells])
    return buf.getvalue()


def _xlsx(grid: list[list]) -> bytes:
    """A one-sheet workbook (openpyxl's write-only mode: a third of what pandas' to_excel costs), made
    byte-for-byte reproducible: openpyxl stamps the time into docProps and the zip, and hypothesis needs
    the same draws to give the same file."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in grid:
        sheet.append(row)
    raw = io.BytesIO()
    book.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2000-01-01T00:00:00Z", body)
            fixed = zipfile.ZipInfo(info.filename, date_time=(2000, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, body)
    return out.getvalue()


@st.composite
def valid_files(draw) -> tuple[str, bytes, str, list[dict]]:
    """(extension, bytes, task, the examples the file holds)."""
    fmt = draw(st.sampled_from(["csv", "csv", "tsv", "jsonl", "jsonl", "xlsx", "conll"]))
    end = draw(st.sampled_from(LINE_ENDS))
    if fmt == "conll":
        rows = draw(token_rows())
        lines = []
        for r in rows:
            for i, tok in enumerate(r["tokens"]):
                lines.append(
                    tok if r["tags"] is None else f"{tok} {draw(st.sampled_from(['', 'NN ']))}{r['tags'][i]}"
                )
            lines.append("")
        return "conll", _encode(draw, end.join(lines)), "token", rows
    task = draw(
        st.sampled_from(["sequence", "pair", "token"] if fmt in ("jsonl", "csv") else ["sequence", "pair"])
    )
    if task == "token":
        rows = draw(token_rows())
        if fmt == "jsonl":
            text = end.join(json.dumps(r, ensure_ascii=draw(st.booleans())) for r in rows) + end
        else:
            cells = [
                {k: json.dumps(v, ensure_ascii=False) if v is not None else None for k, v in r.items()}
                for r in rows
            ]
            text = _delimited(cells, ["tokens", "tags"], draw(st.sampled_from(",;\t|")), end, True)
        return fmt, _encode(draw, text), task, rows
    names = ["text", "text_pair", "label"] if task == "pair" else ["text", "label"]
    if fmt == "xlsx":
        rows = [
            {k: v.replace("=", "~") if v else v for k, v in r.items()} for r in draw(text_rows(task, "tame"))
        ]
        return fmt, _xlsx([names, *([r[n] for n in names] for r in rows)]), task, rows
    if fmt == "tsv":  # TSV quotes are literal, so its cells hold no tab or line break
        rows = [r for r in draw(text_rows(task)) if all("\t" not in v and "\n" not in v and "\r" not in v
                                                        for v in r.values() if v)]  # fmt: skip
        hypothesis.assume(rows)
        text = end.join(["\t".join(names), *("\t".join(r[n] or "" for n in names) for r in rows)]) + end
        return fmt, _encode(draw, text), task, rows
    rows = draw(text_rows(task))
    if fmt == "jsonl":
        omit = draw(st.booleans())  # an unlabeled row either says null or leaves the key out
        lines = [json.dumps({k: v for k, v in r.items() if not (omit and v is None)}, ensure_ascii=draw(st.booleans()))
                 for r in rows]  # fmt: skip
        return fmt, _encode(draw, end.join(lines) + end), task, rows
    text = _delimited(rows, names, draw(st.sampled_from(",;\t|")), end, True)
    return fmt, _encode(draw, text), task, rows


@st.composite
def corrupt(draw, data: bytes) -> bytes:
    """One or two damages: cut, flip, insert, NULs, a foreign BOM, deep nesting, CRs, or plain noise."""
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["cut", "flip", "insert", "nul", "bom", "nest", "cr", "noise"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "cut":
            data = data[:at]
        elif kind == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif kind == "nul":
            data = data[:at] + b"\x00" * draw(st.integers(1, 4)) + data[at:]
        elif kind == "bom":
            data = (
                draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00"])) + data
            )
        elif kind == "nest":
            depth = draw(st.sampled_from([3, 2_000, 100_000]))
            data = data[:at] + (b'{"text": ' + b"[" * depth + b"]" * depth + b"}\n") + data[at:]
        elif kind == "cr":
            data = data.replace(b"\n", b"\r")
        else:
            data = draw(st.binary(max_size=300))
    return data


@st.composite
def cases(draw) -> dict:
    ext, data, task, rows = draw(valid_files())
    case = {"format": ext, "ext": ext, "data": data, "task": task, "rows": rows, "kind": "valid"}
    if draw(st.integers(0, 2)) == 0:  # a third of the files are damaged
        case.update(data=draw(corrupt(data)), rows=None, kind="corrupt")
        if draw(st.integers(0, 3)) == 0:
            case["ext"] = draw(
                st.sampled_from(["csv", "tsv", "jsonl", "json", "xlsx", "xls", "conll", "txt"])
            )
    return case


def _stored(sessions, name: str) -> list[dict] | None:
    with sessions() as s:
        ds = repo.get_dataset_by_name(s, name)
        return None if ds is None else repo.examples_for_export(s, ds.id)


def _expected(case: dict, path: Path) -> list[dict]:
    """Exactly the generated rows for a valid file; for a damaged one, what the reader made of it."""
    if case["rows"] is not None:
        return case["rows"]
    return [
        {k: v for k, v in e.items() if k != "source_row"} for e in load_examples(path, case["task"]).examples
    ]


def _check_stored(stored: list[dict], expected: list[dict], task: str) -> None:
    keys = (
        ["tokens", "tags"]
        if task == "token"
        else ["text", "text_pair", "label"]
        if task == "pair"
        else ["text", "label"]
    )
    got, want = [[e[k] for k in keys] for e in stored], [[e.get(k) for k in keys] for e in expected]
    assert got == want, f"stored rows differ from the file: {got} != {want}"
    for e in stored:  # whatever got in is usable: something visible to label
        assert all(visible(t) for t in e.get("tokens") or [e.get("text")])


def _run(ctx, sessions, snapshot, state: dict, tmp: Path, names, case: dict, capsys) -> None:
    from storage.__main__ import main
    from ui import data

    path = tmp / f"f{next(names)}.{case['ext']}"
    path.write_bytes(case["data"])
    task = case["task"]
    outcomes = []
    # the Data tab: preview, then import with the guessed mapping (whatever the preview said)
    before = state["snapshot"]  # what the previous file left (counting every table costs; do it once a step)
    preview = data.preview_upload(str(path), task)
    if not preview["ok"]:
        assert preview["message"].startswith("**Cannot read this file**") and path.name in preview["message"]
    roles = preview["roles"]
    name = f"ui-{path.stem}"
    result = data.import_upload(
        ctx, str(path), task, name, roles.get("text"), roles.get("text_pair"), roles.get("label")
    )
    if result["ok"]:
        _check_stored(_stored(sessions, name), _expected(case, path), task)
    else:
        assert result["message"].startswith("**Nothing was imported.**") and path.name in result["message"]
    after = snapshot()
    assert (after == before) != result["ok"]  # an import adds rows; a refusal leaves every table as it was
    outcomes.append("imported" if result["ok"] else "refused")
    # the command line
    before = after
    name = f"cli-{path.stem}"
    capsys.readouterr()
    status = main(["import", str(path), "--dataset", name, "--task", task])
    err = capsys.readouterr().err
    if status == 0:
        _check_stored(_stored(sessions, name), _expected(case, path), task)
    else:
        assert status == 2 and f"error: {path.name}" in err
    after = snapshot()
    assert (after == before) != (status == 0)
    state["snapshot"] = after
    outcomes.append("imported" if status == 0 else "refused")
    # a valid file imports, on both paths; a damaged one gets the same verdict from both
    if case["kind"] == "valid":
        assert outcomes == ["imported", "imported"], (result["message"], err)
    assert outcomes[0] == outcomes[1], (result["message"], err)
    TRIED[(case["format"], case["kind"], outcomes[0])] += 1
    path.unlink()


def _fuzz(n: int, seed: int, ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys, shrink=True) -> None:
    import storage.__main__ as cli

    monkeypatch.setattr(cli, "open_db", lambda: sessions)  # the same database, without re-running migrations
    names = itertools.count()

    def snapshot():
        with sessions() as s:
            return db_snapshot(s)

    @hypothesis.settings(
        max_examples=n,
        deadline=None,
        database=None,  # with the fixed seed below, every run draws the same files
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[p for p in hypothesis.Phase if shrink or p != hypothesis.Phase.shrink],
    )
    @hypothesis.seed(seed)
    @hypothesis.given(case=cases())
    def check(case):
        try:
            _run(ctx, sessions, snapshot, state, tmp_path, names, case, capsys)
        except BaseException:
            state["snapshot"] = snapshot()  # so that hypothesis' replays of a failure start from the truth
            raise

    state = {"snapshot": snapshot()}
    TRIED.clear()
    check()
    summary = sorted(TRIED.items())
    print("\nfiles tried (format, kind, outcome -> files):", *(f"{k}: {v}" for k, v in summary), sep="\n  ")
    assert sum(TRIED.values()) >= n * 0.9  # hypothesis may stop short of max_examples only by a little


@pytest.fixture
def ctx(sessions, data_dir):
    from ui.common import Ctx, Settings

    return Ctx(Settings(data_dir=data_dir, start_worker=False), sessions)


def test_fuzz_both_import_paths(ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys):
    _fuzz(FILES, 20, ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys)


@pytest.mark.slow
def test_fuzz_both_import_paths_more(ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys):
    _fuzz(SLOW_FILES, 21, ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys)


def test_the_fuzz_oracle_catches_a_lying_reader(ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys):
    """The fuzz test's own check: a reader that drops a character must fail it, or the fuzz proves nothing."""
    import storage.io

    real = storage.io._rows_from_table

    def lossy(*args):
        out = real(*args)
        return [{**e, "text": e["text"][:-1] or "?"} if "text" in e else e for e in out]

    monkeypatch.setattr(storage.io, "_rows_from_table", lossy)
    with pytest.raises(AssertionError, match="stored rows differ from the file"):
        _fuzz(50, 20, ctx, sessions, db_snapshot, tmp_path, monkeypatch, capsys, shrink=False)
