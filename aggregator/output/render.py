"""FeedPlan → RSS 2.0 and Atom 1.0 bytes, byte-stable for the same plan.

This is the only module that imports feedgen; its sharp edges stay here (STYLE.md, "feedgen,
wrapped once"):

- `add_entry()` prepends by default: plans are already newest first, so we append.
- feedgen stamps `datetime.now()` into `updated` / `lastBuildDate` and into every entry's
  `updated`: all three are set from the plan, so identical plans give identical bytes.
- `rss_file()` / `atom_file()` write in place: we only ask for bytes; `publish` writes them.
- Naive datetimes raise `ValueError` (a bug upstream: model datetimes are UTC-aware).

Element choices, each because it validates cleanly everywhere (W3C, RELAX NG, feedparser,
newsboat, reader) and keeps the article's text exactly as written:

- Text that RSS readers treat as HTML (item `description`, Atom `summary type="html"`) is
  HTML-escaped first, so `<b>new</b>` in an excerpt shows as those characters, not as bold.
- The provider is `dc:creator` in RSS (RSS's own `<author>` must be an e-mail address) and
  `<author><name>` in Atom; the Atom feed also has a feed-level author (the feed title), which
  RFC 4287 requires whenever an entry has none.
- The first image is `media:content` + `media:thumbnail` (Media RSS), directly in the item.
- Related articles are an HTML list in `content:encoded` (RSS) / `<content type="html">` (Atom),
  after the excerpt, since readers show that content instead of the summary.
- GUIDs are `isPermaLink="false"`: they stay when an article's URL changes. The id is the
  GUID in the all feed and a `urn:uuid:` of (feed, GUID) elsewhere (`FeedKey.entry_id`), the
  same in RSS and Atom; Atom needs a URI: a URL or a `urn:` with a namespace of 2+ characters.
- Atom `<updated>` is the item's last visible edit (`FeedItem.updated`), else its date.
- An entry without excerpt and without related links gets its title as summary: an Atom entry
  with neither summary nor content draws a W3C warning.
- `&` and `<` are written `&#x26;` / `&#x3C;` (see `_hex_refs`), the RSS Profile's spelling
  for plain text. One case still draws a W3C warning, by design of its heuristic: a title,
  name or category that literally contains an HTML end tag such as `</b>`.

Speed: an item's `<item>` and `<entry>` elements are built once, here, and lent to every
feed it is in (`_SharedEntry`); feedgen still writes each feed around them. Built here, they
skip feedgen's per-entry setters and checks, and its locale switch for every date; they are
the elements feedgen's FeedEntry writes for the same values (tests/test_render_entries.py).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseExtension
from feedgen.ext.dc import DcEntryExtension, DcExtension
from feedgen.ext.media import MediaEntryExtension, MediaExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml.etree import Element, SubElement  # type: ignore[import-untyped]

from aggregator.model import FeedFormat, FeedItem, FeedPlan, RenderedFile
from aggregator.output.indexes import render_indexes
from aggregator.output.jsonfeed import item_json, item_text, render_json_feed
from aggregator.output.text import item_html, item_title, unique, xml_safe

__all__ = ["GENERATOR", "clear_cache", "render_feed", "render_indexes"]

GENERATOR = "aggregator"
"""The `<generator>` text: no version, so an upgrade alone does not rewrite every feed."""

RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"

# A cold build renders each article into every feed it is in (all, its topics, its provider):
# its entry is built once and lent to each. One cached item costs about 20 kB (feedgen's
# entry and both formats' elements), so 8192 items stay under ~170 MB, and hold a full build
# (340 feeds x 50 items is 5000-7000 distinct items) for the next, incremental, builds.
_ENTRY_CACHE_SIZE = 8192


ATOM_NS = "http://www.w3.org/2005/Atom"


class _HubLinks(BaseExtension):  # type: ignore[misc]  # feedgen has no type hints
    """`<atom:link rel="hub" href=…/>` in the RSS `<channel>`, one per WebSub hub.

    feedgen's RSS writer keeps only the `rel="self"` link of `fg.link()` (python-feedgen
    #122) and takes the channel's `<link>` from the last link given: an extension adds the
    hub links without patching feedgen, and the site's page stays the channel's `<link>`.
    Google's hub and websub.rocks look for these under `/rss/channel`.
    """

    def __init__(self) -> None:
        self.hubs: tuple[str, ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {"atom": ATOM_NS}

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]
        for hub in self.hubs:
            xml_elem("{%s}link" % ATOM_NS, channel, href=hub, rel="hub")  # noqa: UP031
        return feed


def render_feed(plan: FeedPlan) -> tuple[RenderedFile, ...]:
    """Render `plan` in each of `plan.formats`, in that order (RSS 2.0 at
    `plan.key.rss_path`, Atom 1.0 at `plan.key.atom_path`, JSON Feed 1.1 at
    `plan.key.json_path`).

    Items keep the plan's order (newest first). Nothing depends on the clock: the same plan
    gives the same bytes. Raises `ValueError` for a naive datetime.
    """
    files: dict[FeedFormat, RenderedFile] = {}
    xml_formats: list[FeedFormat] = [f for f in plan.formats if f is not FeedFormat.JSON]
    # Each item's id in this feed, made once for every format (a UUID each: see `entry_id`),
    # and its shared entry, looked up once (the lookup hashes the whole item).
    ids = {item.guid: xml_safe(plan.key.entry_id(item.guid)) for item in plan.items}
    entries = [_entry(item) for item in plan.items]
    if xml_formats:
        with _LOCK:
            _Round.current += 1
            _Round.ids = ids
            files.update(_render(plan, entries, xml_formats))
    if FeedFormat.JSON in plan.formats:
        texts = [entry.json() for entry in entries]
        files[FeedFormat.JSON] = render_json_feed(plan, ids, texts)
    return tuple(files[f] for f in plan.formats)


def _render(
    plan: FeedPlan, entries: list[_SharedEntry], formats: list[FeedFormat]
) -> dict[FeedFormat, RenderedFile]:
    fg = _feed(plan, entries)
    # One generator serves both formats; what differs is set before each is serialised:
    # - the rel="self" link. RSS takes its <link> from the last link given, so the alternate
    #   (home page) goes last;
    # - the description: readers take an RSS channel description as HTML, so it is escaped
    #   there, while Atom's subtitle (feedgen writes no type) is plain text.
    description = xml_safe(plan.description).strip() or fg.title()  # RSS requires one
    home = {"href": xml_safe(plan.home_url), "rel": "alternate", "type": "text/html"}
    # - the WebSub hubs: Atom writes every link given (self, then the hubs); RSS gets them
    #   from the `_HubLinks` extension, since its writer would drop them.
    hubs = [{"href": xml_safe(hub), "rel": "hub"} for hub in plan.hubs]
    files = {}
    if FeedFormat.RSS in formats:
        rss_self = {"href": xml_safe(plan.rss_url), "rel": "self", "type": RSS_TYPE}
        fg.link([rss_self, home], replace=True)
        fg.description(html.escape(description, quote=False))
        rss = _hex_refs(fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True))
        files[FeedFormat.RSS] = RenderedFile(plan.key.rss_path, rss)
    if FeedFormat.ATOM in formats:
        atom_self = {"href": xml_safe(plan.atom_url), "rel": "self", "type": ATOM_TYPE}
        fg.link([atom_self, *hubs, home], replace=True)
        fg.description(description)
        atom = _hex_refs(fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True))
        files[FeedFormat.ATOM] = RenderedFile(plan.key.atom_path, atom)
    return files


def _hex_refs(xml: bytes) -> bytes:
    """Spell lxml's `&amp;` and `&lt;` as `&#x26;` and `&#x3C;`: the same characters to any
    XML parser, and the RSS Profile's way to say "this `&` / `<` is plain text, not markup"
    (the W3C validator then does not warn that a title like `Why <canvas>?` holds HTML).

    Lossless because lxml writes `&` and `<` only as these two references in text and
    attribute values, and `&amp;lt;` (a literal "&lt;") becomes `&#x26;lt;`, never `&#x3C;`.
    """
    return xml.replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")


def _feed(plan: FeedPlan, entries: list[_SharedEntry]) -> Any:
    """A FeedGenerator with the channel-level fields of `plan` and its items' `entries`."""
    fg = FeedGenerator()
    # register_extension with the classes, not load_extension("media"): that one first tries
    # to import a module feedgen does not ship (feedgen.ext.media_entry), a failed import
    # that searches the disk again on every call.
    fg.register_extension("media", MediaExtension, MediaEntryExtension, atom=True, rss=True)
    # dc:creator is the provider's name in RSS only: Atom has <author><name> for that.
    fg.register_extension("dc", DcExtension, DcEntryExtension, atom=False, rss=True)
    if plan.hubs:
        # No entry class: entries have nothing of their own to add (feedgen skips them).
        fg.register_extension("websub", _HubLinks, None, atom=False, rss=True)
        fg.websub.hubs = tuple(xml_safe(hub) for hub in plan.hubs)
    title = xml_safe(plan.title).strip() or plan.key.stem
    fg.title(title)
    fg.id(xml_safe(plan.atom_url))
    fg.language(plan.language)
    fg.updated(_utc(plan.updated))  # also lastBuildDate; without it feedgen uses the clock
    fg.generator(GENERATOR)  # feedgen's default carries its version and URI
    # Atom needs an author on the feed when an entry has none (an article without provider).
    fg.author(name=title)
    for entry in entries:
        fg.add_entry(entry, order="append")
    return fg


class _Round:
    """Which render is in progress, and its items' ids in that feed (changed under `_LOCK`
    only): see `_SharedEntry`."""

    current = 0
    ids: dict[str, str] = {}  # noqa: RUF012 - replaced whole, never changed in place


# _SharedEntry moves one lxml element from feed to feed, so two renders must not interleave.
# Rendering holds the GIL almost throughout anyway: the lock costs no parallelism.
_LOCK = threading.Lock()


class _SharedEntry(FeedEntry):  # type: ignore[misc]  # feedgen has no type hints
    """A FeedEntry whose `<item>` and `<entry>` elements are built once and lent.

    feedgen rebuilds an entry's elements every time a feed is serialised, and one article is
    in several feeds (all, each topic, its provider). Here the elements are built on first
    use (`_rss_item`, `_atom_entry`) and then handed out as they are: appending an lxml
    element to another feed's tree *moves* it there, out of the previous feed's tree, which
    is serialised already and dropped. Copying instead costs more than a third of a warm
    build. Within one render an element is lent once; the same item listed twice gets a
    copy the second time.

    The one part that differs from feed to feed is the entry's id (`FeedKey.entry_id`): it
    is written into the lent element's `<guid>` / `<id>` each time it is lent.
    """

    def __init__(self, item: FeedItem) -> None:
        super().__init__()
        self.item = item
        self._parts: _EntryParts | None = None
        self._json: str | None = None
        self._built: dict[str, tuple[Any, Any]] = {}
        self._lent_in: dict[str, int] = {}

    def register_extension(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to register: the elements are built here, extensions' parts included
        (feedgen registers the feed's extensions on each entry it is given)."""

    def rss_entry(self, extensions: bool = True) -> Any:
        return self._lend("rss", _rss_item)

    def atom_entry(self, extensions: bool = True) -> Any:
        return self._lend("atom", _atom_entry)

    def json(self) -> str:
        """The item's JSON Feed text, without its id (`jsonfeed.item_text`), made once."""
        if self._json is None:
            self._json = item_text(self.item)
        return self._json

    def _lend(self, kind: str, build: Callable[[_EntryParts], tuple[Any, Any]]) -> Any:
        built = self._built.get(kind)
        if built is None:
            if self._parts is None:
                self._parts = _parts(self.item)
            built = self._built[kind] = build(self._parts)
        element, id_element = built
        if self._lent_in.get(kind) == _Round.current:
            element = element.__copy__()  # listed twice in this feed: lxml copies the subtree
            id_element = element.find(_ID_TAGS[kind])
        else:
            self._lent_in[kind] = _Round.current
        id_element.text = _Round.ids[self.item.guid]
        return element


# Where the id is in each format's entry element (written without a namespace prefix).
_ID_TAGS = {"rss": "guid", "atom": "id"}


@lru_cache(maxsize=_ENTRY_CACHE_SIZE)
def _entry(item: FeedItem) -> _SharedEntry:
    """The feedgen entry of one item, shared by every feed the item is in.

    Safe to share: it depends on the item alone. The key is the frozen FeedItem, so an
    edited article is a new key; dates are normalised to UTC, so two equal items (same
    instant, different offsets) give the same output.
    """
    return _SharedEntry(item)


@dataclass(frozen=True, slots=True)
class _EntryParts:
    """The texts of one item's entry, as both formats write them (each made XML-safe)."""

    guid: str
    title: str
    url: str
    published: datetime  # UTC, whole seconds
    updated: datetime
    summary: str | None  # HTML
    body: str | None  # HTML
    categories: list[str]
    author: str  # "" for none
    image: dict[str, str] | None  # media:content / media:thumbnail attributes but the url


def _parts(item: FeedItem) -> _EntryParts:
    article = item.article
    # RSS description is HTML to every reader: escaped so the text shows as written. Atom
    # gets the same value as type="html" so both formats carry the very same string.
    summary, body = item_html(article)  # the JSON Feed item carries the same strings
    author = xml_safe(article.provider.name).strip() if article.provider is not None else ""
    image = None
    if article.images:
        first = article.images[0]
        image = {"url": xml_safe(first.url)}
        if first.height:
            image["height"] = str(first.height)
        if first.width:
            image["width"] = str(first.width)
    return _EntryParts(
        guid=xml_safe(item.guid),
        title=item_title(article),
        url=xml_safe(article.url),
        published=_utc(item.date),
        # The last edit readers should see; RSS has no element for it, so readers of RSS
        # see an edit by its changed content only.
        updated=_utc(item.updated),
        summary=summary,
        body=body,
        categories=unique(xml_safe(t).strip() for t in article.topics),
        author=author,
        image=image,
    )


# The elements are those feedgen's FeedEntry (with the media and dc extensions) writes for
# the same values set through its setters, in its order (tests/test_render.py compares the
# two): built here, the setters' checks, copies and locale switches are not paid per item.
MEDIA_NS = "http://search.yahoo.com/mrss/"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
DC_NS = "http://purl.org/dc/elements/1.1/"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc2822(when: datetime) -> str:
    """feedgen's `formatRFC2822` of a UTC datetime (strftime in the C locale)."""
    return (
        f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} +0000"
    )


def _text(parent: Any, tag: str, text: str) -> Any:
    element = SubElement(parent, tag)
    element.text = text
    return element


def _media(entry: Any, image: dict[str, str] | None) -> None:
    """media:content and media:thumbnail directly in the entry (feedgen's `group=None`)."""
    if image is None:
        return
    content = SubElement(entry, f"{{{MEDIA_NS}}}content")
    content.set("url", image["url"])
    content.set("medium", "image")
    for name in ("height", "width"):
        if name in image:
            content.set(name, image[name])
    thumbnail = SubElement(entry, f"{{{MEDIA_NS}}}thumbnail")
    for name in ("url", "height", "width"):
        if name in image:
            thumbnail.set(name, image[name])


def _rss_item(parts: _EntryParts) -> tuple[Any, Any]:
    """(the `<item>`, its `<guid>`)."""
    entry = Element("item")
    _text(entry, "title", parts.title)
    _text(entry, "link", parts.url)
    if parts.summary is not None:
        _text(entry, "description", parts.summary)
        if parts.body is not None:
            _text(entry, f"{{{CONTENT_NS}}}encoded", parts.body)
    elif parts.body is not None:
        _text(entry, "description", parts.body)
    guid = _text(entry, "guid", parts.guid)
    guid.set("isPermaLink", "false")
    for term in parts.categories:
        _text(entry, "category", term)
    _text(entry, "pubDate", _rfc2822(parts.published))
    _media(entry, parts.image)
    if parts.author:
        _text(entry, f"{{{DC_NS}}}creator", parts.author)
    return entry, guid


def _atom_entry(parts: _EntryParts) -> tuple[Any, Any]:
    """(the `<entry>`, its `<id>`)."""
    entry = Element("entry")
    id_element = _text(entry, "id", parts.guid)
    _text(entry, "title", parts.title)
    _text(entry, "updated", parts.updated.isoformat())
    if parts.author:
        author = SubElement(entry, "author")
        _text(author, "name", parts.author)
    _html(entry, "content", parts.body)
    # No rel: feedgen's writer looks for it on the element it just made (always none).
    SubElement(entry, "link", href=parts.url)
    _html(entry, "summary", parts.summary)
    for term in parts.categories:
        SubElement(entry, "category", term=term)
    _text(entry, "published", parts.published.isoformat())
    _media(entry, parts.image)
    return entry, id_element


def _html(entry: Any, tag: str, text: str | None) -> None:
    """An Atom text construct of type html (feedgen's `_add_text_elm`)."""
    if text is None:
        return
    element = SubElement(entry, tag)
    if text:
        element.text = text
    element.set("type", "html")


def _utc(when: datetime) -> datetime:
    """`when` in UTC, whole seconds: RSS dates have no fractions, and Atom should agree."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: feed dates must be UTC-aware")
    return when.astimezone(UTC).replace(microsecond=0)


def clear_cache() -> None:
    """Forget the shared entries (tests, or a long-running daemon that wants memory back)."""
    _entry.cache_clear()
    item_json.cache_clear()
    item_html.cache_clear()


def limit_cache(entries: int) -> None:
    """Forget the shared entries once there are more than `entries` of them.

    A cold build in a worker wants them all (an article is in several feeds); a daemon's
    main process renders a few feeds per build for weeks, and must not grow to the full
    cache (about 20 kB an entry).
    """
    for cache in (_entry, item_json, item_html):
        if cache.cache_info().currsize > entries:
            cache.cache_clear()
