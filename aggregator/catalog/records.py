"""The catalog's records: what a sync takes and gives, what the feeds list, and the stored form
of an article (its JSON codec and the catalog's date text).

The catalog owns its storage format; nothing else reads these strings.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aggregator.events import ChangeEvent
from aggregator.membership import DEFAULT_RULES, FeedRules, feeds_of
from aggregator.model import Article, FeedKey, Image, Provider, RelatedLink
from aggregator.reading import FileStat


def format_date(value: datetime) -> str:
    """A UTC datetime as the catalog's text: fixed width, so it sorts in date order."""
    # Articles' dates are UTC already (the reader makes them so): no conversion to make. And
    # isoformat() without arguments takes half the time it takes with `timespec` (argument
    # parsing; five dates an article): it leaves out a zero fraction, put back here.
    if value.tzinfo is UTC:
        text = value.isoformat()
        return text if value.microsecond else f"{text[:19]}.000000{text[19:]}"
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_date(text: str) -> datetime:
    """Inverse of `format_date`."""
    return datetime.fromisoformat(text)


# `json.dumps` with these options, made once: dumps makes a new encoder on every call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _stdlib_dumps(data: Any) -> bytes:
    return _ENCODE(data).encode()


@functools.cache
def _codec() -> tuple[Callable[[Any], bytes], Callable[[str], Any], tuple[type[Exception], ...]]:
    """orjson's dumps and loads when installed (pinned in the locks), else the standard
    library's, with the errors after which the standard library's are asked again; chosen
    on first use: orjson imports uuid and platform, which a build with nothing to read or
    render never loads (tests/test_startup.py).

    orjson writes the bytes `_ENCODE` does, UTF-8 encoded (compact, non-ASCII as is, the same
    escapes: tests/test_catalog_json.py holds it to that), in a fifth of the time, and
    reads them in two thirds. What it refuses (a lone surrogate, an integer over 64 bits)
    the standard library is asked for, so that it fails, or not, as it always did.
    """
    try:
        import orjson
    except ImportError:  # not installed: the standard library, same bytes, slower
        return _stdlib_dumps, json.loads, ()
    return orjson.dumps, orjson.loads, (orjson.JSONEncodeError, orjson.JSONDecodeError)


def dumps(data: Any) -> bytes:
    """`data` as the catalog's compact JSON, UTF-8 encoded (`_ENCODE`'s bytes)."""
    encode, _, refused = _codec()
    try:
        return encode(data)
    except refused:
        return _stdlib_dumps(data)


def loads(text: str) -> dict[str, Any]:
    """The stored article `text` as `json.loads` reads it."""
    _, decode, refused = _codec()
    try:
        data: dict[str, Any] = decode(text)
    except refused:
        return dict(json.loads(text))
    # orjson reads an integer beyond 64 bits as a float (json.loads: an int). An article's
    # only numbers are its images' sizes, which `pixels` leaves unbounded: read such a
    # text again as the standard library reads it.
    if any(type(n) is float for image in data["images"] for n in image[1:]):
        return dict(json.loads(text))
    return data


def article_to_json(article: Article, published_at: str | None = None) -> str:
    """The stored form of an article's last good version (`published_at`: the
    `format_date` of its date, when already made)."""
    data = _article_data(article, published_at)
    encode, _, refused = _codec()
    try:
        return encode(data).decode()
    except refused:  # a lone surrogate: the text as it always was (storing it fails)
        return _ENCODE(data)


def _article_data(article: Article, published_at: str | None) -> dict[str, Any]:
    if published_at is None and article.published_at:
        published_at = format_date(article.published_at)
    return {
        "source": article.source,
        "url": article.url,
        "title": article.title,
        "excerpt": article.excerpt,
        "published": article.published,
        "published_at": published_at,
        "provider": [article.provider.name, article.provider.domain] if article.provider else None,
        "topics": article.topics,  # a tuple is a JSON array to both encoders
        "images": [(i.url, i.width, i.height) for i in article.images],
        "related": [
            (r.title, r.url, r.provider, format_date(r.published_at) if r.published_at else None)
            for r in article.related
        ],
    }


def article_from_json(text: str) -> Article:
    """Inverse of `article_to_json`."""
    data = loads(text)
    provider = data["provider"]
    return Article(
        source=data["source"],
        url=data["url"],
        title=data["title"],
        excerpt=data["excerpt"],
        published=data["published"],
        published_at=parse_date(data["published_at"]) if data["published_at"] else None,
        provider=Provider(provider[0], provider[1]) if provider else None,
        topics=tuple(data["topics"]),
        images=tuple(Image(u, w, h) for u, w, h in data["images"]),
        related=tuple(
            RelatedLink(t, u, p, parse_date(d) if d else None) for t, u, p, d in data["related"]
        ),
    )


def visible_part(article_json: str) -> tuple[Any, ...]:
    """What of a stored article a reader shows as the item: its title, link, summary, images
    and related links. An edit of any of them moves the item's `modified` date."""
    data = loads(article_json)
    return (data["title"], data["url"], data["excerpt"], data["images"], data["related"])


@lru_cache(maxsize=8192)  # few distinct feeds, named once per article each
def _feed_name(key: FeedKey) -> str:
    return str(key)


def _fingerprint(article_json: bytes) -> str:
    return hashlib.blake2b(article_json, digest_size=12).hexdigest()


# StoredArticle's fields in their order: the plain tuple workers send back.
StoredFields = tuple[str, str, bool, str | None, tuple[str, ...], str, str]


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article as the catalog keeps it: its JSON, and the few facts a sync needs.

    Made where the file is read (a worker process, for big builds), so the main process
    never decodes the JSON of an article it only stores.
    """

    url: str
    title: str
    published: bool
    date: str | None  # `format_date` of its publishedDateTime
    feeds: tuple[str, ...]  # `str` of each FeedKey it belongs in
    json: str
    fingerprint: str

    @classmethod
    def of(
        cls, article: Article, article_json: str | None = None, rules: FeedRules = DEFAULT_RULES
    ) -> StoredArticle:
        """The stored form of a parsed article (`article_json` if already made); `rules`
        say which feeds exist."""
        date = format_date(article.published_at) if article.published_at else None
        # The UTF-8 bytes are the fingerprint's input, and encoding them is what refuses
        # text SQLite cannot store (a lone surrogate): here, not in the catalog's transaction.
        if article_json is None:
            data = dumps(_article_data(article, date))
            article_json = data.decode()
        else:
            data = article_json.encode()
        return cls(
            url=article.url,
            title=article.title,
            published=article.published,
            date=date,
            feeds=tuple(map(_feed_name, feeds_of(article, rules))),
            json=article_json,
            fingerprint=_fingerprint(data),
        )

    def fields(self) -> StoredFields:
        """Its fields in order, as a plain tuple: `StoredArticle(*fields)` is the same record.

        Written out rather than `dataclasses.astuple`, which deep-copies every field
        through its recursive walk (2.6 % of a cold build's CPU, in the read workers)."""
        return (
            self.url,
            self.title,
            self.published,
            self.date,
            self.feeds,
            self.json,
            self.fingerprint,
        )

    @classmethod
    def from_json(cls, text: str, rules: FeedRules = DEFAULT_RULES) -> StoredArticle:
        """The stored form of a catalog row's JSON."""
        return cls.of(article_from_json(text), text, rules)


@dataclass(frozen=True, slots=True)
class FileChange:
    """One article file as a build found it.

    `stat is None` means the file is gone. Otherwise exactly one of `article` (it parsed)
    and `error` (why it was rejected) is set. `withdrawn`: the rejected file says it is not
    published, so its last good version leaves the feeds instead of staying listed.
    """

    path: str
    stat: FileStat | None
    article: StoredArticle | None = None
    error: str | None = None
    withdrawn: bool = False


@dataclass(slots=True)
class SyncResult:
    """What one batch of file changes did to the catalog."""

    events: list[ChangeEvent] = field(default_factory=list)
    dirty_feeds: set[FeedKey] = field(default_factory=set)
    changed_guids: set[str] = field(default_factory=set)
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """A feed as it was last written; `name` is its topic's or provider's name."""

    key: FeedKey
    name: str
    updated: datetime
    guids: tuple[str, ...]


# Bounds of date ranges as the catalog's text: every stored date sorts between them.
_NO_UPPER = "9999"
_NO_LOWER = ""


def upper(value: datetime | None) -> str:
    """The catalog's text of an upper date bound (None: none)."""
    return _NO_UPPER if value is None else format_date(value)


def lower(value: datetime | None) -> str:
    """The catalog's text of a lower date bound (None: none)."""
    return _NO_LOWER if value is None else format_date(value)
