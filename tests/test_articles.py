"""Article files → Article: the seeds, every kind of bad file, and the fast parser held to PyYAML.

The fast parser (`front_matter.parse_fast`) must give exactly what PyYAML's SafeLoader gives or
decline; the differential tests below compare the two strictly (types, time zones, order) on
the seeds, on a generated corpus and on hand-written tricky YAML.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import random
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from corpus import write_corpus

from aggregator.errors import ArticleError
from aggregator.model import Article, Image, Provider, RelatedLink
from aggregator.reading import (
    MAX_DEPTH,
    articles,
    front_matter_text,
    parse_article,
    parse_fast,
    read_article,
)
from aggregator.reading.articles import DEFAULT_MAX_BYTES
from aggregator.reading.values import xml_clean
from aggregator.reading.yaml_safe import LOADER, loader_class

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Loader = type[yaml.SafeLoader]

MINIMAL = 'title: "A title"\nwebUrl: "https://example.com/a"\n'


# --- helpers ---------------------------------------------------------------------------------


def write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def article_file(body: str = MINIMAL, *, extra: str = "") -> str:
    """A whole article file around the YAML `body` (LF line ends)."""
    return f"---\n{body}{extra}---\n"


def read(
    folder: Path, content: bytes | str, name: str = "a.md", *, loader: Loader = LOADER
) -> Article:
    return read_article(write(folder, name, content), name, loader=loader)


def rejected(
    folder: Path,
    content: bytes | str,
    name: str = "bad.md",
    *,
    loader: Loader = LOADER,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ArticleError:
    """The error reading `content` raises; it must name the file."""
    path = write(folder, name, content)
    with pytest.raises(ArticleError) as caught:
        read_article(path, name, max_bytes=max_bytes, loader=loader)
    assert caught.value.path == name
    assert name in str(caught.value)
    return caught.value


def same(a: object, b: object) -> bool:
    """Equal, and of the same types all the way down: `True == 1` and two datetimes with
    different offsets that are the same instant do not count as the same here."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        assert isinstance(b, datetime)
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    return a == b


def pyyaml(text: str, loader: type[yaml.SafeLoader] = BASE_LOADER) -> object:
    return yaml.load(text, Loader=loader)


def assert_fast_matches_pyyaml(text: str, *, must_be_fast: bool | None = None) -> None:
    """parse_fast(text) is PyYAML's mapping, or None; `must_be_fast` pins which one.

    Whatever the fast parser reads must read the same with libyaml's CSafeLoader (the
    fallback) and with the pure-Python SafeLoader (`safe_load`), since either may be the one
    installed.
    """
    fast = parse_fast(text)
    if must_be_fast is True:
        assert fast is not None, f"fast path declined {text!r}"
    if must_be_fast is False:
        assert fast is None, f"fast path should decline {text!r}, gave {fast!r}"
    if fast is None:
        return
    for loader in {BASE_LOADER, yaml.SafeLoader}:
        try:
            expected: object = pyyaml(text, loader)
        except (yaml.YAMLError, ValueError) as exc:
            expected = exc
        assert same(fast, expected), f"{text!r}: fast {fast!r} != {loader.__name__} {expected!r}"


def text_values(article: Article) -> list[str]:
    """Every string held by an article, nested dataclasses included."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                walk(getattr(value, field.name))
        elif isinstance(value, tuple):
            for item in value:
                walk(item)

    walk(article)
    return found


# --- the seeds -------------------------------------------------------------------------------


def test_there_are_seeds() -> None:
    assert len(SEEDS) == 5


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_every_seed_parses(path: Path) -> None:
    article = read_article(path, path.name)
    assert article.source == path.name
    assert article.title
    assert article.url.startswith("https://")
    assert article.published is path.name.startswith("000_")  # the only published seed
    assert article.published_at is not None
    assert article.published_at.utcoffset() == timedelta(0)
    assert article.provider is not None
    assert article.topics == ("Computer Vision", "AI")
    assert article.related


def test_seed_000_in_detail() -> None:
    path = SEEDS[0]
    article = read_article(path, "000.txt")
    assert article.title == (
        "How Leaders Can Use Facial Recognition Technology As A Force For Good"
    )
    assert article.url == (
        "https://www.forbes.com/sites/forbesbusinesscouncil/2021/12/22/"
        "how-leaders-can-use-facial-recognition-technology-as-a-force-for-good/"
    )
    assert article.excerpt.startswith("Facial recognition, when used within moral codes")
    assert article.published_at == datetime(2021, 12, 22, 13, 0, tzinfo=UTC)
    assert article.provider == Provider("Forbes", "forbes.com")
    assert len(article.images) == 1
    assert article.images[0].width == 1200
    assert article.images[0].height == 799
    assert article.related[0] == RelatedLink(
        title="Survey sheds light on police use of facial recognition",
        url=(
            "https://www.newburyportnews.com/news/survey-sheds-light-on-police-use-of-facial-"
            "recognition/article_8c2c1214-5f83-11ec-8055-ff7f4fa79a14.html"
        ),
        provider="The Daily News of Newburyport",
        published_at=datetime(2021, 12, 18, 7, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_secured_never_reaches_the_article(path: Path) -> None:
    mapping = yaml.load(front_matter_text(path.read_bytes(), path.name), Loader=BASE_LOADER)
    secret = mapping.get("secured")
    if secret is None:
        pytest.skip("this seed has no secured field")
    article = read_article(path, path.name)
    assert not hasattr(article, "secured")
    for text in text_values(article):
        assert secret not in text
        assert secret.split(";")[0][:40] not in text


def test_articles_and_errors_cross_process_boundaries() -> None:
    # Workers of a ProcessPoolExecutor pickle the function, its result and its errors.
    assert pickle.loads(pickle.dumps(read_article)) is read_article
    assert pickle.loads(pickle.dumps(parse_article)) is parse_article
    article = read_article(SEEDS[0], "seed.txt")
    assert pickle.loads(pickle.dumps(article)) == article
    error = pickle.loads(pickle.dumps(ArticleError("a.md", "why", "title")))
    assert (error.path, error.reason, error.field) == ("a.md", "why", "title")


# --- bad files: one clear error each ---------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    error = rejected(tmp_path, b"", "empty.md")
    assert "file is empty" in error.reason


def test_whitespace_only_file(tmp_path: Path) -> None:
    error = rejected(tmp_path, b" \n\t\r\n  \n", "blank.md")
    assert "only whitespace" in error.reason


def test_binary_file(tmp_path: Path) -> None:
    error = rejected(tmp_path, b"---\ntitle: x\x00\x01\x02\n---\n", "image.md")
    assert "binary file" in error.reason
    assert "offset 12" in error.reason


def test_utf16_file_is_called_binary(tmp_path: Path) -> None:
    error = rejected(tmp_path, article_file().encode("utf-16"), "wide.md")
    assert "binary file" in error.reason
    assert "UTF-8" in error.reason


def test_non_utf8_file(tmp_path: Path) -> None:
    error = rejected(tmp_path, article_file('title: "Caf\xe9"\n').encode("latin-1"), "latin.md")
    assert "not UTF-8" in error.reason
    assert "byte 0xe9 at line 2" in error.reason
    assert "save the file as UTF-8" in error.reason


def test_no_front_matter(tmp_path: Path) -> None:
    error = rejected(tmp_path, MINIMAL, "plain.md")
    assert "no front matter" in error.reason
    assert "`---`" in error.reason


def test_front_matter_must_open_on_the_first_line(tmp_path: Path) -> None:
    error = rejected(tmp_path, "\n" + article_file(), "late.md")
    assert "no front matter" in error.reason


def test_front_matter_not_closed(tmp_path: Path) -> None:
    error = rejected(tmp_path, "---\n" + MINIMAL, "open.md")
    assert "not closed" in error.reason


def test_malformed_yaml_gives_line_and_column(tmp_path: Path, fallback: Loader) -> None:
    error = rejected(
        tmp_path, article_file(MINIMAL + "topics: [AI, ML\nexcerpt: x\n"), "y.md", loader=fallback
    )
    assert error.reason.startswith("malformed YAML at line 5, column")
    assert error.field is None


def test_malformed_yaml_mapping_in_a_plain_value(tmp_path: Path, fallback: Loader) -> None:
    error = rejected(tmp_path, article_file("title: Why: because\n"), "colon.md", loader=fallback)
    assert "malformed YAML at line 2, column 11" in error.reason
    assert "quotes" in error.reason


def test_empty_front_matter(tmp_path: Path) -> None:
    error = rejected(tmp_path, "---\n---\n", "nothing.md")
    assert "front matter is empty" in error.reason


@pytest.mark.parametrize(
    ("body", "kind"),
    [("- a\n- b\n", "a list"), ("just text\n", "a single value ('just text')")],
)
def test_front_matter_that_is_not_a_mapping(tmp_path: Path, body: str, kind: str) -> None:
    error = rejected(tmp_path, article_file(body), "list.md")
    assert f"front matter is {kind}, not a mapping" in error.reason


def test_missing_title(tmp_path: Path) -> None:
    error = rejected(tmp_path, article_file('webUrl: "https://example.com/"\n'), "t.md")
    assert error.field == "title"
    assert "missing" in error.reason


@pytest.mark.parametrize("title", ['""', '"   "', "", "null", '"\\x01\\t"'])
def test_empty_title(tmp_path: Path, title: str) -> None:
    body = f'title: {title}\nwebUrl: "https://example.com/"\n'
    error = rejected(tmp_path, article_file(body), "t.md")
    assert error.field == "title"
    assert "missing" in error.reason or "empty" in error.reason


def test_title_that_is_a_list(tmp_path: Path) -> None:
    body = 'title:\n  - a\nwebUrl: "https://example.com/"\n'
    error = rejected(tmp_path, article_file(body), "t.md")
    assert error.field == "title"
    assert "must be text, not a list" in error.reason


def test_missing_web_url(tmp_path: Path) -> None:
    error = rejected(tmp_path, article_file('title: "T"\n'), "u.md")
    assert error.field == "webUrl"
    assert "missing" in error.reason
    assert "https://" in error.reason


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a",
        "/relative/path",
        "example.com/a",
        "https://",
        "https:///path",
        "https://exa mple.com/",
        "https://example.com/a b",
        "https://example.com:99999/",
        "https://[::1/",
        "javascript:alert(1)",
        "42",
        "[a, b]",
    ],
)
def test_invalid_web_url(tmp_path: Path, url: str) -> None:
    error = rejected(tmp_path, article_file(f'title: "T"\nwebUrl: {url}\n'), "u.md")
    assert error.field == "webUrl"
    assert "not an absolute http(s) URL with a host" in error.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "HTTP://EXAMPLE.COM/A",
        "https://user@example.com:8443/a?b=c#d",
        "https://[2001:db8::1]/a",
        "https://bücher.example/straße",
        "  https://example.com/trimmed  ",
    ],
)
def test_valid_web_urls(tmp_path: Path, url: str) -> None:
    article = read(tmp_path, article_file(f'title: "T"\nwebUrl: "{url}"\n'))
    assert article.url == url.strip()


@pytest.mark.parametrize(
    "value", ["yesterday", '"2021-13-01"', "2021-02-30T10:00:00Z", '"12/22/2021"', "12", "true"]
)
def test_invalid_published_date_time(tmp_path: Path, value: str, fallback: Loader) -> None:
    error = rejected(
        tmp_path, article_file(MINIMAL + f"publishedDateTime: {value}\n"), "d.md", loader=fallback
    )
    assert error.field == "publishedDateTime"
    assert "is not an ISO 8601 date-time" in error.reason


@pytest.mark.parametrize(("value", "kind"), [("{a: 1}", "a mapping"), ("42", "int 42")])
def test_topics_that_are_not_a_list(tmp_path: Path, value: str, kind: str) -> None:
    error = rejected(tmp_path, article_file(MINIMAL + f"topics: {value}\n"), "t.md")
    assert error.field == "topics"
    assert f"must be a list of topic names (or one name), not {kind}" in error.reason


def test_topic_that_is_a_mapping(tmp_path: Path) -> None:
    body = MINIMAL + "topics:\n  - AI\n  - name: ML\n"
    error = rejected(tmp_path, article_file(body), "t.md")
    assert error.field == "topics"
    assert "item 2 is a mapping" in error.reason


def test_excerpt_that_is_a_mapping(tmp_path: Path) -> None:
    error = rejected(tmp_path, article_file(MINIMAL + "excerpt:\n  a: b\n"), "e.md")
    assert error.field == "excerpt"


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    content = article_file(MINIMAL + f'excerpt: "{"x" * 200}"\n')
    size = len(content.encode())
    error = rejected(tmp_path, content, "big.md", max_bytes=100)
    assert error.reason == (
        f"file is {size} bytes, over the limit of 100 bytes (raise max_file_bytes in config)"
    )
    with pytest.raises(ArticleError, match="over the limit of 100 bytes"):
        parse_article(content.encode(), "big.md", max_bytes=100)


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    content = article_file().encode()
    article = read_article(write(tmp_path, "a.md", content), "a.md", max_bytes=len(content))
    assert article.title == "A title"


@pytest.mark.parametrize(
    ("expected", "limit", "result"),
    [(10, 100, 10), (3, 100, 10), (0, 100, 10), (3, 8, 8), (10, 4, 4), (20, 100, 10)],
)
def test_reading_stops_at_the_limit_even_when_the_size_changed(
    expected: int, limit: int, result: int
) -> None:
    reader, writer = os.pipe()
    os.write(writer, b"0123456789")
    os.close(writer)
    try:
        assert articles._read_up_to(reader, expected, limit) == b"0123456789"[:result]
    finally:
        os.close(reader)


def test_file_that_vanished(tmp_path: Path) -> None:
    with pytest.raises(ArticleError) as caught:
        read_article(tmp_path / "gone.md", "gone.md")
    assert caught.value.path == "gone.md"
    assert caught.value.reason == "file vanished while being read"


def test_folder_is_not_an_article(tmp_path: Path) -> None:
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(ArticleError) as caught:
        read_article(tmp_path / "folder.md", "folder.md")
    assert caught.value.path == "folder.md"
    assert caught.value.reason == "not a regular file (a folder): cannot be an article"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")
    with pytest.raises(ArticleError) as caught:
        read_article(tmp_path / "pipe.md", "pipe.md")
    assert "not a regular file (a pipe, socket or device)" in caught.value.reason


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads unreadable files"
)
def test_unreadable_file_gives_the_os_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.md", article_file())
    path.chmod(0)
    with pytest.raises(ArticleError) as caught:
        read_article(path, "locked.md")
    assert caught.value.reason == "cannot read the file: Permission denied"


def test_other_os_errors_give_the_os_reason(tmp_path: Path) -> None:
    # A path through a regular file, as if a folder had been replaced by a file meanwhile.
    write(tmp_path, "file", "x")
    with pytest.raises(ArticleError) as caught:
        read_article(tmp_path / "file" / "a.md", "file/a.md")
    assert caught.value.path == "file/a.md"
    assert caught.value.reason == "cannot read the file: Not a directory"


BASE_LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.fixture(params=BASE_LOADERS, ids=lambda loader: loader.__name__)
def fallback(request: pytest.FixtureRequest) -> Loader:
    """The loader for the test to read with, once per loader the fallback may have: CSafeLoader,
    or SafeLoader when PyYAML was built without libyaml."""
    base: Loader = request.param
    return loader_class(base)


def _refuse_to_build(*args: object, **kwargs: object) -> object:
    raise AssertionError("PyYAML was asked to build a document that should have been refused")


def _refusing(loader: Loader) -> Loader:
    """`loader`, failing the test if PyYAML is asked to build a document with it (`yaml.load`
    calls `get_single_data`; the event scan before it does not)."""
    return type("Refusing", (loader,), {"get_single_data": _refuse_to_build})


def test_billion_laughs_is_refused_before_anything_is_built(
    tmp_path: Path, fallback: Loader
) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    body = MINIMAL + "\n".join(lines) + "\n"
    error = rejected(tmp_path, article_file(body), "lol.md", loader=_refusing(fallback))
    assert "YAML anchor &a0 at line 4" in error.reason
    assert "not allowed" in error.reason


def test_alias_without_anchor_is_refused(tmp_path: Path, fallback: Loader) -> None:
    error = rejected(
        tmp_path, article_file(MINIMAL + "excerpt: *nothing\n"), "alias.md", loader=fallback
    )
    assert "YAML alias *nothing" in error.reason


def test_any_anchor_is_refused(tmp_path: Path) -> None:
    error = rejected(tmp_path, article_file(MINIMAL + "excerpt: &e hello\n"), "anchor.md")
    assert "YAML anchor &e" in error.reason


@pytest.mark.parametrize(
    "nested",
    [
        "x: " + "[" * 10_000 + "]" * 10_000,
        "x: " + "{a: " * 10_000 + "1" + "}" * 10_000,
        "x:\n" + "- " * 10_000 + "deep",
        "".join(f"{'  ' * level}k:\n" for level in range(2_000)),
    ],
    ids=["flow-sequences", "flow-mappings", "block-sequences", "block-mappings"],
)
def test_deep_nesting_is_refused(tmp_path: Path, nested: str, fallback: Loader) -> None:
    error = rejected(
        tmp_path,
        article_file(MINIMAL + nested + "\n"),
        "deep.md",
        max_bytes=10**7,
        loader=_refusing(fallback),
    )
    assert f"nested more than {MAX_DEPTH} levels deep" in error.reason


def test_nesting_up_to_the_limit_is_fine(tmp_path: Path, fallback: Loader) -> None:
    nested = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert read(tmp_path, article_file(MINIMAL + nested), loader=fallback).title == "A title"


def test_python_object_tag_is_refused_and_not_run(tmp_path: Path, fallback: Loader) -> None:
    marker = tmp_path / "ran"
    body = MINIMAL + f'excerpt: !!python/object/apply:os.system ["touch {marker}"]\n'
    error = rejected(tmp_path, article_file(body), "evil.md", loader=_refusing(fallback))
    assert "YAML tag !!python/object/apply:os.system at line 4 is not allowed" in error.reason
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!custom text", "!custom"),
        ("!<tag:example.com,2000:x> text", "tag:example.com,2000:x"),
    ],
)
def test_non_core_tags_are_refused(
    tmp_path: Path, value: str, shown: str, fallback: Loader
) -> None:
    error = rejected(
        tmp_path, article_file(MINIMAL + f"excerpt: {value}\n"), "tag.md", loader=fallback
    )
    assert f"YAML tag {shown} " in error.reason


def test_core_tags_are_accepted(tmp_path: Path, fallback: Loader) -> None:
    body = 'title: !!str 2021\nwebUrl: "https://example.com/"\nexcerpt: !!str yes\nn: !!int "3"\n'
    article = read(tmp_path, article_file(body), loader=fallback)
    assert (article.title, article.excerpt) == ("2021", "yes")


# --- what the Article holds ------------------------------------------------------------------


def test_bom_and_crlf(tmp_path: Path) -> None:
    lf = (
        article_file(
            MINIMAL + 'excerpt: "An excerpt"\ntopics:\n  - AI\n  - ML\n'
            "publishedDateTime: 2021-12-22T13:00:00Z\n",
            extra="",
        )
        + "A body\nwith --- dashes\n"
    )
    crlf = b"\xef\xbb\xbf" + lf.replace("\n", "\r\n").encode()
    expected = read(tmp_path, lf, "lf.md")
    got = read(tmp_path, crlf, "crlf.md")
    assert got == dataclasses.replace(expected, source="crlf.md")
    assert got.excerpt == "An excerpt"
    assert got.topics == ("AI", "ML")


def test_closing_line_may_carry_trailing_spaces_and_body_is_ignored(tmp_path: Path) -> None:
    content = "---  \n" + MINIMAL + "---\t \nbody: [not yaml\n---\nmore\n"
    assert read(tmp_path, content).title == "A title"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-12-22T13:00:00Z", datetime(2021, 12, 22, 13, 0, tzinfo=UTC)),
        ("2021-12-22T15:00:00+02:00", datetime(2021, 12, 22, 13, 0, tzinfo=UTC)),
        ("2021-12-22T08:30:00-04:30", datetime(2021, 12, 22, 13, 0, tzinfo=UTC)),
        ("2021-12-22T13:00:00.25Z", datetime(2021, 12, 22, 13, 0, 0, 250_000, tzinfo=UTC)),
        ("2021-12-22T13:00:00.123456789Z", datetime(2021, 12, 22, 13, 0, 0, 123_456, tzinfo=UTC)),
        ("2021-12-22T13:00:00", datetime(2021, 12, 22, 13, 0, tzinfo=UTC)),
        ("2021-12-22 13:00:00 +01:00", datetime(2021, 12, 22, 12, 0, tzinfo=UTC)),
        ("2021-12-22", datetime(2021, 12, 22, tzinfo=UTC)),
        ('"2021-12-22T15:00:00+02:00"', datetime(2021, 12, 22, 13, 0, tzinfo=UTC)),
        ('"2021-12-22T13:00Z"', datetime(2021, 12, 22, 13, 0, tzinfo=UTC)),
        ("'2021-12-22'", datetime(2021, 12, 22, tzinfo=UTC)),
        ("2021-12-22T00:30:00+01:00", datetime(2021, 12, 21, 23, 30, tzinfo=UTC)),
    ],
)
def test_dates_become_utc(tmp_path: Path, value: str, expected: datetime) -> None:
    article = read(tmp_path, article_file(MINIMAL + f"publishedDateTime: {value}\n"))
    assert article.published_at == expected
    assert article.published_at is not None
    assert article.published_at.tzinfo is UTC


@pytest.mark.parametrize("value", ["", '""', "null"])
def test_missing_date_is_none(tmp_path: Path, value: str) -> None:
    article = read(tmp_path, article_file(MINIMAL + f"publishedDateTime: {value}\n"))
    assert article.published_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ('"yes"', False), ('"true"', False), ("1", False),
     ("", False), ("null", False)],
)  # fmt: skip
def test_published_only_when_boolean_true(tmp_path: Path, value: str, expected: bool) -> None:
    article = read(tmp_path, article_file(MINIMAL + f"published: {value}\n"))
    assert article.published is expected
    assert read(tmp_path, article_file()).published is False


def test_published_follows_yaml_11_booleans(tmp_path: Path) -> None:
    # `yes` unquoted *is* the boolean true in YAML 1.1 (what PyYAML reads); quoted it is text.
    assert read(tmp_path, article_file(MINIMAL + "published: yes\n")).published is True


def test_topics_trimmed_deduplicated_and_made_text(tmp_path: Path) -> None:
    body = MINIMAL + (
        "topics:\n"
        '  - " AI "\n'
        "  - ai\n"
        "  - Machine Learning\n"
        '  - ""\n'
        "  -\n"
        "  - null\n"
        "  - 2020\n"
        "  - 3.10\n"
        "  - MACHINE LEARNING\n"
        '  - "\\x01Robotics"\n'
        "  - Straße\n"
        "  - STRASSE\n"
    )
    article = read(tmp_path, article_file(body))
    assert article.topics == ("AI", "Machine Learning", "2020", "3.10", "Robotics", "Straße")


def test_a_single_topic_as_text(tmp_path: Path) -> None:
    assert read(tmp_path, article_file(MINIMAL + "topics: AI\n")).topics == ("AI",)
    assert read(tmp_path, article_file(MINIMAL + "topics:\n")).topics == ()


def test_title_that_yaml_reads_as_something_else_keeps_its_text(tmp_path: Path) -> None:
    cases = {"2021": "2021", "0x1F": "0x1F", "1e3": "1e3", "3.10": "3.10", "yes": "yes",
             "2021-12-22": "2021-12-22", "true": "true", ".inf": ".inf"}  # fmt: skip
    for written, title in cases.items():
        body = f'title: {written}\nwebUrl: "https://example.com/"\nexcerpt: 1_000\n'
        article = read(tmp_path, article_file(body))
        assert article.title == title
        assert article.excerpt == "1_000"


def test_images_numbers_as_text_and_bad_items_dropped(tmp_path: Path) -> None:
    body = MINIMAL + (
        "images:\n"
        '  - url: "https://example.com/1.jpg"\n'
        '    width: "1200"\n'
        '    height: " 630 "\n'
        '  - url: "https://example.com/2.jpg"\n'
        "    width: wide\n"
        "    height: -5\n"
        '  - url: "https://example.com/3.jpg"\n'
        "    width: 1200.0\n"
        "    height: true\n"
        '  - url: "https://example.com/6.jpg"\n'
        f'    width: "{"9" * 5000}"\n'
        f'    height: "{"9" * 10}"\n'
        "  - width: 100\n"
        '  - url: "ftp://example.com/4.jpg"\n'
        '  - url: ""\n'
        '  - "https://example.com/5.jpg"\n'
        "  - 42\n"
    )
    article = read(tmp_path, article_file(body))
    assert article.images == (
        Image("https://example.com/1.jpg", 1200, 630),
        Image("https://example.com/2.jpg", None, None),
        Image("https://example.com/3.jpg", 1200, None),
        Image("https://example.com/6.jpg", None, None),
        Image("https://example.com/5.jpg"),
    )


@pytest.mark.parametrize("digits", ["9" * 5000, "0x" + "f" * 5000, "1" + ":0" * 3000])
def test_numbers_too_long_to_be_numbers_are_kept_as_text(tmp_path: Path, digits: str) -> None:
    # Python's int() refuses more than 4,300 digits and str() a bigger int; a sexagesimal one
    # costs PyYAML quadratic time. No field needs one: over MAX_NUMERAL_CHARS, it is text.
    body = (
        f"title: {digits}\nwebUrl: https://example.com/a\nquality: {digits}\n"
        f"provider: {{name: {digits}}}\n"
        f"images: [{{url: 'https://example.com/i.jpg', width: {digits}}}]\n"
        f"related: [{{title: {digits}, webUrl: 'https://example.com/r', provider: {digits}}}]\n"
    )
    article = read(tmp_path, article_file(body))
    assert article.title == digits
    assert article.provider == Provider(digits)
    assert article.images == (Image("https://example.com/i.jpg"),)
    assert article.related == (RelatedLink(digits, "https://example.com/r", digits),)


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!bool x", "bool"), ("!!int", "int"), ("!!int 0x", "int"), ("!!float", "float"),
     ("!!float x", "float"), ("!!null [1]", None), ("!!int [1]", None)],
)  # fmt: skip
def test_explicit_tag_its_type_cannot_take_is_malformed_yaml(
    tmp_path: Path, value: str, tag: str | None, fallback: Loader
) -> None:
    error = rejected(tmp_path, article_file(MINIMAL + f"extra: {value}\n"), loader=fallback)
    assert error.reason.startswith("malformed YAML at line 4, column 8:")
    if tag is not None:  # a scalar: our wording names the tag (a list: PyYAML's own)
        assert f"is not a valid !!{tag}" in error.reason


@pytest.mark.parametrize("value", ["!!timestamp x", "!!timestamp 2021-13-45"])
def test_explicit_timestamp_that_is_no_date_is_a_field_error(
    tmp_path: Path, value: str, fallback: Loader
) -> None:
    error = rejected(
        tmp_path, article_file(MINIMAL + f"publishedDateTime: {value}\n"), loader=fallback
    )
    assert error.field == "publishedDateTime"


def test_implicit_key_longer_than_yaml_allows_is_refused(tmp_path: Path) -> None:
    # YAML caps implicit keys at 1,024 characters; the fast parser must not accept more.
    key = "k" * 1100
    assert parse_fast(f"{MINIMAL}{key}: v\n") is None
    error = rejected(tmp_path, article_file(MINIMAL + f"{key}: v\n"))
    assert error.reason.startswith("malformed YAML at line 4")
    text = f"{MINIMAL}{'k' * 1000}: v\n"
    assert_fast_matches_pyyaml(text, must_be_fast=True)


def test_related_items(tmp_path: Path) -> None:
    body = MINIMAL + (
        "related:\n"
        '  - title: " Kept "\n'
        '    webUrl: "https://example.org/k"\n'
        "    provider:\n"
        "      name: Org\n"
        "      domain: example.org\n"
        "    publishedDateTime: 2021-12-22T15:00:00+02:00\n"
        "    secured: hidden\n"
        "  - title: Bad date kept\n"
        '    webUrl: "https://example.org/d"\n'
        "    provider:\n"
        "      domain: example.org\n"
        "    publishedDateTime: not a date\n"
        "  - title: No URL\n"
        "  - title: Bad URL\n"
        "    webUrl: mailto:a@example.org\n"
        '  - webUrl: "https://example.org/no-title"\n'
        "  - title: Provider as text\n"
        '    webUrl: "https://example.org/p"\n'
        "    provider: Someone\n"
        "  - just text\n"
    )
    article = read(tmp_path, article_file(body))
    assert article.related == (
        RelatedLink("Kept", "https://example.org/k", "Org", datetime(2021, 12, 22, 13, tzinfo=UTC)),
        RelatedLink("Bad date kept", "https://example.org/d", "example.org", None),
        RelatedLink("Provider as text", "https://example.org/p", "Someone", None),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\n  name: Forbes\n  domain: forbes.com", Provider("Forbes", "forbes.com")),
        ("\n  name: Forbes", Provider("Forbes")),
        ("\n  domain: forbes.com", Provider("forbes.com", "forbes.com")),
        ('\n  name: ""\n  domain: forbes.com', Provider("forbes.com", "forbes.com")),
        (" Forbes", Provider("Forbes")),
        ('\n  name: "  "', None),
        ("\n  images: []", None),
        (" []", None),
        ("", None),
    ],
)
def test_provider(tmp_path: Path, value: str, expected: Provider | None) -> None:
    assert read(tmp_path, article_file(MINIMAL + f"provider:{value}\n")).provider == expected


def test_control_characters_are_removed(tmp_path: Path) -> None:
    body = (
        'title: "  A\\x01B\\u0007C\\uFFFE\\uFFFFD\\tF  "\n'
        'webUrl: "https://example.com/"\n'
        'excerpt: "x\\0y\\ey\\u001fz \\U0001F600"\n'
        'topics:\n  - "\\bAI"\n'
        'provider:\n  name: "N\\x7fame\\x0b"\n'
        "related:\n"
        '  - title: "R\\x02"\n'
        '    webUrl: "https://example.com/\\x03r"\n'
        '    provider: "P\\x04"\n'
        "images:\n"
        '  - url: "https://example.com/\\x05i.jpg"\n'
    )
    article = read(tmp_path, article_file(body))
    assert article.title == "ABCD\tF"
    assert article.excerpt == "xyyz \U0001f600"
    assert article.topics == ("AI",)
    assert article.provider == Provider("N\x7fame")  # DEL is allowed in XML 1.0
    assert article.related == (RelatedLink("R", "https://example.com/r", "P"),)
    assert article.images == (Image("https://example.com/i.jpg"),)


def test_surrogates_are_removed_and_pairs_joined() -> None:
    # libyaml refuses surrogate escapes, but the pure-Python loader lets them through.
    clean = xml_clean
    assert clean("a\ud83d\ude00b") == "a\U0001f600b"
    assert clean("a\ud800b\udfffc\ude00\ud83d") == "abc"
    assert clean("plain text") == "plain text"


def test_raw_control_characters_are_dropped_before_parsing(tmp_path: Path) -> None:
    # PyYAML would refuse the whole file for one of these; they are invisible debris.
    content = article_file(
        'title: "A\x01B\x1bC\x7fD\x9fE\ufffeF"\nwebUrl: "https://ex\x02ample.com/"\n'
    )
    article = read(tmp_path, content)
    assert article.title == "ABCDEF"
    assert article.url == "https://example.com/"


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    body = MINIMAL + (
        "somethingNew: 1\n"
        "nested:\n  deeper:\n    - {a: [1, 2, {b: c}]}\n"
        "heat: -1\nquality: 89\ntype: article\ncategory: news\n"
        'ampWebUrl: "https://example.com/amp"\n'
        'cdnAmpWebUrl: "https://example-com.cdn.ampproject.org/c/s/example.com/amp"\n'
        'originalUrl: "https://example.com/original"\n'
    )
    article = read(tmp_path, article_file(body))
    assert article == Article(source="a.md", url="https://example.com/a", title="A title")


def test_duplicate_keys_last_wins_as_in_yaml(tmp_path: Path) -> None:
    body = 'title: "First"\ntitle: "Second"\nwebUrl: "https://example.com/"\n'
    assert parse_fast(body) is None
    assert read(tmp_path, article_file(body)).title == "Second"


# The characters the fast parser takes in a text that is not ASCII: every other one makes it
# decline the whole text (tab, CR, NEL, LS, PS, BOM, controls, surrogates, U+FFFE/U+FFFF).
_TAKEN = (
    (0x0A, 0x0A), (0x20, 0x7E), (0xA0, 0x2027), (0x202A, 0xD7FF), (0xE000, 0xFEFE),
    (0xFF00, 0xFFFD), (0x10000, 0x10FFFF),
)  # fmt: skip


def test_the_fast_parser_declines_exactly_the_characters_outside_its_ranges() -> None:
    """Its class lists the declined characters (quicker to compile than the complement of
    the ranges taken): checked against the ranges over every code point."""
    from aggregator.reading.front_matter import _unsure_char

    every = "".join(map(chr, range(0x110000)))
    declined = {ord(c) for c in _unsure_char().findall(every)}
    taken = {point for low, high in _TAKEN for point in range(low, high + 1)}
    assert declined == set(range(0x110000)) - taken
    assert parse_fast("title: \u00e9t\u00e9\n") == {"title": "\u00e9t\u00e9"}
    assert parse_fast("title: a\u2028b\n") is None


def test_constructs_the_fast_parser_declines_still_parse(tmp_path: Path, fallback: Loader) -> None:
    body = (
        "title: |\n  Two\n  lines\n"
        "webUrl: 'https://example.com/'\n"
        "excerpt: >\n  folded\n  text\n"
        "topics: [AI, 'ML', \"Data\"]\n"
        "provider: {name: Forbes, domain: forbes.com}\n"
        "published: True\n"
    )
    assert parse_fast(body) is None
    article = read(tmp_path, article_file(body), loader=fallback)
    assert (article.title, article.excerpt) == ("Two\nlines", "folded text")
    assert article.topics == ("AI", "ML", "Data")
    assert article.provider == Provider("Forbes", "forbes.com")
    assert article.published is True


# --- the fast parser against PyYAML ----------------------------------------------------------


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_fast_parser_reads_every_seed_as_pyyaml_does(path: Path) -> None:
    text = front_matter_text(path.read_bytes(), path.name)
    fast = parse_fast(text)
    assert fast is not None, "the fast parser declined a seed"
    assert same(fast, pyyaml(text))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("corpus")
    files = write_corpus(folder, 3000)  # tests/corpus.py
    assert sorted(folder.iterdir()) == files
    return files


def test_fast_parser_reads_a_generated_corpus_as_pyyaml_does(corpus: list[Path]) -> None:
    declined = []
    for path in corpus:
        text = front_matter_text(path.read_bytes(), path.name)
        fast = parse_fast(text)
        if fast is None:
            declined.append(path.name)
            continue
        assert same(fast, pyyaml(text)), f"{path.name}: the fast parser disagrees with PyYAML"
    assert not declined, f"the fast parser declined {len(declined)} files: {declined[:5]}"


def test_generated_corpus_reads_into_articles(corpus: list[Path]) -> None:
    published = 0
    for path in corpus[:500]:
        article = read_article(path, path.name)
        assert article.title
        assert article.url.startswith("http")
        assert article.published_at is not None
        assert article.published_at.tzinfo is UTC
        published += article.published
    assert 300 < published < 400  # tests/corpus.py publishes about 70 %


YAML11_WORDS = """
    yes Yes YES no No NO on On ON off Off OFF y Y n N True TRUE False FALSE tRUE nO ~
    null Null NULL
"""
SPECIAL_NUMBERS = """
    0x1F 0o17 012 0b101 1_000 1e3 1.0e+3 1.5 .5 +1 -0x1 .inf -.inf .NaN 1:20 190:20:30 1:20.5
    00 -012 6.8523015e+5 123456789012345678901234567890
"""
ODD_TIMESTAMPS = (
    "2021-12-22 13:00:00,2021-12-22t13:00:00Z,2021-1-5T10:00:00Z,2021-12-22T1:00:00Z,"
    "2021-12-22T13:00:00 Z,2021-12-22T13:00:00+02,2021-12-22T24:00:00Z,2021-02-30,"
    "2021-12-22T13:00:00.1234567Z"
)
TIMESTAMPS = """
    2021-12-22 2021-12-22T13:00:00Z 2021-12-22T13:00:00 2021-12-22T13:00:00.5Z
    2021-12-22T13:00:00.123456+05:30 2021-12-22T13:00:00-00:00 2020-02-29
"""

# Tricky YAML: each is either read by the fast parser exactly as PyYAML reads it ("fast"), or
# declined ("pyyaml"); the assertion holds the fast parser to PyYAML either way.
TRICKY: list[tuple[str, str]] = [
    # YAML 1.1 booleans and nulls, in every spelling
    *[(f"k: {word}\n", "pyyaml") for word in YAML11_WORDS.split()],
    ("k: true\n", "fast"),
    ("k: false\n", "fast"),
    ("yes: 1\n", "pyyaml"),
    ("on: 1\n", "pyyaml"),
    ("null: 1\n", "pyyaml"),
    # numbers YAML 1.1 reads specially
    *[(f"k: {number}\n", "pyyaml") for number in SPECIAL_NUMBERS.split()],
    *[(f"k: {number}\n", "fast") for number in ("0", "-1", "42", "-0", "1200")],
    # timestamps
    *[(f"k: {stamp}\n", "pyyaml") for stamp in ODD_TIMESTAMPS.split(",")],
    *[(f"k: {stamp}\n", "fast") for stamp in TIMESTAMPS.split()],
    # strings that look a little like numbers but are not
    ("k: 5G\n", "fast"),
    ("k: 3D printing\n", "fast"),
    ("k: 2020s\n", "fast"),
    ("k: 10x\n", "pyyaml"),
    ("k: 1-2\n", "pyyaml"),
    # double-quoted escapes
    (r'k: "say \"hi\" \\ back\\slash"' "\n", "fast"),
    (r'k: "caf\u00e9 \x41 \U0001F600 \t\n\r\0\a\b\v\f\e\ \/\N\_\L\P"' "\n", "fast"),
    (r'k: "\ud83d\ude00 and \ud800 alone"' "\n", "pyyaml"),  # libyaml refuses surrogates
    (r'k: "bad \q escape"' "\n", "pyyaml"),
    (r'k: "\x4"' "\n", "pyyaml"),
    (r'k: "\U00110000"' "\n", "pyyaml"),
    ('k: ""\n', "fast"),
    ('k: "a" # comment\n', "fast"),
    ('k: "a"   \n', "fast"),
    ('k: "a"#no space\n', "pyyaml"),
    ('k: "a" "b"\n', "pyyaml"),
    ('k: "multi\n  line"\n', "pyyaml"),
    ('k: "unterminated\n', "pyyaml"),
    ('k: "tab\tinside"\n', "pyyaml"),
    # single-quoted
    ("k: 'it''s'\n", "fast"),
    ("k: ''\n", "fast"),
    ("k: 'back\\slash \"q\"'\n", "fast"),
    ("k: 'a' # c\n", "fast"),
    ("k: 'multi\n  line'\n", "pyyaml"),
    # plain scalars and comments
    ("k: value # comment\n", "fast"),
    ("k: value#not a comment\n", "fast"),
    ("k: C# and F#\n", "fast"),
    ("k: a:b\n", "fast"),
    ("k: http://x.y/z?a=b#c\n", "fast"),
    ("k: trailing spaces   \n", "fast"),
    ('k: it\'s "quoted"\n', "fast"),
    ("k: São Paulo\n", "fast"),
    ("k: (Video)\n", "fast"),
    ("k: /path\n", "fast"),
    ("k: _under\n", "fast"),
    ("k: a: b\n", "pyyaml"),
    ("k: ends:\n", "pyyaml"),
    ("k: -dash\n", "pyyaml"),
    ("k: <b>bold</b>\n", "pyyaml"),
    ("k: =\n", "pyyaml"),
    ("k: @at\n", "pyyaml"),
    ("k: `tick\n", "pyyaml"),
    ("k: %pct\n", "pyyaml"),
    ("k: plain\n  continued\n", "pyyaml"),
    ("k: plain\n\n  continued after blank\n", "pyyaml"),
    ("# a comment\nk: v\n  # indented comment\nj: w\n", "fast"),
    # empty values and nesting
    ("k:\n", "fast"),
    ("k:   \n", "fast"),
    ("k: # only a comment\n", "fast"),
    ("k:\nj: 1\n", "fast"),
    ("k:\n  a: 1\n  b:\n    c: 2\nj: 3\n", "fast"),
    ("k:\n  - a\n  - b\n", "fast"),
    ("k:\n- a\n- b\n", "pyyaml"),
    ("k:\n  - a: 1\n    b: 2\n  - c: 3\n", "fast"),
    ("k:\n  -   a: 1\n      b: 2\n", "fast"),
    ("k:\n  -\n  - x\n  - # c\n", "fast"),
    ("k:\n  -\n    a: 1\n", "fast"),
    ("k:\n  - - nested\n", "pyyaml"),
    ("k:\n  - a: 1\n   b: 2\n", "pyyaml"),
    ("k:\n  a: 1\n b: 2\n", "pyyaml"),
    ("k:\n    a: 1\n  b: 2\n", "pyyaml"),
    ("k: 1\n  j: 2\n", "pyyaml"),
    ("k:\n  - a\n  b: 1\n", "pyyaml"),
    ("k:\n  a: 1\n  - b\n", "pyyaml"),
    ("k:\n  - key:\n    - x\n", "pyyaml"),
    ("k:\n  - key:\n      - x\n", "fast"),
    # things only PyYAML reads
    ("k: [a, b]\n", "pyyaml"),
    ("k: {a: 1}\n", "pyyaml"),
    ("k: |\n  block\n", "pyyaml"),
    ("k: >-\n  folded\n", "pyyaml"),
    ("k: &a 1\nj: *a\n", "pyyaml"),
    ("k: !!str 1\n", "pyyaml"),
    ("? complex\n: key\n", "pyyaml"),
    ('"quoted key": 1\n', "pyyaml"),
    ("key with space: 1\n", "pyyaml"),
    ("k :1\n", "pyyaml"),
    ("k:1\n", "pyyaml"),
    ("<<: {a: 1}\n", "pyyaml"),
    ("k: v\n...\n", "pyyaml"),
    ("%YAML 1.1\n---\nk: v\n", "pyyaml"),
    ("k:\tv\n", "pyyaml"),
    ("\tk: v\n", "pyyaml"),
    ("k: a\rj: b\n", "pyyaml"),
    ("k: a\x85b\n", "pyyaml"),
    ("k: a\u2028b\n", "pyyaml"),
    ("k: \ufeffa\n", "pyyaml"),
    ("  k: indented document\n", "pyyaml"),
    ("- a\n- b\n", "pyyaml"),
    ("just a scalar\n", "pyyaml"),
    ("", "pyyaml"),
    ("k: 1\nk: 2\n", "pyyaml"),
    ("\n".join(f"{'  ' * i}k:" for i in range(40)) + "\n", "pyyaml"),
]


@pytest.mark.parametrize(("text", "route"), TRICKY, ids=[repr(t[0])[:48] for t in TRICKY])
def test_tricky_yaml_reads_the_same_either_way(text: str, route: str) -> None:
    assert_fast_matches_pyyaml(text, must_be_fast=route == "fast")


def test_random_plain_scalars_read_as_pyyaml_does() -> None:
    # Strings made of the characters YAML 1.1's resolvers care about: whatever the fast
    # parser accepts must be what PyYAML makes of it.
    rng = random.Random(20211222)
    alphabet = "0123456789-+.:_eExXoObBaAfFtTzZnNyYuUlLsS ~#'\""
    accepted = 0
    for _ in range(6000):
        scalar = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        text = f"k: {scalar}\n"
        assert_fast_matches_pyyaml(text)
        accepted += parse_fast(text) is not None
    assert accepted > 1000  # the test means something only if many were read fast


def test_random_timestamps_read_as_pyyaml_does() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(3000):
        stamp = (
            f"{rng.randint(1, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
            f"T{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}"
        )
        stamp += rng.choice(["", ".5", ".000001", ".123456", "."])
        stamp += rng.choice(
            ["", "Z", "+00:00", "-00:00", f"+{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
             f"-{rng.randint(0, 23):02d}:30"]
        )  # fmt: skip
        text = f"k: {stamp}\nd: {stamp[:10]}\n"
        assert_fast_matches_pyyaml(text)
        accepted += parse_fast(text) is not None
    assert accepted > 300


def test_random_double_quoted_strings_read_as_pyyaml_does() -> None:
    rng = random.Random(11)
    escapes = [
        r"\"",
        r"\\",
        r"\n",
        r"\t",
        r"\x41",
        r"\u00e9",
        r"\U0001F600",
        r"\ud83d",
        r"\/",
        r"\_",
        r"\N",
        r"\q",
        r"\x4",
    ]
    pieces = [*escapes, "\\ ", "#", " # ", ": ", "'", "é", "\u201c", "a", " ", "\\"]
    accepted = 0
    for _ in range(3000):
        inner = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        text = f'k: "{inner}"\n'
        assert_fast_matches_pyyaml(text)
        accepted += parse_fast(text) is not None
    assert accepted > 500


MUTATIONS = [
    *[b"-", b"- ", b":", b": ", b"\n", b" ", b"  ", b"\t", b'"', b"'", b"\\", b"#", b" #"],
    *[b"&a", b"*a", b"!!", b"[", b"{", b"|", b">", b"\r", b"\x01", b"...", b"?", b"%", b","],
    *[b"0x", b"12", b"2021-02-30", b"yes", b"null", b"~", b"\\x41", b"\\u00e9", b"\\n", b"''"],
    *[b"1_0", b"1:2", b".5", b"-1", b"0", b"true", b"True", b"\n  ", b"\n- ", b"\n  - ", b"k: "],
    *[b"\nk:", b"\xc3\xa9", b"T10:00:00Z", b"+02:00", b"\xff", b"\x00", b"---\n", b"\xc2\x85"],
]


def mutants(count: int, seed: int) -> list[bytes]:
    """Seed files with a few random insertions, deletions and replacements of YAML syntax."""
    rng = random.Random(seed)
    originals = [path.read_bytes() for path in SEEDS]
    made = []
    for _ in range(count):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(4, len(data))
            choice = rng.random()
            if choice < 0.5:
                data[at:at] = rng.choice(MUTATIONS)
            elif choice < 0.7:
                del data[at : at + rng.randint(1, 10)]
            else:
                data[at : at + rng.randint(1, 3)] = rng.choice(MUTATIONS)
        made.append(bytes(data))
    return made


def test_mutated_seeds_read_the_same_either_way() -> None:
    accepted = 0
    for data in mutants(500, seed=1):
        try:
            text = front_matter_text(data, "m.md")
        except ArticleError:
            continue
        assert_fast_matches_pyyaml(text)
        accepted += parse_fast(text) is not None
    assert accepted > 100


def test_mutated_seeds_give_an_article_or_an_article_error() -> None:
    # Any other exception (ValueError, RecursionError, ...) fails the test by escaping.
    errors: list[ArticleError] = []
    articles_read = 0
    for data in mutants(500, seed=2):
        try:
            parse_article(data, "m.md")
            articles_read += 1
        except ArticleError as error:
            errors.append(error)
    assert articles_read > 50
    assert len(errors) > 50
    assert all(error.path == "m.md" and error.reason for error in errors)


def test_the_fast_parser_does_not_confuse_timestamp_zones() -> None:
    fast = parse_fast("a: 2021-12-22T13:00:00Z\nb: 2021-12-22T13:00:00+02:00\nc: 2021-12-22\n")
    assert fast is not None
    assert fast["a"] == datetime(2021, 12, 22, 13, tzinfo=UTC)
    assert fast["b"] == datetime(2021, 12, 22, 13, tzinfo=timezone(timedelta(hours=2)))
    assert type(fast["c"]) is date


# --- bounded cost: no file under max_file_bytes costs more than about a second ------------

_MIB = 1_048_576 - 100
_COSTLY = {
    # PyYAML's base-60 constructor is quadratic in the digits (15 s of CPU before).
    "sexagesimal": "x: 1" + ":0" * (_MIB // 2 - 100),
    "sexagesimal-float": "x: 1" + ":0" * (_MIB // 2 - 100) + ".5",
    "decimal": "x: " + "1" * _MIB,
    "hex": "x: 0x" + "f" * _MIB,
    "float": "x: 1." + "0" * _MIB + "e5",
    # Many values: 10-20 µs each in PyYAML (1.5 s for 130,000 before the cap).
    "many-keys": "".join(f"k{i}: v\n" for i in range(_MIB // 12)),
    "many-flow-keys": "x: {" + ", ".join(f"k{i}: {i}" for i in range(_MIB // 14)) + "}",
    "many-empty-lists": "".join(f"x{i}: " + "[" * 30 + "]" * 30 + "\n" for i in range(_MIB // 70)),
    "related-near-the-cap": "related:\n"
    + "".join(
        f"  - {{title: t{i}, webUrl: 'https://e.com/{i}',"
        f" publishedDateTime: 2021-01-01T10:00:00.123+05:30}}\n"
        for i in range(2800)
    ),
    "dates-near-the-cap": "x: ["
    + ", ".join(f"2021-01-01 10:00:00.{i}" for i in range(19_900))
    + "]",
    # A YAML error at the end: the pure-Python re-scan of the whole text took 4 s.
    "error-at-the-end": "x: [" + ", ".join("a" for _ in range(_MIB // 3)) + "\n]]]",
    "error-at-the-end-few-values": "x: '" + "a" * _MIB + "'\n]",
    "long-keys": "".join(f"{'k' * 1000}{i}: v\n" for i in range(_MIB // 1010)),
    "escapes": 'excerpt: "' + "\\ud83d\\ude00\\x01" * (_MIB // 16) + '"',
    "published-lines-and-broken": "published: false\n" * (_MIB // 17) + "[",
}


_READ = {"sexagesimal", "sexagesimal-float", "decimal", "hex", "float", "related-near-the-cap"}


@pytest.mark.parametrize("case", sorted(_COSTLY))
def test_reading_one_file_costs_at_most_a_second_of_cpu(tmp_path: Path, case: str) -> None:
    """Through the whole per-file boundary (read, parse, Article, stored form)."""
    from aggregator.membership import DEFAULT_RULES
    from aggregator.pipeline.workers import read_stored

    content = f"---\n{MINIMAL}{_COSTLY[case]}\n---\n".encode()[: articles.DEFAULT_MAX_BYTES - 10]
    if not content.endswith(b"\n---\n"):
        content = content[: -len("\n---\n")] + b"\n---\n"
    (tmp_path / "costly.md").write_bytes(content)
    assert len(content) <= articles.DEFAULT_MAX_BYTES
    started = time.process_time()
    rel, _, error, _ = read_stored(
        str(tmp_path), "costly.md", articles.DEFAULT_MAX_BYTES, DEFAULT_RULES
    )
    spent = time.process_time() - started
    assert rel == "costly.md"
    if case in _READ:  # the costly constructor really ran (not a scanner error first)
        assert error is None, error
    assert error is None or error.strip()
    assert spent < 1.0, f"{case}: {spent:.2f} s of CPU"


# --- output hygiene: dates a feed can carry, names that cannot retitle a feed ---------------


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00Z", "0999-12-31", "1899-12-31T23:59:59Z",
     "1900-01-01T00:30:00+01:00", '"0001-01-01T00:00:00"', "9999-12-31T23:00:00-05:00"],
)  # fmt: skip
def test_dates_outside_the_accepted_range_are_a_field_error(
    tmp_path: Path, value: str, fallback: Loader
) -> None:
    error = rejected(
        tmp_path, article_file(MINIMAL + f"publishedDateTime: {value}\n"), loader=fallback
    )
    assert error.field == "publishedDateTime"
    assert "years 1900 to 9999" in error.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
     ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
     ("9999-12-31", datetime(9999, 12, 31, tzinfo=UTC))],
)  # fmt: skip
def test_dates_at_the_ends_of_the_range_are_accepted(
    tmp_path: Path, value: str, expected: datetime
) -> None:
    article = read(tmp_path, article_file(MINIMAL + f"publishedDateTime: {value}\n"))
    assert article.published_at == expected


def test_a_related_link_dated_out_of_range_keeps_no_date(tmp_path: Path) -> None:
    body = MINIMAL + (
        "related:\n  - title: Old\n    webUrl: https://e.com/r\n"
        "    publishedDateTime: 0001-01-01T00:00:00Z\n"
    )
    (link,) = read(tmp_path, article_file(body)).related
    assert link.published_at is None


def test_invisible_format_characters_are_dropped_from_names(tmp_path: Path) -> None:
    # U+202E would show "Topic: AI" as reversed text in every reader of the shared feed.
    body = MINIMAL + (
        'topics: ["A\\u202eI\\u202c", "\\u2066Robotics\\u2069\\u200b", "\\ufeff"]\n'
        'provider: {name: "For\\u200ebes\\u00ad", domain: "forbes.com\\u2067"}\n'
        'excerpt: "\\u202b\\u05e9\\u05dc\\u05d5\\u05dd\\u202c"\n'
    )
    article = read(tmp_path, article_file(body))
    assert article.topics == ("AI", "Robotics")
    assert article.provider == Provider("Forbes", "forbes.com")
    # Titles and excerpts belong to their item alone and may need bidi marks: kept.
    assert article.excerpt == "\u202b\u05e9\u05dc\u05d5\u05dd\u202c"


def test_names_keep_joiners_and_get_single_spaces(tmp_path: Path) -> None:
    # ZWNJ spells Persian words, ZWJ joins emoji: neither can reorder a title.
    body = (
        MINIMAL
        + 'topics: ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "a\\n\\t b\\u2028c"]\n'
    )
    article = read(tmp_path, article_file(body))
    assert article.topics == ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "a b c")
