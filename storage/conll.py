"""CoNLL files and IOB2 tags for token labeling: parse, repair, write.

Lines end with LF, CRLF or a lone CR (old Mac files), and nothing else: not `str.splitlines`, which also breaks
on U+2028 and friends. Tokens are split on whitespace as `str.split()` defines it, so a token can never contain
a whitespace character.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

TAG_RE = re.compile(r"^(?:O|[BI]-\S+)$")
LINE_END_RE = re.compile(r"\r\n|\r|\n")
MAX_REPORTED = 20  # problems/warnings listed one by one; the rest are counted


# Control, format (zero-width space, joiners, BOM) and separator characters; unassigned code points are not
# here, so an emoji newer than this Python's Unicode tables still counts as visible
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp"}
BLANK_LETTERS = set(
    "\u115f\u1160\u3164\uffa0\u2800"
)  # Hangul fillers and the braille blank: letters that draw nothing


def _shows(ch: str) -> bool:
    return (
        not ch.isspace() and ch not in BLANK_LETTERS and unicodedata.category(ch) not in INVISIBLE_CATEGORIES
    )


NUL = "\x00"
# SQLite would keep it, PostgreSQL refuses it in text columns: refused on import, so a file imports the same on both
NUL_NOTE = "holds a NUL character (U+0000), which a database cannot store in text: remove it"


def visible(text: str) -> bool:
    """Whether text shows anything: not only whitespace, NULs, zero-width or other format/control characters.

    >>> visible("\u200b\x00 "), visible("a\u200b")
    (False, True)
    """
    if text.isprintable():  # the fast path for most cells: no control, format or separator but " "
        shown = text.strip(" ")
        return bool(shown) and (shown[0] not in BLANK_LETTERS or any(_shows(ch) for ch in shown))
    return any(_shows(ch) for ch in text)


def invisible_note(text: str) -> str:
    """Why `visible` said no, for a message: "is empty", or which invisible characters it holds."""
    if not text.strip():
        return "is empty"
    codes = list(dict.fromkeys(f"U+{ord(ch):04X}" for ch in text if not ch.isspace()))
    more = f" and {len(codes) - 3} more" if len(codes) > 3 else ""
    spaces = " and whitespace" if any(ch.isspace() for ch in text) else ""
    return f"has no visible characters (only {', '.join(codes[:3])}{more}{spaces})"


@dataclass
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    message: str
    row: int | None = None  # 1-based data row (see storage.io); for CoNLL, the 1-based line number
    column: str | None = None
    line_based: bool = False

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"{'line' if self.line_based else 'row'} {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class DataError(ValueError):
    """Input that cannot be imported; the message names the file, the row and the column of each problem."""

    def __init__(self, problems: list[Problem] | Problem | str, file: str = "") -> None:
        if isinstance(problems, str):
            problems = [Problem(file, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        first = problems[0]
        self.file, self.row, self.column = first.file, first.row, first.column
        lines = [str(p) for p in problems[:MAX_REPORTED]]
        if len(problems) > MAX_REPORTED:
            lines.append(f"... and {len(problems) - MAX_REPORTED} more problems")
        super().__init__("\n".join(lines))


@dataclass
class Sentence:
    """A parsed CoNLL sentence; tags is None when the file gave words only (unlabeled)."""

    tokens: list[str]
    tags: list[str] | None
    line: int  # 1-based line of the first token
    tag_lines: list[int] = field(default_factory=list)


def to_iob2(tags: list[str]) -> tuple[list[str], list[int]]:
    """Rewrite I- tags that start an entity as B- (IOB1 -> IOB2, or a stray I-); return tags and changed indices."""
    out: list[str] = []
    changed: list[int] = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            prev = out[i - 1] if i else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                tag = "B-" + tag[2:]
                changed.append(i)
        out.append(tag)
    return out, changed


def entity_types(tags: list[str]) -> list[str]:
    """Entity types named by B-/I- tags, in order of first appearance."""
    seen: dict[str, None] = {}
    for tag in tags:
        if tag != "O":
            seen.setdefault(tag[2:], None)
    return list(seen)


def check_tags(
    tokens: list[str],
    tags: list[str],
    where: dict,
    allowed: set[str] | None,
    problems: list[Problem],
    warnings: list[str],
) -> list[str]:
    """Validate one sentence's tags (count, format, known types) and repair to IOB2; return the repaired tags.

    `where` holds Problem fields (file, row, column, line_based); with per-token line numbers in
    ``where["lines"]`` (CoNLL) each problem points at the token's own line.
    """
    lines = where.get("lines")
    base = {k: v for k, v in where.items() if k != "lines"}
    if len(tags) != len(tokens):
        problems.append(Problem(**base, message=f"{len(tags)} tags for {len(tokens)} tokens"))
        return tags
    bad = False
    for i, tag in enumerate(tags):
        at = {**base, "row": lines[i]} if lines else base
        if not TAG_RE.match(tag):
            problems.append(Problem(**at, message=f"tag {tag!r} is not IOB2 (O, B-TYPE or I-TYPE)"))
            bad = True
        elif tag != "O" and not visible(tag[2:]):
            problems.append(Problem(**at, message=f"tag {tag!r}: the entity type {invisible_note(tag[2:])}"))
            bad = True
        elif allowed is not None and tag != "O" and tag[2:] not in allowed:
            problems.append(
                Problem(**at, message=f"entity type {tag[2:]!r} is not in the label set {sorted(allowed)}")
            )
            bad = True
    if bad:
        return tags
    fixed, changed = to_iob2(tags)
    for i in changed:
        at = {**base, "row": lines[i]} if lines else base
        warnings.append(str(Problem(**at, message=f"{tags[i]} follows nothing; repaired to {fixed[i]}")))
    return fixed


def parse_conll(text: str, file: str) -> tuple[list[Sentence], list[Problem]]:
    """Split CoNLL text into sentences: word first, tag last, blank line between sentences, -DOCSTART- skipped."""
    sentences: list[Sentence] = []
    problems: list[Problem] = []
    tokens: list[str] = []
    tags: list[str | None] = []
    lines: list[int] = []

    def close() -> None:
        if not tokens:
            return
        labeled = [t is not None for t in tags]
        if all(labeled) or not any(labeled):
            sentence_tags = list(tags) if all(labeled) else None
            sentences.append(Sentence(list(tokens), sentence_tags, lines[0], list(lines)))  # type: ignore[arg-type]
        else:
            missing = lines[labeled.index(False)]
            problems.append(Problem(file, "word without a tag in a tagged sentence", missing, "tag", True))
        tokens.clear(), tags.clear(), lines.clear()

    for number, raw in enumerate(LINE_END_RE.split(text), start=1):
        parts = raw.split()
        if not parts or parts[0] == "-DOCSTART-":
            close()
        elif NUL in raw:
            problems.append(Problem(file, f"the line {NUL_NOTE}", number, "word", True))
        elif not visible(parts[0]):
            problems.append(Problem(file, f"the word {invisible_note(parts[0])}", number, "word", True))
        else:
            tokens.append(parts[0])
            tags.append(parts[-1] if len(parts) > 1 else None)
            lines.append(number)
    close()
    return sentences, problems


def write_conll(examples: list[dict], file: str) -> str:
    """CoNLL text for token examples: "word TAG" lines (word only when unlabeled), a blank line between."""
    out: list[str] = []
    problems: list[Problem] = []
    for n, ex in enumerate(examples, start=1):
        tokens, tags = ex["tokens"], ex.get("tags")
        for tok in tokens:
            if not tok or any(ch.isspace() for ch in tok) or tok == "-DOCSTART-":
                problems.append(Problem(file, f"token {tok!r} cannot be written to CoNLL", n, "tokens"))
        if tags is None:
            out.extend(tokens)
        else:
            out.extend(f"{tok} {tag}" for tok, tag in zip(tokens, tags, strict=True))
        out.append("")
    if problems:
        raise DataError(problems)
    return "\n".join(out)
