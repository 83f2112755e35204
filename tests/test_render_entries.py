"""render.py builds each item's `<item>` and `<entry>` itself: the bytes must be those
feedgen's own FeedEntry writes for the same values, set through its setters.

The reference below is how the renderer set up feedgen's entries before it built the elements
itself; each feed is rendered both ways, whole, and compared byte for byte.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from feedgen.entry import FeedEntry
from feedgen.ext.dc import DcEntryExtension
from feedgen.ext.media import MediaEntryExtension

from aggregator.model import (
    Article,
    FeedFormat,
    FeedItem,
    FeedKey,
    FeedKind,
    FeedPlan,
    Image,
    Provider,
    RelatedLink,
)
from aggregator.output import render
from aggregator.output.text import item_html, item_title, unique, xml_safe

BASE = "https://feeds.example.org/"
T0 = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)


def reference_entry(item: FeedItem, key: FeedKey) -> Any:
    """feedgen's entry for `item` in the feed `key`, set up through its setters."""
    article = item.article
    entry = FeedEntry()
    entry.register_extension("media", MediaEntryExtension, atom=True, rss=True)
    entry.register_extension("dc", DcEntryExtension, atom=False, rss=True)
    entry.guid(xml_safe(key.entry_id(item.guid)), permalink=False)
    entry.title(item_title(article))
    entry.link(href=xml_safe(article.url), rel="alternate")
    entry.published(render._utc(item.date))
    entry.updated(render._utc(item.updated))
    summary, body = item_html(article)
    if summary is not None:
        entry.summary(summary, type="html")
    if body is not None:
        entry.content(body, type="html")
    for topic in unique(xml_safe(t).strip() for t in article.topics):
        entry.category(term=topic)
    if article.provider is not None:
        name = xml_safe(article.provider.name).strip()
        if name:
            entry.author(name=name)
            entry.dc.dc_creator(name)
    if article.images:
        image = article.images[0]
        size = {}
        if image.width:
            size["width"] = str(image.width)
        if image.height:
            size["height"] = str(image.height)
        url = xml_safe(image.url)
        entry.media.content(url=url, medium="image", group=None, **size)
        entry.media.thumbnail(url=url, group=None, **size)
    return entry


def articles() -> list[Article]:
    """Articles with every field, and each field missing, odd or empty in turn."""
    full = Article(
        source="a.md",
        url="https://news.example.com/1?a=1&b=<2>",
        title='AT&T <b>new</b> "quoted" caf\u00e9 \U0001f600',
        excerpt="An excerpt & <i>more</i>\x01",
        published=True,
        published_at=T0,
        provider=Provider("Example \u2028News", "example.com"),
        topics=("AI", "ai", " Computer Vision ", "", "X\x02"),
        images=(Image("https://img.example.com/1.jpg?w=1&h=2", 1200, 799), Image("https://x/2")),
        related=(
            RelatedLink("Related & one", "https://other.example.net/r1", "Other", T0),
            RelatedLink("", "javascript:alert(1)"),
        ),
    )
    return [
        full,
        replace(full, excerpt=""),
        replace(full, related=()),
        replace(full, excerpt="", related=()),
        replace(full, provider=None, topics=(), images=()),
        replace(full, provider=Provider("  ")),
        replace(full, title="   ", images=(Image("https://img.example.com/3.png", None, 50),)),
        replace(full, images=(Image("https://img.example.com/4.png", 640, None),)),
        replace(full, images=(Image("https://img.example.com/5.png"),)),
        replace(full, published_at=datetime(1900, 1, 1, tzinfo=UTC)),
        replace(
            full, published_at=datetime(2021, 12, 5, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7)))
        ),
    ]


def items() -> tuple[FeedItem, ...]:
    listed = []
    for n, a in enumerate(articles()):
        assert a.published_at is not None
        edited = a.published_at + timedelta(days=n) if n % 2 else None
        listed.append(FeedItem(f"guid-{n}&<", a.published_at, a, edited))
    return tuple(listed)


@pytest.mark.parametrize(
    "key", [FeedKey.everything(), FeedKey(FeedKind.TOPIC, "ai")], ids=["all", "topic"]
)
@pytest.mark.parametrize("hubs", [(), ("https://hub.example.org/",)], ids=["", "hubs"])
def test_entries_are_the_bytes_feedgen_writes(
    key: FeedKey, hubs: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = items()
    # An item listed twice in one feed too: its second element is a copy.
    listed = (*listed, listed[0])
    plan = FeedPlan(
        key=key,
        title="Feed & <title>",
        description="About it",
        items=listed,
        updated=T0,
        rss_url=BASE + key.rss_path,
        atom_url=BASE + key.atom_path,
        home_url=BASE + "index.html",
        language="en",
        json_url=BASE + key.json_path,
        hubs=hubs,
        formats=(FeedFormat.RSS, FeedFormat.ATOM),
    )
    render.clear_cache()
    ours = render.render_feed(plan)
    again = render.render_feed(plan)  # lent a second time, from the cache
    monkeypatch.setattr(render, "_entry", lambda item: reference_entry(item, key))
    theirs = render.render_feed(plan)
    assert [f.data for f in ours] == [f.data for f in theirs]
    assert [f.data for f in again] == [f.data for f in theirs]


def test_xml_safe_drops_exactly_the_characters_xml_cannot_carry() -> None:
    # XML 1.0's Char production; `xml_safe` lists its complement instead of negating it
    # (far cheaper to compile): every code point, kept or dropped as the production says.
    def allowed(c: int) -> bool:
        return c in (0x9, 0xA, 0xD) or 0x20 <= c <= 0xD7FF or 0xE000 <= c <= 0xFFFD or c >= 0x10000

    every = "".join(map(chr, range(0x110000)))
    assert xml_safe(every) == "".join(ch for ch in every if allowed(ord(ch)))
