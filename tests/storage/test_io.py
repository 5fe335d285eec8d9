"""Readers, validation messages, encodings, CoNLL/IOB2, writers and round trips in storage.io."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from storage import repo
from storage.io import (
    DataError,
    check_trainable,
    guess_roles,
    load_examples,
    preview_file,
    read_examples,
    read_table,
    write_examples,
)

# --- reading and guessing ------------------------------------------------------------------------------------


def test_tsv_quotes_are_literal(write_file):
    path = write_file("sst.tsv", 'sentence\tlabel\n"quoted" start\t1\nan " odd quote \t0\n')
    assert read_examples(path, "sequence") == [
        {"text": '"quoted" start', "label": "1"},
        {"text": 'an " odd quote ', "label": "0"},
    ]


def test_csv_quotes_follow_csv_rules(write_file):
    path = write_file("d.csv", 'text,label\n"a, ""b""\nc",x\nplain,y\n')
    assert read_examples(path, "sequence") == [
        {"text": 'a, "b"\nc', "label": "x"},
        {"text": "plain", "label": "y"},
    ]


def test_mrpc_style_bom_and_pair_guess(write_file):
    content = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said .\tShe said .\n"
    path = write_file("mrpc.tsv", b"\xef\xbb\xbf" + content.encode())
    preview = preview_file(path, "pair")
    assert preview.encoding == "utf-8-sig" and preview.latin1_fallback is False
    assert preview.columns[0] == "Quality"  # the BOM is not glued to the first column name
    assert preview.roles == {"text": "#1 String", "text_pair": "#2 String", "label": "Quality"}
    assert read_examples(path, "pair") == [{"text": "He said .", "text_pair": "She said .", "label": "1"}]


def test_single_byte_fallback_is_cp1252_then_latin1(write_file):
    """Windows files are cp1252 (€ and curly quotes at 0x80-0x9F, where Latin-1 has invisible controls)."""
    path = write_file("win.csv", "text,label\n“café” 5 €,pos\n".encode("cp1252"))
    loaded = load_examples(path, "sequence")
    assert loaded.examples[0]["text"] == "“café” 5 €"
    assert loaded.latin1_fallback is True and loaded.encoding == "cp1252"
    assert loaded.warnings[0] == "win.csv: not valid UTF-8; read as cp1252 (Windows Latin-1)"
    assert preview_file(path).latin1_fallback is True and preview_file(path).encoding == "cp1252"
    # 0x81 is no cp1252 character, so only Latin-1 can read this file
    loaded = load_examples(write_file("l1.csv", b"text,label\ncaf\xe9 \x81,pos\n"), "sequence")
    assert loaded.examples[0]["text"] == "café \x81" and loaded.encoding == "latin-1"


def test_utf16_with_bom(write_file):
    path = write_file("u16.csv", "text,label\nnaïve,a\n".encode("utf-16"))
    assert read_examples(path, "sequence") == [{"text": "naïve", "label": "a"}]


def test_na_like_text_stays_text(write_file):
    path = write_file("na.tsv", "premise\thypothesis\tentailment\nNA\tnull\tNone\n")
    assert read_examples(path, "pair") == [{"text": "NA", "text_pair": "null", "label": "None"}]


@pytest.mark.parametrize(
    ("name", "content", "texts", "noted"),
    [
        # one sentence a line, to label: the first sentence is a text, not the column's name
        ("to_label.txt", "sentence number 0 about films\nsentence number 1\n",
         ["sentence number 0 about films", "sentence number 1"], True),
        ("short.csv", "Loved it!\nmeh\n", ["Loved it!", "meh"], True),
        # a name of up to three words stays the header
        ("named.csv", "Review Text\nsentence number 0 about films\n", ["sentence number 0 about films"], False),
        ("plain.txt", "text\nan only line\n", ["an only line"], False),
    ],
)  # fmt: skip
def test_a_one_column_file_without_a_header_keeps_its_first_line(write_file, name, content, texts, noted):
    path = write_file(name, content)
    loaded = load_examples(path, "sequence")
    assert [ex["text"] for ex in loaded.examples] == texts
    assert any("read without a header" in w for w in loaded.warnings) is noted
    assert preview_file(path, "sequence").roles["text"] == (
        "text" if noted else read_table(path).df.columns[0]
    )


def test_a_one_column_workbook_of_sentences_keeps_its_first_row(tmp_path):
    path = tmp_path / "to_label.xlsx"
    pd.DataFrame({"I loved this film.": ["awful", "fine"]}).to_excel(path, index=False)
    loaded = load_examples(path, "sequence")
    assert [ex["text"] for ex in loaded.examples] == ["I loved this film.", "awful", "fine"]
    assert any("read without a header" in w for w in loaded.warnings)
    named = tmp_path / "named.xlsx"
    pd.DataFrame({"review": ["I loved this film.", "awful"]}).to_excel(named, index=False)
    assert [ex["text"] for ex in load_examples(named, "sequence").examples] == ["I loved this film.", "awful"]


def test_a_headerless_files_problems_count_lines_from_one(write_file):
    path = write_file("lines.txt", "a first whole sentence here\n\u200b\nthird\n")
    with pytest.raises(DataError) as err:
        load_examples(path, "sequence")
    assert "lines.txt, row 2, column 'text'" in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("columns", "task", "expected"),
    [
        (["sentence", "label"], "sequence", {"text": "sentence", "label": "label"}),
        (["id", "Review", "Sentiment"], "sequence", {"text": "Review", "label": "Sentiment"}),
        (["sentence1", "sentence2", "label"], "pair", {"text": "sentence1", "text_pair": "sentence2", "label": "label"}),
        (["id", "premise", "hypothesis", "entailment", "similarity"], "pair",
         {"text": "premise", "text_pair": "hypothesis", "label": "entailment"}),
        (["body", "y"], "sequence", {"text": "body", "label": "y"}),
        (["tokens", "ner_tags"], "token", {"tokens": "tokens", "tags": "ner_tags"}),
    ],
)  # fmt: skip
def test_guess_roles(columns, task, expected):
    assert guess_roles(columns, task) == expected


def test_preview_shows_first_rows_without_writing(write_file, session, db_snapshot):
    before = db_snapshot(session)
    path = write_file("p.csv", "text,label\n" + "".join(f"t{i},a\n" for i in range(30)))
    preview = preview_file(path, n=5)
    assert preview.format == "csv" and preview.n_rows == 30 and len(preview.rows) == 5
    assert preview.rows[0] == {"text": "t0", "label": "a"}
    assert db_snapshot(session) == before


def test_jsonl_and_excel(write_file, tmp_path):
    path = write_file("d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": null}\n')
    loaded = load_examples(path, "sequence")
    assert [(e["text"], e["label"], e["source_row"]) for e in loaded.examples] == [
        ("a", "1", 1),
        ("b", None, 3),
    ]
    xlsx = tmp_path / "d.xlsx"
    pd.DataFrame({"text": ["x", "y"], "label": ["p", "q"]}).to_excel(xlsx, index=False)
    assert read_examples(xlsx, "sequence") == [{"text": "x", "label": "p"}, {"text": "y", "label": "q"}]


# --- validation: every rule names file, row and column ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "task", "kwargs", "fragments"),
    [
        ("m.csv", "sentence,label\na,1\n", "sequence", {"label_col": "Quality"},
         ["m.csv", "column 'Quality'", "columns are ['sentence', 'label']"]),
        ("e.csv", "", "sequence", {}, ["e.csv", "empty"]),
        ("h.csv", "text,label\n", "sequence", {}, ["h.csv", "no data rows"]),
        ("t.csv", "text,label\nok,1\n  ,0\n", "sequence", {}, ["t.csv, row 2, column 'text': text is empty"]),
        ("p.tsv", "s1\ts2\tlabel\na\tb\t1\nc\t\t0\n", "pair", {"text_col": "s1", "text_pair_col": "s2"},
         ["p.tsv, row 2, column 's2': text pair is empty"]),
        ("l.csv", "text,label\na,1\nb,\n", "sequence", {}, ["l.csv, row 2, column 'label': label is missing"]),
        ("f.tsv", "text\tlabel\na\t1\nb\t0\textra\n", "sequence", {}, ["f.tsv, row 2", "3 fields"]),
        ("j.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", \n', "sequence", {}, ["j.jsonl, row 2", "invalid JSON"]),
        ("k.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', "token", {}, ["k.jsonl, row 1, column 'tags': 1 tags for 2 tokens"]),
        ("n.jsonl", '{"tokens": ["a"], "tags": ["X-PER"]}\n', "token", {}, ["n.jsonl, row 1, column 'tags'", "not IOB2"]),
        ("c.conll", "EU B-ORG\nrejects\n", "token", {}, ["c.conll, line 2, column 'tag'"]),
        ("c2.conll", "EU B-ORG\nrejects O O\n\nPeter B-PER\nx\ty\tZ-PER\n", "token", {}, ["c2.conll, line 5, column 'tag'", "not IOB2"]),
        ("x.docx", "whatever", "sequence", {}, ["x.docx", "unknown file type"]),
        ("r.csv", "text,text,label\na,b,1\n", "sequence", {}, ["r.csv: the header repeats column names ['text']"]),
        ("o.tsv", "text\tlabel\na\t1\tx\n", "sequence", {}, ["o.tsv, row 1: 3 fields where the header has 2"]),
    ],
)  # fmt: skip
def test_validation_messages(write_file, name, content, task, kwargs, fragments):
    path = write_file(name, content)
    with pytest.raises(DataError) as info:
        read_examples(path, task, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_all_problems_are_collected_and_located(write_file):
    path = write_file("many.csv", "text,label\n,a\nb,\nc,d\n")
    with pytest.raises(DataError) as info:
        read_examples(path, "sequence")
    assert [(p.row, p.column) for p in info.value.problems] == [(1, "text"), (2, "label")]
    assert (info.value.file, info.value.row, info.value.column) == ("many.csv", 1, "text")


def test_label_outside_label_set(write_file):
    path = write_file("s.csv", "text,label\na,pos\nb,meh\n")
    with pytest.raises(DataError, match=r"s.csv, row 2, column 'label': label 'meh' is not in the label set"):
        load_examples(path, "sequence", labels=["neg", "pos"])
    conll = write_file("s.conll", "Ann B-PER\nin O\nRome B-LOC\n")
    with pytest.raises(DataError, match=r"line 3, column 'tag': entity type 'LOC'"):
        load_examples(conll, "token", labels=["PER"])


def test_unlabeled_rows_import_when_labels_not_required(write_file):
    loaded = load_examples(write_file("u.csv", "text,label\na,\nb,pos\n"), "sequence")
    assert [e["label"] for e in loaded.examples] == [None, "pos"] and loaded.labels == ["pos"]
    loaded = load_examples(write_file("u.csv", "text\na\n"), "sequence")
    assert loaded.examples[0]["label"] is None and loaded.columns["label"] is None


def test_duplicates_reported_kept_or_skipped(write_file):
    path = write_file("d.csv", "text,label\na,1\nb,0\na,0\n")
    kept = load_examples(path, "sequence")
    assert len(kept.examples) == 3
    # one line per duplicated text: not a count line and then each row (a single duplicate appeared twice)
    assert kept.warnings == ["d.csv: duplicate 'a' on rows 1, 3 (all kept)"]
    skipped = load_examples(path, "sequence", duplicates="skip")
    assert [e["text"] for e in skipped.examples] == ["a", "b"]
    assert skipped.warnings == ["d.csv: duplicate 'a' on rows 1, 3 (the first kept, the others skipped)"]


def test_duplicates_grouped_per_text_and_capped(write_file):
    """Issue 21 item 15: one line per duplicated text with its rows; the texts and the rows are capped."""
    from storage.validate import MAX_DUPLICATE_GROUPS, MAX_DUPLICATE_ROWS

    n_texts = MAX_DUPLICATE_GROUPS + 3
    repeats = MAX_DUPLICATE_ROWS + 2
    rows = [f"t{i}" for i in range(n_texts)] * 2 + ["many"] * repeats
    loaded = load_examples(write_file("g.csv", "text\n" + "\n".join(rows) + "\n"), "sequence")
    assert loaded.warnings[0] == f"g.csv: duplicate 't0' on rows 1, {n_texts + 1} (all kept)"
    assert len(loaded.warnings) == MAX_DUPLICATE_GROUPS + 1
    extra = 3 + (repeats - 1)  # t10..t12 once each, and "many" repeated
    assert loaded.warnings[-1] == f"g.csv: ... and 4 more duplicated texts ({extra} repeated rows, all kept)"
    listed = load_examples(write_file("m.csv", "text\n" + "many\n" * repeats), "sequence").warnings
    shown = ", ".join(str(r) for r in range(1, MAX_DUPLICATE_ROWS + 1))
    assert listed == [f"m.csv: duplicate 'many' on rows {shown}, ... ({repeats} in all) (all kept)"]


def test_size_and_row_limits(write_file):
    path = write_file("big.csv", "text,label\n" + "x,1\n" * 20)
    with pytest.raises(DataError, match="more than 10 rows"):
        load_examples(path, "sequence", max_rows=10)
    with pytest.raises(DataError, match="big.csv: file is 91 bytes, over the 50 bytes limit"):
        load_examples(path, "sequence", max_bytes=50)
    assert len(load_examples(path, "sequence", max_rows=20).examples) == 20


def test_check_trainable():
    with pytest.raises(DataError, match="at least two classes"):
        check_trainable([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], "sequence")
    check_trainable([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}], "sequence")
    with pytest.raises(DataError):
        check_trainable([{"tokens": ["a"], "tags": ["O"]}], "token")


# --- CoNLL ------------------------------------------------------------------------------------------------------


def test_conll_reader(write_file):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
    loaded = load_examples(write_file("c.txt", text), "token")
    assert [(e["tokens"], e["tags"], e["source_row"]) for e in loaded.examples] == [
        (["EU", "rejects"], ["B-ORG", "O"], 3),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"], 7),
    ]
    assert loaded.warnings == [] and loaded.labels == ["ORG", "PER"]


def test_conll_iob1_converted_and_stray_inside_repaired(write_file):
    text = "Ann I-PER\nLee I-PER\nand O\nBob B-PER\nin O\nRome I-LOC\n\nx I-ORG\ny I-MISC\n"
    loaded = load_examples(write_file("iob1.conll", text), "token")
    assert loaded.examples[0]["tags"] == ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]
    assert loaded.examples[1]["tags"] == ["B-ORG", "B-MISC"]
    assert "4 I- tags began an entity and were changed to B-" in loaded.warnings[0]
    assert "iob1.conll, line 6, column 'tag': I-LOC follows nothing; repaired to B-LOC" in loaded.warnings


def test_jsonl_tokens_stray_inside_repaired_and_reported(write_file):
    path = write_file("t.jsonl", '{"tokens": ["a", "b"], "tags": ["O", "I-PER"]}\n')
    loaded = load_examples(path, "token")
    assert loaded.examples[0]["tags"] == ["O", "B-PER"]
    assert loaded.warnings == ["t.jsonl, row 1, column 'tags': I-PER follows nothing; repaired to B-PER"]


def test_conll_words_only_is_unlabeled(write_file):
    loaded = load_examples(write_file("w.conll", "just\nwords\n"), "token")
    assert loaded.examples[0]["tags"] is None
    with pytest.raises(DataError, match="line 1, column 'tag': sentence has no tags"):
        read_examples(write_file("w.conll", "just\nwords\n"), "token")


# --- writing and round trips -------------------------------------------------------------------------------------

TRICKY = [
    "plain",
    'she said "hi", then left',
    "tab\there",
    "new\nline and\r\ncrlf",
    "Ünïcödé — 日本語 🙂",
    "=SUM(A1:A2)",
    "+1 555",
    "-minus",
    "@mention",
    "'=already quoted",
    "''+two",
    "'plain apostrophe",
    "trailing space ",
    "line\u2028separator",
    "NA",
    "a,b;c|d",
]


def _sequence_examples(kind: str) -> list[dict]:
    """Tricky texts as examples; labels include a formula-looking and a numeric one."""
    labels = ["-1", "=x", "pos", None]
    out = []
    for i, text in enumerate(TRICKY):
        ex = {"text": text, "label": labels[i % 4]}
        if kind == "pair":
            ex["text_pair"] = TRICKY[-1 - i]
        out.append(ex)
    return out


def _token_examples() -> list[dict]:
    """Token examples with unicode, quotes and formula-looking tokens; one unlabeled."""
    return [
        {"tokens": ["=cmd", '"', "São", "Paulo", "-"], "tags": ["O", "O", "B-LOC", "I-LOC", "O"]},
        {"tokens": ["@bob", "'=x", "日本"], "tags": ["B-PER", "O", "B-LOC"]},
        {"tokens": ["no", "tags"], "tags": None},
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("kind", ["sequence", "pair"])
def test_round_trip_text(tmp_path, fmt, kind):
    examples = _sequence_examples(kind)
    path = tmp_path / f"out.{fmt}"
    assert write_examples(examples, path, fmt, kind) == len(examples)
    back = load_examples(path, kind).examples
    assert [{k: v for k, v in e.items() if k != "source_row"} for e in back] == examples


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "conll"])
def test_round_trip_tokens(tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    write_examples(_token_examples(), path, fmt, "token")
    back = load_examples(path, "token").examples
    assert [{k: v for k, v in e.items() if k != "source_row"} for e in back] == _token_examples()


def test_round_trip_through_database(session, tmp_path, write_file):
    """import -> export -> import gives identical examples and labels, for every format."""
    for fmt in ("csv", "jsonl"):
        examples = _sequence_examples("pair")
        first = tmp_path / f"first.{fmt}"
        write_examples(examples, first, fmt, "pair")
        loaded = load_examples(first, "pair")
        ds = repo.import_examples(session, f"rt-{fmt}", "pair", loaded.examples, loaded.labels)
        out = tmp_path / f"second.{fmt}"
        write_examples(repo.examples_for_export(session, ds.id), out, fmt, "pair")
        again = load_examples(out, "pair")
        assert [e | {"source_row": 0} for e in again.examples] == [
            e | {"source_row": 0} for e in loaded.examples
        ]
        assert out.read_bytes() == first.read_bytes()
    loaded = load_examples(write_file("in.conll", "São B-LOC\nPaulo I-LOC\n\nfoo O\n"), "token")
    ds = repo.import_examples(session, "rt-conll", "token", loaded.examples, loaded.labels)
    out = tmp_path / "out.conll"
    write_examples(repo.examples_for_export(session, ds.id), out, "conll", "token")
    assert out.read_text(encoding="utf-8") == "São B-LOC\nPaulo I-LOC\n\nfoo O\n\n"


def test_csv_export_neutralises_formulas(tmp_path):
    examples = [
        {"text": '=HYPERLINK("http://x")', "label": "-1"},
        {"text": "+cmd", "label": "@a"},
        {"text": "-2+3", "label": "ok"},
        {"text": "'=x", "label": "ok"},
        {"text": "safe 'text", "label": "+3.5"},
    ]
    path = tmp_path / "n.csv"
    write_examples(examples, path, "csv", "sequence")
    cells = pd.read_csv(path, dtype=str, keep_default_na=False).values.tolist()
    assert cells == [
        ['\'=HYPERLINK("http://x")', "-1"],  # plain numbers are not formulas and stay as they are
        ["'+cmd", "'@a"],
        ["'-2+3", "ok"],
        ["''=x", "ok"],
        ["safe 'text", "+3.5"],
    ]
    assert read_examples(path, "sequence") == examples


def test_jsonl_export_is_not_neutralised(tmp_path):
    path = tmp_path / "n.jsonl"
    write_examples([{"text": "=1+1", "label": "a"}], path, "jsonl", "sequence")
    assert json.loads(path.read_text(encoding="utf-8")) == {"text": "=1+1", "label": "a"}


def test_conll_export_refuses_tokens_with_whitespace(tmp_path):
    with pytest.raises(DataError, match="row 1, column 'tokens'"):
        write_examples([{"tokens": ["New York"], "tags": ["B-LOC"]}], tmp_path / "x.conll", "conll", "token")
    with pytest.raises(DataError, match="token datasets"):
        write_examples([{"text": "a", "label": "b"}], tmp_path / "x.conll", "conll", "sequence")


def _random_text(rng: random.Random) -> str:
    """Random text mixing delimiters, quotes, newlines, formula starters and non-ASCII."""
    pool = list(",;\t\n\r\"'=+-@ |\\") + ["é", "日", "🙂", "\u2028", "ß", "a", "b", "1", "#", "NA"]
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 12))) + rng.choice("xyzé")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_random_text_survives_round_trip(tmp_path, fmt):
    """A seeded fuzz test (runs without hypothesis); the hypothesis version follows."""
    rng = random.Random(1234)
    examples = [
        {"text": _random_text(rng), "text_pair": _random_text(rng), "label": _random_text(rng)}
        for _ in range(300)
    ]
    path = tmp_path / f"fuzz.{fmt}"
    write_examples(examples, path, fmt, "pair")
    assert read_examples(path, "pair") == examples


def test_hypothesis_round_trip(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    text = st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=0,
        max_size=30,
    ).map(lambda s: s + "x")

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(
        rows=st.lists(st.tuples(text, text), min_size=1, max_size=5), fmt=st.sampled_from(["csv", "jsonl"])
    )
    def check(rows, fmt):
        examples = [{"text": t, "label": lab} for t, lab in rows]
        path = tmp_path / f"h.{fmt}"
        write_examples(examples, path, fmt, "sequence")
        assert read_examples(path, "sequence") == examples

    check()


def test_read_table_keeps_jsonl_row_numbers(write_file):
    table = read_table(write_file("r.jsonl", '\n{"text": "a"}\n'))
    assert table.df["__row__"].tolist() == [2]


def test_labels_that_differ_only_in_case_or_spaces_are_kept_and_reported(write_file):
    """A spreadsheet's "Positive", "positive" and "negative " stay what the file says (and export back the same),
    and the import says which look like one class split in two, before any duplicate-row warning."""
    path = write_file("case.csv", "text,label\na,Positive\nb,positive\nc,negative \nd,negative\nd,negative\n")
    loaded = load_examples(path, "sequence")
    assert loaded.labels == ["Positive", "negative", "negative ", "positive"]
    first = " | ".join(loaded.warnings[:2])
    assert "'Positive' and 'positive' differ only in case or spaces" in first and "2 classes" in first
    assert "'negative' and 'negative ' differ" in first
    assert "duplicate" in " ".join(loaded.warnings[2:]).lower()
    plain = write_file("plain.csv", "text,label\na,pos\nb,neg\n")
    assert not load_examples(plain, "sequence").warnings
