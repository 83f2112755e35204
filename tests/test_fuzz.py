"""Property-based tests (hypothesis) of the reading path.

1. Differential: `front_matter.parse_fast` against PyYAML on documents shaped like real
   article front matter, then mutated (quoting, escapes, special plain scalars, comments,
   indentation, CRLF and BOM, long keys, tags, stray indicators). Whenever the fast parser
   returns a mapping it must be the very mapping PyYAML builds, types included.
2. Crash: mutated article files (bytes) through the reader: only an `Article` or an
   `ArticleError` may come out, within the time bound, and an `Article` always has a stored
   form the catalog can keep.

The example budget is small by default (the `ci` profile, also what CI runs); a long local
run: `HYPOTHESIS_PROFILE=long ./run.sh test tests/test_fuzz.py` (see README, Development).
Every bug found here is fixed with its example pinned as a regression test below.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_articles import assert_fast_matches_pyyaml

from aggregator.catalog import StoredArticle
from aggregator.errors import ArticleError
from aggregator.model import Article
from aggregator.reading import EARLIEST, LATEST, front_matter_text, parse_article, read_article

SEEDS = sorted((Path(__file__).resolve().parents[1] / "seeds").glob("*.txt"))
SEED_BYTES = [path.read_bytes() for path in SEEDS]
SEED_TEXTS = [front_matter_text(data, "seed.txt") for data in SEED_BYTES]
CPU_SECONDS = 1.0  # the bound per file (README); files here are far smaller than 1 MiB

# --- documents shaped like article front matter -------------------------------------------

_REAL_KEYS = [
    "title",
    "excerpt",
    "webUrl",
    "published",
    "publishedDateTime",
    "topics",
    "provider",
    "name",
    "domain",
    "images",
    "url",
    "width",
    "height",
    "related",
    "secured",
    "type",
    "category",
    "is_cached",
    "cdn-url",
    "a.b",
    "_x",
    "k" * 1000,
]
_ODD_KEYS = ["on", "ON", "Yes", "no", "null", "y", "n", "true", "False", "~", "<<", "1",
             "k" * 1021, "k" * 1030, "a b", "é"]  # fmt: skip
# Mostly the keys articles use (the fast parser must answer often to be tested), some odd.
KEYS = st.sampled_from(_REAL_KEYS * 4 + _ODD_KEYS)

# Plain scalars of every kind YAML 1.1 resolves, and strings that look like them.
SPECIAL_PLAIN = st.sampled_from(
    ["true", "false", "True", "FALSE", "yes", "No", "on", "OFF", "y", "n", "null", "Null",
     "~", "", "0", "-0", "007", "012", "0x1F", "0o17", "0b101", "1_000", "+1", "-1", "1e3",
     "1.5", ".5", "1.", "-.inf", ".NaN", "1:20", "1:20.5", "190:20:30", "2021-12-22",
     "2021-12-22T13:00:00Z", "2021-12-22 13:00:00", "2021-12-22t13:00:00.5+02:00",
     "2021-1-5", "2021-02-30", "2021-12-22T25:00:00Z", "2021-12-22T13:00:00+05:99",
     "2021-12-22T13:00:00.1234567Z", "0001-01-01", "12345678901234567890",
     "9" * 30, "5G", "3D printing", "2020s", "AI", "Forbes", "forbes.com",
     "https://example.com/a?b=c#d", "a: b", "a:b", "a #b", "a#b", "- a", "-a", "? a",
     "[a]", "{a}", "a, b", "&a", "*a", "!a", "|", ">", "%x", "@x", "`x", "'x", '"x',
     "a  b", "a\tb", "é", "東京", "\u00a0x", "x\u00a0", "_x", "/x", "(x)", "=", "<<"]
)  # fmt: skip
TEXT = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cs",),
        include_characters="\t\n\r\x85\u2028\u2029\ufeff\x00\x07\x1b\\\"':#-&*!|>%@`[]{},?",
    ),
    max_size=20,
)
# Text as articles have it: words, punctuation, some non-ASCII.
WORDS = st.text(
    st.sampled_from(list("abcXYZ019 .,;:#-'\"/()!?&é東\u00a0")), min_size=1, max_size=30
)


def plain(value: str) -> str:
    return value


def double_quoted(value: str) -> str:
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def single_quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


ESCAPES = st.sampled_from(
    ["\\0", "\\a", "\\b", "\\t", "\\n", "\\v", "\\f", "\\r", "\\e", "\\ ", '\\"', "\\/",
     "\\\\", "\\N", "\\_", "\\L", "\\P", "\\x41", "\\x7f", "\\u00e9", "\\u2028", "\\ud83d",
     "\\ude00", "\\U0001F600", "\\U00110000", "\\q", "\\x4", "\\u12"]
)  # fmt: skip


ODD_VALUES = st.sampled_from(
    ["!!str 1", "!!int 1", "!!bool x", "!!int", "&a x", "*a", "!x y", "[a, b]", "{a: 1}",
     "|", ">-", "'a\n  b'"]
)  # fmt: skip
INSERTS = st.sampled_from(list(" \t\n:#-\"'\\[]{},&*!|>%@`?\r\x85\u2028\ufeff"))


@st.composite
def scalars(draw: st.DrawFn) -> str:
    """One scalar as written after `key: ` (with an optional comment)."""
    kind = draw(st.integers(0, 8))
    if kind <= 1:
        text = draw(SPECIAL_PLAIN)
    elif kind <= 3:
        text = draw(WORDS)
    elif kind == 4:
        text = draw(TEXT)
    elif kind == 5:
        text = double_quoted(draw(SPECIAL_PLAIN | WORDS | TEXT))
    elif kind == 6:
        parts = draw(st.lists(ESCAPES | st.sampled_from(["a", " ", "é", "#"]), max_size=5))
        text = '"' + "".join(parts) + '"'
    elif kind == 7:
        text = single_quoted(draw(SPECIAL_PLAIN | WORDS | TEXT))
    else:
        text = draw(ODD_VALUES | SPECIAL_PLAIN)
    if draw(st.booleans()) and draw(st.booleans()):
        text += draw(st.sampled_from([" # comment", "  #", "#x", " #: x", "\t# tab"]))
    return text


@st.composite
def block(draw: st.DrawFn, indent: int = 0, depth: int = 0) -> list[str]:
    """Lines of a block mapping at `indent`, with nested mappings and sequences."""
    lines: list[str] = []
    pad = " " * indent
    for key in draw(st.lists(KEYS, min_size=1, max_size=5, unique=draw(st.integers(0, 4)) > 0)):
        shape = draw(st.integers(0, 9)) if depth < 3 else 0
        if shape <= 5:
            lines.append(f"{pad}{key}: {draw(scalars())}".rstrip(" ") if shape else f"{pad}{key}:")
        elif shape <= 7:
            lines.append(f"{pad}{key}:")
            lines.extend(draw(block(indent + draw(st.sampled_from([2, 4, 1])), depth + 1)))
        else:
            lines.append(f"{pad}{key}:")
            step = draw(st.sampled_from([0, 2, 4]))
            for _ in range(draw(st.integers(1, 3))):
                if draw(st.booleans()):
                    lines.append(f"{pad}{' ' * step}- {draw(scalars())}")
                else:
                    inner = draw(block(indent + step + 2, depth + 1))
                    lines.append(f"{pad}{' ' * step}- {inner[0].lstrip(' ')}")
                    lines.extend(inner[1:])
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["", "# a comment", f"{pad}# indented", "   "])))
    return lines


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with a few edits of the kinds people (and copy tools) make."""
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.integers(0, 5))
        at = draw(st.integers(0, len(text)))
        if edit == 0:
            text = text[:at] + draw(INSERTS) + text[at:]
        elif edit == 1 and text:
            text = text[:at] + text[at + 1 :]
        elif edit == 2:
            text = text.replace("\n", "\r\n")
        elif edit == 3:
            lines = text.split("\n")
            line = draw(st.integers(0, len(lines) - 1))
            lines[line] = draw(st.sampled_from([" ", "  ", "\t", ""])) + lines[line]
            text = "\n".join(lines)
        elif edit == 4:
            text = text[:at] + draw(TEXT) + text[at:]
        else:
            text = "\ufeff" + text
    return text


@st.composite
def front_matters(draw: st.DrawFn) -> str:
    """Generated front matter, or a seed's, sometimes mutated."""
    if draw(st.integers(0, 3)) == 0:
        return draw(mutated(draw(st.sampled_from(SEED_TEXTS))))
    text = "\n".join(draw(block())) + draw(st.sampled_from(["\n", "", "\n\n"]))
    return draw(mutated(text)) if draw(st.integers(0, 3)) == 0 else text


@given(front_matters())
def test_parse_fast_is_pyyaml_whenever_it_answers(text: str) -> None:
    assert_fast_matches_pyyaml(text)


# --- the reader never lets anything but Article or ArticleError out -----------------------


@st.composite
def article_files(draw: st.DrawFn) -> bytes:
    """A seed or a generated article, as bytes, with byte-level damage."""
    if draw(st.booleans()):
        data = draw(st.sampled_from(SEED_BYTES))
    else:
        fields = "\n".join(draw(block()))
        data = f"---\ntitle: T\nwebUrl: https://e.com/a\n{fields}\n---\nbody\n".encode(
            "utf-8", "surrogatepass"
        )
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.integers(0, 5))
        at = draw(st.integers(0, len(data)))
        if edit == 0:
            data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
        elif edit == 1:
            data = data[:at] + data[at + draw(st.integers(1, 50)) :]
        elif edit == 2:
            data = data[:at]  # cut short, as mid-copy
        elif edit == 3:
            end = min(len(data), at + draw(st.integers(1, 200)))
            data = data[:end] + data[at:end] + data[end:]  # a repeated run
        elif edit == 4:
            data = data[:at] + draw(st.sampled_from(list(SPECIAL_INSERTS))) + data[at:]
        else:
            data = data.replace(b"\n", b"\r\n")
    return data


SPECIAL_INSERTS = [
    b"\n---\n", b"---", b"\x00", b"\xff", b"\xef\xbb\xbf", b"\xc2\x85", b"\xe2\x80\xae",
    b"\n  - ", b": ", b" #", b"!!bool x", b"!!int", b"&a ", b"*a", b"!!python/none",
    b"0x" + b"f" * 200, b"1" + b":0" * 100, b"\\U00110000", b'"\\ud800"', b"\t",
    b"\npublished: false\n", b"\npublishedDateTime: 0001-01-01\n", b"[" * 40, b"{a: " * 40,
    b"k" * 1100 + b": v",
]  # fmt: skip


def check_outcome(data: bytes) -> None:
    started = time.process_time()
    outcome: Article | ArticleError
    try:
        outcome = parse_article(data, "fuzz.md")
    except ArticleError as exc:
        outcome = exc
    assert time.process_time() - started < CPU_SECONDS
    if isinstance(outcome, ArticleError):
        assert outcome.path == "fuzz.md"
        assert str(outcome).startswith("fuzz.md")
        str(outcome).encode("utf-8")  # a log line and a catalog row can carry it
        return
    article = outcome
    assert isinstance(article, Article)
    StoredArticle.of(article)  # JSON and UTF-8: the catalog can always keep it
    if article.published_at is not None:
        assert EARLIEST <= article.published_at <= LATEST
    names = [*article.topics]
    if article.provider is not None:
        names += [article.provider.name, article.provider.domain or ""]
    for name in names:
        assert not [c for c in name if unicodedata.category(c) == "Cf" and c not in "\u200c\u200d"]
        assert name == name.strip()


@given(article_files())
@example(b"---\ntitle: T\nwebUrl: https://e.com/a\nextra: !!bool x\n---\n")
@example(b"---\ntitle: T\nwebUrl: https://e.com/a\nprovider: {name: 0x" + b"f" * 5000 + b"}\n---\n")
def test_the_reader_gives_an_article_or_an_article_error(data: bytes) -> None:
    check_outcome(data)


def test_the_reader_on_a_real_file_gives_an_article_or_an_article_error(tmp_path: Path) -> None:
    # The same contract from read_article on disk (the size check and the read included).
    path = tmp_path / "a.md"
    path.write_bytes(SEED_BYTES[0].replace(b"published: true", b"published: !!bool x"))
    with pytest.raises(ArticleError) as caught:
        read_article(path, "a.md")
    assert "a.md" in str(caught.value)
