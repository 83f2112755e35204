"""render.py and indexes.py: feeds and indexes read back the way readers read them.

Feeds are parsed with feedparser (what most Python readers use) and, where feedparser
normalises too much, with the XML itself. The indexes are read with xml.etree and html.parser.
"""

from __future__ import annotations

import html
import json
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import feedparser
import pytest

from aggregator.model import (
    ENTRY_ID_NAMESPACE,
    Article,
    FeedFormat,
    FeedItem,
    FeedKey,
    FeedKind,
    FeedPlan,
    FeedSummary,
    Image,
    Provider,
    RelatedLink,
)
from aggregator.output import render, render_feed, render_indexes

BASE = "https://feeds.example.org/out/"
T0 = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
ATOM_NS = "{http://www.w3.org/2005/Atom}"

# Text a reader must show exactly as written: markup-like text, entities, quotes, a Windows
# path, accents, CJK and an emoji outside the BMP.
NASTY = (
    'AT&T <b>new</b> & <script>alert("x")</script> &amp; "double" \'single\' '
    "\u201ccurly\u201d caf\u00e9 na\u00efve C:\\temp 5 < 6 > 4 \u65e5\u672c\u8a9e \U0001f600"
)


def article(n: int = 1, **changes: Any) -> Article:
    """A published article with every field the feeds show."""
    base = Article(
        source=f"private/drafts/{n}.md",
        url=f"https://news.example.com/{n}?a=1&b=2",
        title=f"Story {n}",
        excerpt=f"Excerpt of story {n}.",
        published=True,
        published_at=T0 - timedelta(hours=n),
        provider=Provider("Example News", "example.com"),
        topics=("AI", "Computer Vision"),
        images=(Image(f"https://img.example.com/{n}.jpg?w=1200&h=800", 1200, 799),),
        related=(
            RelatedLink("Related one", "https://other.example.net/r1", "Other", T0),
            RelatedLink("Related two", "https://other.example.net/r2"),
        ),
    )
    return replace(base, **changes)


def item(a: Article, guid: str | None = None) -> FeedItem:
    assert a.published_at is not None
    return FeedItem(guid or a.url, a.published_at, a)


def plan(items: tuple[FeedItem, ...] = (), key: FeedKey | None = None, **changes: Any) -> FeedPlan:
    key = key or FeedKey.everything()
    base = FeedPlan(
        key=key,
        title="All articles",
        description="Every article, newest first",
        items=items,
        updated=items[0].date if items else T0,
        rss_url=BASE + key.rss_path,
        atom_url=BASE + key.atom_path,
        home_url=BASE + "index.html",
        language="en",
        json_url=BASE + key.json_path,
        # The XML formats only: the tests below index the files as (RSS, Atom);
        # tests/test_jsonfeed.py renders all three.
        formats=(FeedFormat.RSS, FeedFormat.ATOM),
    )
    return replace(base, **changes)


def parse(data: bytes) -> Any:
    """feedparser's view of a feed; a bozo feed fails the test right there."""
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


@pytest.fixture(autouse=True)
def _fresh_entry_cache() -> None:
    # Entries are cached across calls; each test starts from nothing so none passes thanks
    # to another's leftovers.
    render.clear_cache()


# --- feeds ---------------------------------------------------------------------------------


def test_paths_and_formats() -> None:
    rss, atom = render_feed(plan((item(article()),), key=FeedKey(FeedKind.TOPIC, "ai")))
    assert (rss.path, atom.path) == ("topics/ai.rss.xml", "topics/ai.atom.xml")
    assert parse(rss.data).version == "rss20"
    assert parse(atom.data).version == "atom10"
    assert rss.data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feed_level_fields(fmt: str) -> None:
    p = plan((item(article()),), title=NASTY, description="About " + NASTY, language="fr")
    data = render_feed(p)[0 if fmt == "rss" else 1].data
    feed = parse(data).feed
    assert feed.title == NASTY
    # RSS descriptions are HTML to readers (feedparser says so too), Atom's subtitle is text.
    if fmt == "rss":
        assert feed.subtitle_detail.type == "text/html"
        assert "<" not in feed.subtitle
        assert html.unescape(feed.subtitle) == "About " + NASTY
    else:
        assert feed.subtitle == "About " + NASTY
    assert feed.language == "fr"
    assert feed.updated_parsed[:6] == p.updated.timetuple()[:6]
    links = {link.rel: link.href for link in feed.links}
    assert links["self"] == (p.rss_url if fmt == "rss" else p.atom_url)
    assert links["alternate"] == p.home_url
    assert feed.generator == render.GENERATOR
    assert b"version=" not in data.split(b"<generator")[1].split(b">")[0]
    if fmt == "atom":
        assert feed.id == p.atom_url
        assert feed.author == NASTY  # the feed-level author RFC 4287 needs


def test_items_keep_the_plan_order() -> None:
    # Oldest first on purpose: the renderer must not sort (nor reverse, as feedgen would).
    items = tuple(item(article(n)) for n in (5, 1, 3))
    for data in (f.data for f in render_feed(plan(items))):
        assert [e.id for e in parse(data).entries] == [i.guid for i in items]


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_item_fields_round_trip(fmt: str) -> None:
    a = article(
        title=NASTY,
        excerpt=NASTY + "\nsecond line",
        topics=(NASTY, "AI", "AI"),
        provider=Provider(NASTY),
    )
    it = item(a, guid="urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e")
    data = render_feed(plan((it,)))[0 if fmt == "rss" else 1].data
    (entry,) = parse(data).entries
    assert entry.title == NASTY
    assert entry.link == a.url
    assert entry.id == it.guid
    assert entry.published_parsed[:6] == it.date.timetuple()[:6]
    if fmt == "atom":  # RSS items have pubDate only
        assert entry.updated_parsed[:6] == it.date.timetuple()[:6]
    # Summaries are HTML to readers: unescaped once, they are the excerpt, character for
    # character, with no element in them.
    assert entry.summary_detail.type == "text/html"
    assert "<" not in entry.summary
    assert html.unescape(entry.summary) == a.excerpt
    assert [t.term for t in entry.tags] == [NASTY, "AI"]
    assert entry.author == NASTY


def test_rss_guid_is_not_a_permalink() -> None:
    rss, _ = render_feed(plan((item(article()),)))
    guid = ET.fromstring(rss.data).find("channel/item/guid")
    assert guid is not None
    assert guid.get("isPermaLink") == "false"


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_first_image_as_media_thumbnail_and_content(fmt: str) -> None:
    second = Image("https://img.example.com/second.jpg", 10, 10)
    a = article(images=(Image("https://img.example.com/a.jpg?x=1&y=2", 640, 480), second))
    data = render_feed(plan((item(a),)))[0 if fmt == "rss" else 1].data
    (entry,) = parse(data).entries
    assert entry.media_thumbnail == [
        {"url": "https://img.example.com/a.jpg?x=1&y=2", "width": "640", "height": "480"}
    ]
    (content,) = entry.media_content
    assert content["url"] == "https://img.example.com/a.jpg?x=1&y=2"
    assert (content["medium"], content["width"], content["height"]) == ("image", "640", "480")
    assert b"second.jpg" not in data
    # Directly in the item, not in a media:group: some readers look nowhere else.
    root = ET.fromstring(data)
    element = root.find("channel/item") if fmt == "rss" else root.find(f"{ATOM_NS}entry")
    assert element is not None
    media = "{http://search.yahoo.com/mrss/}"
    assert [child.tag for child in element if child.tag.startswith(media)] == [
        media + "content",
        media + "thumbnail",
    ]


class _Html(HTMLParser):
    """The elements and text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def _html(fragment: str) -> _Html:
    parser = _Html()
    parser.feed(fragment)
    parser.close()
    return parser


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_related_links_are_escaped_links(fmt: str) -> None:
    related = (
        RelatedLink(NASTY, 'https://other.example.net/?q=<a>&r="1"', NASTY, T0),
        RelatedLink("Plain", "https://other.example.net/plain"),
        RelatedLink("Not a link", "javascript:alert(1)"),
    )
    a = article(excerpt="<i>excerpt</i>", related=related)
    data = render_feed(plan((item(a),)))[0 if fmt == "rss" else 1].data
    (entry,) = parse(data).entries
    body = _html(entry.content[0].value)
    # Only the list's own markup: nothing from the article became an element.
    assert {tag for tag, _ in body.tags} == {"p", "ul", "li", "a"}
    anchors = [attrs["href"] for tag, attrs in body.tags if tag == "a"]
    assert anchors == ['https://other.example.net/?q=<a>&r="1"', "https://other.example.net/plain"]
    assert NASTY in body.text
    assert "<i>excerpt</i>" in body.text
    assert f"{NASTY} ({NASTY}, 2024-05-01)" in body.text
    assert "Not a link" in body.text


def test_nothing_else_from_the_article_leaks() -> None:
    a = article(source="private/secret-draft.md", published=True)
    for f in render_feed(plan((item(a),))):
        assert b"secret-draft" not in f.data
        assert b"private/" not in f.data


def test_byte_stable_and_not_from_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    p = plan(tuple(item(article(n)) for n in range(3)))
    first = render_feed(p)

    # feedgen stamps datetime.now() wherever a date is left unset: move its clock a year on
    # and render an equal plan (new objects, empty cache); every byte must be the same.
    import feedgen.entry
    import feedgen.feed

    class _AnyDatetime(type):
        # feedgen checks isinstance(value, datetime) against the name it imported.
        def __instancecheck__(cls, value: object) -> bool:
            return isinstance(value, datetime)

    class _Later(datetime, metaclass=_AnyDatetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime(2030, 1, 1, tzinfo=UTC)

    monkeypatch.setattr(feedgen.feed, "datetime", _Later)
    monkeypatch.setattr(feedgen.entry, "datetime", _Later)
    render.clear_cache()
    again = render_feed(plan(tuple(item(article(n)) for n in range(3))))
    assert again == first
    assert b"2030" not in again[0].data + again[1].data


def test_same_instant_in_another_offset_renders_the_same() -> None:
    a = article()
    assert a.published_at is not None
    elsewhere = a.published_at.astimezone(timezone(timedelta(hours=2)))
    utc = render_feed(plan((FeedItem("urn:example:1", a.published_at, a),)))
    render.clear_cache()
    local = render_feed(plan((FeedItem("urn:example:1", elsewhere, a),), updated=elsewhere))
    assert local == utc


def test_an_edited_article_is_rendered_anew() -> None:
    before = render_feed(plan((item(article(), guid="urn:example:1"),)))
    after = render_feed(plan((item(article(title="Corrected"), guid="urn:example:1"),)))
    assert parse(after[1].data).entries[0].title == "Corrected"
    assert before != after


def test_items_shared_between_feeds_stay_in_each() -> None:
    # One item's elements are reused by every feed it is in; each feed must still list all
    # of its items, also when an item comes twice in one plan (a planner bug, not ours to
    # hide) and when the feeds are rendered again in another order.
    a, b = item(article(1)), item(article(2))
    plans = [
        plan((a, b)),
        plan((b,), key=FeedKey(FeedKind.TOPIC, "ai")),
        plan((a, a, b), key=FeedKey(FeedKind.PROVIDER, "example-com")),
    ]
    first = [render_feed(p) for p in plans]
    again = [render_feed(p) for p in reversed(plans)][::-1]
    assert again == first
    for p, files in zip(plans, first, strict=True):
        for f in files:
            ids = [p.key.entry_id(i.guid) for i in p.items]
            assert [e.id for e in parse(f.data).entries] == ids


def test_threads_render_the_same_bytes() -> None:
    plans = [
        plan(tuple(item(article(n)) for n in range(k, k + 5)), key=FeedKey(FeedKind.TOPIC, f"t{k}"))
        for k in range(8)
    ]
    expected = [render_feed(p) for p in plans]
    render.clear_cache()
    results: dict[int, list[Any]] = {}

    def work(worker: int) -> None:
        results[worker] = [render_feed(p) for p in plans]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_empty_feed_is_a_valid_feed(fmt: str) -> None:
    p = plan((), title="Nothing yet", updated=T0)
    data = render_feed(p)[0 if fmt == "rss" else 1].data
    parsed = parse(data)
    assert parsed.entries == []
    assert parsed.feed.title == "Nothing yet"
    assert parsed.feed.updated_parsed[:6] == T0.timetuple()[:6]
    if fmt == "atom":
        root = ET.fromstring(data)
        assert root.find(f"{ATOM_NS}author/{ATOM_NS}name") is not None


def test_item_without_provider_images_related_or_excerpt() -> None:
    a = article(provider=None, images=(), related=(), excerpt="", topics=())
    rss, atom = render_feed(plan((item(a),)))
    for data in (rss.data, atom.data):
        (entry,) = parse(data).entries
        assert "media_thumbnail" not in entry
        assert "media_content" not in entry
        assert "tags" not in entry
        assert "content" not in entry
        # The title stands in as summary: an Atom entry needs some text besides its title.
        assert html.unescape(entry.summary) == a.title
    assert b"dc:creator" not in rss.data
    entry_xml = ET.fromstring(atom.data).find(f"{ATOM_NS}entry")
    assert entry_xml is not None
    assert entry_xml.find(f"{ATOM_NS}author") is None


def test_characters_xml_cannot_carry_are_dropped() -> None:
    a = article(title="Bell\x07 and\x00 nul", excerpt="form\x0cfeed", topics=("A\x1bI",))
    for f in render_feed(plan((item(a),))):
        (entry,) = parse(f.data).entries
        assert entry.title == "Bell and nul"
        assert html.unescape(entry.summary) == "formfeed"
        assert [t.term for t in entry.tags] == ["AI"]


def test_ampersand_and_less_than_are_hex_references() -> None:
    a = article(title="Why <canvas> & friends")
    rss, atom = render_feed(plan((item(a),)))
    for data in (rss.data, atom.data):
        assert b"Why &#x3C;canvas&gt; &#x26; friends" in data
        assert b"&amp;" not in data
        assert b"&lt;" not in data


def test_naive_datetime_is_refused() -> None:
    a = article()
    naive = FeedItem("urn:example:1", datetime(2024, 1, 1), a)  # no tzinfo, on purpose
    with pytest.raises(ValueError, match="naive"):
        render_feed(plan((naive,)))


# --- indexes -------------------------------------------------------------------------------


def summaries() -> list[FeedSummary]:
    def summary(key: FeedKey, title: str, items: int) -> FeedSummary:
        return FeedSummary(
            key, title, BASE + key.rss_path, BASE + key.atom_path, items,
            json_url=BASE + key.json_path,
        )  # fmt: skip

    return [
        summary(FeedKey(FeedKind.PROVIDER, "forbes-com"), "Forbes", 3),
        summary(FeedKey(FeedKind.TOPIC, "vision"), "Vision & <Sight>", 1),
        summary(FeedKey.everything(), "All articles", 4),
        summary(FeedKey(FeedKind.TOPIC, "ai"), "AI", 2),
    ]


def indexes(feeds: list[FeedSummary] | None = None) -> tuple[bytes, bytes]:
    opml, page = render_indexes(
        summaries() if feeds is None else feeds,
        title="News & <more>",
        home_url=BASE + "index.html",
        opml_url=BASE + "index.opml",
    )
    assert (opml.path, page.path) == ("index.opml", "index.html")
    return opml.data, page.data


def test_opml_lists_every_feed_grouped() -> None:
    opml, _ = indexes()
    root = ET.fromstring(opml)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert html.unescape(root.findtext("head/title") or "") == "News & <more>"
    assert root.find("head/dateCreated") is None  # no clock-made dates
    groups = root.findall("body/outline")
    assert [g.get("text") for g in groups] == ["All", "Topics", "Providers"]
    listed = {
        g.get("text"): [
            (html.unescape(o.get("text") or ""), o.get("type"), o.get("xmlUrl"))
            for o in g.findall("outline")
        ]
        for g in groups
    }
    assert listed == {
        "All": [("All articles", "rss", BASE + "all.rss.xml")],
        "Topics": [
            ("AI", "rss", BASE + "topics/ai.rss.xml"),
            ("Vision & <Sight>", "rss", BASE + "topics/vision.rss.xml"),
        ],
        "Providers": [("Forbes", "rss", BASE + "providers/forbes-com.rss.xml")],
    }
    for outline in root.iter("outline"):
        if outline.get("type") == "rss":
            assert outline.get("title") == outline.get("text")
            assert outline.get("htmlUrl") == BASE + "index.html"


def test_html_links_both_formats_of_every_feed() -> None:
    """The page's content in depth is tested in test_indexes.py."""
    _, page = indexes()
    text = page.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>\n<html lang=")
    parsed = _html(text)
    anchors = {attrs["href"] for tag, attrs in parsed.tags if tag == "a"}
    for feed in summaries():
        assert {feed.rss_url, feed.atom_url, feed.json_url} <= anchors
    assert BASE + "index.opml" in anchors
    # Titles are text: "<Sight>" and "<more>" did not become elements.
    assert "sight" not in {tag for tag, _ in parsed.tags}
    assert "more" not in {tag for tag, _ in parsed.tags}
    assert "Vision & <Sight>" in parsed.text
    assert "News & <more>" in parsed.text


def test_indexes_do_not_depend_on_input_order() -> None:
    assert indexes() == indexes(list(reversed(summaries())))


def test_indexes_leave_out_empty_groups() -> None:
    only_all = [f for f in summaries() if f.key.kind is FeedKind.ALL]
    opml, page = indexes(only_all)
    assert [g.get("text") for g in ET.fromstring(opml).findall("body/outline")] == ["All"]
    assert b">Topics</h2>" not in page


def test_each_feed_gives_its_items_ids_of_its_own_the_same_in_every_format() -> None:
    # newsboat and Tiny Tiny RSS keep one copy per id across feeds (docs/readers.md): the
    # all feed keeps the GUID, every other feed a UUID of (feed, GUID), stable forever.
    a = item(article(1))
    keys = [FeedKey.everything(), FeedKey(FeedKind.TOPIC, "ai"), FeedKey(FeedKind.PROVIDER, "x")]
    ids = []
    for key in keys:
        files = render_feed(plan((a,), key=key))
        per_format = {parse(f.data).entries[0].id for f in files if not f.path.endswith(".json")}
        per_format |= {
            json.loads(f.data)["items"][0]["id"] for f in files if f.path.endswith(".json")
        }
        assert per_format == {key.entry_id(a.guid)}
        ids.append(key.entry_id(a.guid))
    assert ids[0] == a.guid
    assert len(set(ids)) == 3
    # The rule itself, pinned: changing it would make every topic item new in every reader.
    assert FeedKey(FeedKind.TOPIC, "ai").entry_id("https://news.example.com/1") == (
        "urn:uuid:"
        + str(uuid.uuid5(uuid.UUID(ENTRY_ID_NAMESPACE), "topics/ai\nhttps://news.example.com/1"))
    )
    assert ENTRY_ID_NAMESPACE == "5d0c3a4e-8f7b-4c1e-9a62-0b7f3c9e2d41"


def test_an_edited_excerpt_is_new_in_every_format() -> None:
    """The summary and body HTML are made once per article for the XML and JSON formats
    (`text.item_html`): an edit is a new article, so no format keeps the old text."""
    formats = (FeedFormat.RSS, FeedFormat.ATOM, FeedFormat.JSON)
    for excerpt in ("First excerpt.", "Second excerpt."):
        files = render_feed(
            plan((item(article(excerpt=excerpt), guid="urn:example:1"),), formats=formats)
        )
        json_item = json.loads(files[2].data)["items"][0]
        assert json_item["summary"] == excerpt
        assert f"<p>{excerpt}</p>" in json_item["content_html"]
        for xml in files[:2]:
            assert parse(xml.data).entries[0].content[0].value == json_item["content_html"]
