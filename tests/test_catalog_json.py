"""catalog.records' JSON codec: orjson when installed, the standard library's bytes exactly,
and the standard library itself when orjson is missing or refuses a value."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aggregator.catalog import StoredArticle, records
from aggregator.catalog.records import (
    article_from_json,
    article_to_json,
    dumps,
    format_date,
    loads,
    parse_date,
)
from aggregator.model import Article, Image, Provider, RelatedLink

_STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# Every character an encoder might escape its own way: C0 controls, DEL, C1, the line and
# paragraph separators, BOM, quotes and backslashes, and text beyond the BMP.
AWKWARD = "".join(chr(c) for c in range(0x00, 0x100)) + '\u2028\u2029\ufeff"\\/é漢😀\U0010ffff'


def article(text: str = AWKWARD) -> Article:
    when = datetime(2021, 12, 22, 13, 0, 0, 123456, tzinfo=UTC)
    return Article(
        source="a/b.txt",
        url="https://example.com/a",
        title=text,
        excerpt=text[::-1],
        published=True,
        published_at=when,
        provider=Provider(text, "example.com"),
        topics=("AI", text),
        images=(Image("https://example.com/i.png", 1920, 1080), Image("https://e.com/j")),
        related=(
            RelatedLink(text, "https://e.com/r", None, when),
            RelatedLink("t", "u", "p", None),
        ),
    )


def test_the_orjson_codec_is_in_use_where_the_locks_installed_it() -> None:
    orjson = pytest.importorskip("orjson")
    assert records._codec()[0] is orjson.dumps


def test_an_articles_json_is_the_standard_librarys_byte_for_byte() -> None:
    value = article()
    text = article_to_json(value)
    published = "2021-12-22T13:00:00.123456+00:00"
    expected = _STDLIB(
        {
            "source": "a/b.txt",
            "url": "https://example.com/a",
            "title": AWKWARD,
            "excerpt": AWKWARD[::-1],
            "published": True,
            "published_at": published,
            "provider": [AWKWARD, "example.com"],
            "topics": ["AI", AWKWARD],
            "images": [["https://example.com/i.png", 1920, 1080], ["https://e.com/j", None, None]],
            "related": [[AWKWARD, "https://e.com/r", None, published], ["t", "u", "p", None]],
        }
    )
    assert text == expected
    assert article_from_json(text) == value
    stored = StoredArticle.of(value)
    assert stored.json == expected
    assert stored == StoredArticle.of(value, expected)  # the fingerprint of the same bytes


def test_values_orjson_refuses_are_the_standard_librarys_to_encode() -> None:
    huge = {"n": 2**70, "s": "x"}
    assert dumps(huge) == _STDLIB(huge).encode()
    # orjson reads an int beyond 64 bits as a float: the sizes come back as ints, exactly.
    wide = replace(article(), images=(Image("https://e.com/w", 2**70 + 1, 2**64),))
    text = article_to_json(wide)
    assert text == _STDLIB(records._article_data(wide, None))
    assert article_from_json(text) == wide
    assert [type(n) for n in loads(text)["images"][0][1:]] == [int, int]
    assert StoredArticle.of(wide) == StoredArticle.of(wide, text)
    # A lone surrogate: the text as the standard library writes it, which cannot be stored,
    # and storing it fails as it always did, with the encoder's own message.
    lone = article("a\ud800b")
    assert article_to_json(lone) == _STDLIB(records._article_data(lone, None))
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        StoredArticle.of(lone)
    # An escaped surrogate (JSON allows it; orjson refuses to read it): read as before.
    escaped = '{"title":"\\ud800","images":[]}'
    assert loads(escaped) == {"title": "\ud800", "images": []}


def test_without_orjson_the_standard_library_gives_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_orjson = StoredArticle.of(article())
    monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` now raises ImportError
    codec = records._codec.__wrapped__()  # chosen again, past the cache
    assert codec == (records._stdlib_dumps, json.loads, ())
    monkeypatch.setattr(records, "_codec", lambda: codec)
    assert StoredArticle.of(article()).fields() == with_orjson.fields()
    assert article_from_json(with_orjson.json) == article()


@pytest.mark.parametrize(
    "when",
    [
        datetime(2021, 11, 17, 6, 50, tzinfo=UTC),
        datetime(2021, 11, 17, 6, 50, 0, 5, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2021, 11, 17, 23, 50, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_the_catalogs_date_text_is_fixed_width_utc_microseconds(when: datetime) -> None:
    text = format_date(when)
    assert text == when.astimezone(UTC).isoformat(timespec="microseconds")
    assert parse_date(text) == when
