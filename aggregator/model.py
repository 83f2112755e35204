"""The data that flows between the stages: small frozen dataclasses, no I/O.

files --read--> Article --sync--> Catalog --plan--> FeedPlan --render--> RenderedFeed
      --publish--> files on disk --> ChangeEvent --> notifier
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache, lru_cache
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from uuid import UUID

ENTRY_ID_NAMESPACE = "5d0c3a4e-8f7b-4c1e-9a62-0b7f3c9e2d41"
"""The UUID namespace of the per-feed entry ids (`FeedKey.entry_id`). Fixed forever: a new
value would give every entry of every topic, provider and custom feed a new id."""


@dataclass(frozen=True, slots=True)
class Image:
    """An image of an article; width and height are pixels when the file gives them."""

    url: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Provider:
    """Who published an article. `domain` keys its feed when present, else `name`."""

    name: str
    domain: str | None = None

    @property
    def feed_name(self) -> str:
        """The text the provider's feed slug is made from."""
        return self.domain or self.name


@dataclass(frozen=True, slots=True)
class RelatedLink:
    """Another article linked from this one (shown as a list of links in the item)."""

    title: str
    url: str
    provider: str | None = None
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """One article file as the feeds need it. Internal fields (`secured`, …) never get here.

    `source` is the file's path relative to the input folder, with `/` separators.
    Datetimes are timezone-aware UTC.
    """

    source: str
    url: str
    title: str
    excerpt: str = ""
    published: bool = False
    published_at: datetime | None = None
    provider: Provider | None = None
    topics: tuple[str, ...] = ()
    images: tuple[Image, ...] = ()
    related: tuple[RelatedLink, ...] = ()


class FeedFormat(StrEnum):
    """The file formats every feed is published in (a site may turn any off, not all)."""

    RSS = "rss"
    ATOM = "atom"
    JSON = "json"


ALL_FORMATS: tuple[FeedFormat, ...] = (FeedFormat.RSS, FeedFormat.ATOM, FeedFormat.JSON)

# The file name ending of each format.
_SUFFIXES: dict[FeedFormat, str] = {
    FeedFormat.RSS: ".rss.xml",
    FeedFormat.ATOM: ".atom.xml",
    FeedFormat.JSON: ".json",
}


FEED_SUFFIXES: tuple[str, ...] = tuple(_SUFFIXES.values())
"""How the name of every feed file ends (`.rss.xml`, `.atom.xml`, `.json`)."""


class FeedKind(StrEnum):
    """The families of feeds: the built-in ones, and those defined in the config."""

    ALL = "all"
    TOPIC = "topic"
    PROVIDER = "provider"
    CUSTOM = "custom"


_FOLDERS: dict[FeedKind, str] = {
    FeedKind.TOPIC: "topics",
    FeedKind.PROVIDER: "providers",
    FeedKind.CUSTOM: "custom",
}


@dataclass(frozen=True, slots=True, order=True)
class FeedKey:
    """Which feed: its kind and its slug (`[a-z0-9-]+`, made by `slugs.slugify`)."""

    kind: FeedKind
    slug: str

    ALL_SLUG: ClassVar[str] = "all"

    @classmethod
    def everything(cls) -> FeedKey:
        """The feed of every published article."""
        return cls(FeedKind.ALL, cls.ALL_SLUG)

    @property
    def stem(self) -> str:
        """Output path without extension, relative to the output folder: `topics/ai`."""
        if self.kind is FeedKind.ALL:
            return self.ALL_SLUG
        return f"{_FOLDERS[self.kind]}/{self.slug}"

    @property
    def rss_path(self) -> str:
        """Relative path of the RSS 2.0 file."""
        return f"{self.stem}.rss.xml"

    @property
    def atom_path(self) -> str:
        """Relative path of the Atom 1.0 file."""
        return f"{self.stem}.atom.xml"

    @property
    def json_path(self) -> str:
        """Relative path of the JSON Feed 1.1 file."""
        return f"{self.stem}.json"

    def path(self, fmt: FeedFormat) -> str:
        """Relative path of the file in format `fmt`."""
        return self.stem + _SUFFIXES[fmt]

    def entry_id(self, guid: str) -> str:
        """The id an item of GUID `guid` carries in this feed (RSS `guid`, Atom `id`, JSON
        Feed `id`): the GUID itself in the `all` feed, and in every other feed a name-based
        UUID of the feed and the GUID (`urn:uuid:`, RFC 4122 version 5).

        Readers such as newsboat and Tiny Tiny RSS keep one copy of an entry per id across
        all the feeds a person follows, so an id shared by the all, topic and provider feeds
        left the topic and provider feeds empty there (docs/readers.md). Derived from the
        GUID and the feed's path only, it is as permanent as the GUID: the same on every
        node and after `catalog rebuild`, and the same in the feed's RSS, Atom and JSON files.
        """
        if self.kind is FeedKind.ALL:
            return guid
        return _uuid5_urn(f"{self.stem}\n{guid}")

    def __str__(self) -> str:
        return self.stem

    @classmethod
    def parse(cls, text: str) -> FeedKey:
        """Inverse of `str()`: `all`, `topics/ai`, `providers/forbes-com`, `custom/x`."""
        return _parse_key(text)


# Every feed's key is parsed from the catalog's text several times per build (its record,
# its count, its name): ~1,000 parses of the same few hundred keys in a daemon's drop.
@lru_cache(maxsize=65536)
def _parse_key(text: str) -> FeedKey:
    if text == FeedKey.ALL_SLUG:
        return FeedKey.everything()
    folder, _, slug = text.partition("/")
    for kind, name in _FOLDERS.items():
        if folder == name and slug:
            return FeedKey(kind, slug)
    raise ValueError(f"not a feed key: {text!r}")


@cache
def _namespace() -> UUID:
    # Imported on the first id made: uuid imports platform, and together they cost a build
    # with nothing to render more than a millisecond.
    import uuid

    return uuid.UUID(ENTRY_ID_NAMESPACE)


def _uuid5_urn(name: str) -> str:
    """`urn:uuid:` of the version 5 UUID of `name` in `ENTRY_ID_NAMESPACE`."""
    import uuid

    return uuid.uuid5(_namespace(), name).urn


@dataclass(frozen=True, slots=True)
class FeedItem:
    """An article as an entry of feeds: its permanent GUID, the date it is listed under and
    when it was last edited."""

    guid: str
    date: datetime
    article: Article
    # When readers last saw it change (an edit of its title, link, summary, image or related
    # links), None if never since it was first listed; see `updated`.
    modified: datetime | None = None

    @property
    def updated(self) -> datetime:
        """Atom `<updated>` and JSON Feed `date_modified`: the last edit, or its date."""
        if self.modified is None or self.modified < self.date:
            return self.date
        return self.modified


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """Everything needed to render one feed in both formats, decided before any XML exists."""

    key: FeedKey
    title: str
    description: str
    items: tuple[FeedItem, ...]  # newest first
    updated: datetime  # from the content, never the clock
    rss_url: str  # absolute, rel="self" of the RSS file
    atom_url: str  # absolute, rel="self" of the Atom file
    home_url: str  # absolute, the page that lists the feeds (index.html)
    language: str = "en"
    json_url: str = ""  # absolute, `feed_url` of the JSON Feed file
    formats: tuple[FeedFormat, ...] = ALL_FORMATS  # which files to render, in this order
    hubs: tuple[str, ...] = ()  # WebSub hubs every format advertises

    def url(self, fmt: FeedFormat) -> str:
        """The absolute URL of the file in format `fmt` (its rel="self", its WebSub topic)."""
        return {FeedFormat.RSS: self.rss_url, FeedFormat.ATOM: self.atom_url}.get(
            fmt, self.json_url
        )


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """Bytes ready to be published at `path` (relative to the output folder)."""

    path: str
    data: bytes
    # Its gzip sidecar's bytes when they were made already (by the render workers, in
    # parallel); None: the publisher compresses `data` itself if it needs a sidecar.
    gzipped: bytes | None = None


@dataclass(frozen=True, slots=True)
class FeedSummary:
    """One feed as the indexes (OPML, HTML) list it."""

    key: FeedKey
    title: str
    rss_url: str
    atom_url: str
    items: int  # listed in the feed (at most max_items)
    articles: int | None = None  # every published article the feed covers; None: unknown
    updated: datetime | None = None  # its newest item's date (from content, never the clock)
    json_url: str | None = None  # when a JSON Feed is published too
    formats: tuple[FeedFormat, ...] = ALL_FORMATS  # the files the feed has, in this order
