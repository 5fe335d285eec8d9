"""Guess how a text file was written: its encoding (BOMs, UTF-8, then cp1252/Latin-1) and its CSV delimiter.

Both guesses are reported back (`Table.encoding`, `Table.delimiter`) so the user sees what was used and can
tell a wrong guess at a glance in the preview.
"""

from __future__ import annotations

import codecs
import csv
import io

from storage.conll import DataError, Problem

# Longest first: the UTF-32 LE mark FF FE 00 00 begins with the UTF-16 LE mark FF FE.
BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
]
DELIMITERS = (",", ";", "\t", "|")  # the order breaks ties: a comma is what ".csv" promises
SNIFF_CHARS = (
    64 * 1024
)  # enough for dozens of records; sniffing the whole of a 500 MB file would double its cost
SNIFF_RECORDS = 50
FALLBACK_NAMES = {"cp1252": "cp1252 (Windows Latin-1)", "latin-1": "Latin-1"}  # for the user's warning
NUL_SAMPLE = 4096  # bytes looked at to spot UTF-16/32 without a BOM


def _strict(data: bytes, codec: str, name: str, file: str) -> str:
    """Decode bytes whose encoding is certain (a BOM said so); a bad byte is an error naming its line."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as err:
        line = data[: err.start].decode(codec, errors="replace").count("\n") + 1
        msg = f"not valid {name} at byte {err.start:,} ({err.reason}), although the file says it is {name}"
        raise DataError(Problem(file, msg, line, None, line_based=True)) from err


def _bomless_wide(data: bytes) -> str | None:
    """UTF-16/32 without a BOM, spotted by its NUL bytes: mostly-ASCII text puts them at fixed offsets."""
    sample = data[:NUL_SAMPLE]
    if len(sample) < 8 or sample.count(0) < len(sample) // 4:
        return None
    zero = [sample[i::4].count(0) / max(1, len(sample[i::4])) for i in range(4)]
    mostly, rarely = 0.5, 0.1  # ASCII gives 1.0 and 0.0; CJK or emoji have no NUL byte, so leave room
    if zero[0] < rarely and min(zero[1:]) > mostly:
        return "utf-32-le"
    if zero[3] < rarely and min(zero[:3]) > mostly:
        return "utf-32-be"
    if max(zero[0], zero[2]) < rarely and min(zero[1], zero[3]) > mostly:
        return "utf-16-le"
    if max(zero[1], zero[3]) < rarely and min(zero[0], zero[2]) > mostly:
        return "utf-16-be"
    return None


def decode(data: bytes, file: str) -> tuple[str, str, bool]:
    """Bytes -> text. Returns the text, the codec used and whether it was a single-byte fallback.

    Order: a BOM (UTF-32, UTF-8, UTF-16: the file says what it is), UTF-16/32 without a BOM (NUL bytes at
    fixed offsets), UTF-8, then cp1252 (what "Latin-1" files from Windows really are), then Latin-1 itself,
    which decodes any byte. The fallback is reported so the user can check accents in the preview.

    >>> decode("naïve".encode("utf-32"), "f.csv")
    ('naïve', 'utf-32', False)
    """
    for bom, codec, name in BOMS:
        if data.startswith(bom):
            return _strict(data, codec, name, file), codec, False  # these codecs drop the BOM
    wide = _bomless_wide(data)
    if wide is not None:
        try:
            return data.decode(wide), wide, False
        except UnicodeDecodeError:
            pass  # NULs that were not UTF-16/32 after all: go on as usual
    try:
        return data.decode("utf-8"), "utf-8", False
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252", True
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D)
        return data.decode("latin-1"), "latin-1", True


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV among ``, ; TAB |``: the one whose records agree best with a header of 2+ fields.

    A header rarely holds a delimiter character, so a wrong candidate usually gives a one-field header and is
    ruled out; among those left, the share of sampled records with the header's field count decides, and
    ties go to the earlier candidate (a comma first). With no candidate giving two fields, a comma.

    >>> sniff_delimiter("text;label\\nhello, world;greeting\\n")
    ';'
    """
    sample = text[:SNIFF_CHARS]
    cut = len(text) > SNIFF_CHARS
    best, best_score = ",", -1.0
    for delimiter in DELIMITERS:
        try:
            records = []
            for record in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
                if record:
                    records.append(len(record))
                if len(records) > SNIFF_RECORDS:
                    break
        except csv.Error:  # a sample that this dialect cannot even split is not this dialect
            continue
        if cut and len(records) > 1 and len(records) <= SNIFF_RECORDS:
            records.pop()  # the sample may end inside the last record
        if not records or records[0] < 2:
            continue
        rest = records[1:]
        score = sum(n == records[0] for n in rest) / len(rest) if rest else 1.0
        if score > best_score:
            best, best_score = delimiter, score
    return best
