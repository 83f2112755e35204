"""JSON Feed 1.1: valid against the spec's schema, the same items and strings as RSS/Atom."""

from __future__ import annotations

import copy
import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import feedparser
import pytest
from jsonfeedcheck import check_json_feed, schema_errors
from test_render import ATOM_NS, BASE, NASTY, article, item, plan

from aggregator.model import ALL_FORMATS, FeedFormat, FeedItem, FeedKey, FeedKind, Provider
from aggregator.output import dumps_indented, render_feed, rfc3339

HUB = "http://127.0.0.1:9/hub"


def three(p: Any) -> dict[FeedFormat, bytes]:
    files = render_feed(replace(p, formats=ALL_FORMATS))
    assert [f.path for f in files] == [p.key.rss_path, p.key.atom_path, p.key.json_path]
    return dict(zip(ALL_FORMATS, (f.data for f in files), strict=True))


def variety() -> tuple[FeedItem, ...]:
    """Items with and without excerpt, related links, provider, images, topics."""
    return (
        item(article(1, title=NASTY, excerpt=NASTY)),
        item(article(2, related=())),
        item(article(3, excerpt="", related=(), provider=None, images=(), topics=())),
        item(article(4, excerpt=""), guid="urn:aggregator:4"),
        item(article(5, provider=Provider("  ", None), topics=("AI", "AI", " "))),
    )


def test_the_json_feed_is_valid_and_lists_the_xml_feeds_items() -> None:
    key = FeedKey(FeedKind.TOPIC, "ai")
    files = three(plan(variety(), key=key))
    atom = feedparser.parse(files[FeedFormat.ATOM])
    rss = feedparser.parse(files[FeedFormat.RSS])
    guids = [e.id for e in atom.entries]
    assert guids == [e.id for e in rss.entries]
    feed = check_json_feed(files[FeedFormat.JSON], url=BASE + "topics/ai.json", guids=guids)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["home_page_url"] == BASE + "index.html"
    assert feed["language"] == "en"
    assert [i["url"] for i in feed["items"]] == [e.link for e in atom.entries]
    assert [i["title"] for i in feed["items"]] == [e.title for e in atom.entries]
    assert "hubs" not in feed


def test_items_carry_the_strings_atom_carries() -> None:
    files = three(plan(variety()))
    entries = ET.fromstring(files[FeedFormat.ATOM]).findall(f"{ATOM_NS}entry")
    items = json.loads(files[FeedFormat.JSON])["items"]
    for entry, it in zip(entries, items, strict=True):
        content = entry.find(f"{ATOM_NS}content")
        summary = entry.find(f"{ATOM_NS}summary")
        body = content if content is not None else summary
        assert body is not None
        # The HTML is escaped exactly as in Atom: markup in an excerpt stays text.
        assert it["content_html"] == body.text
        published = entry.find(f"{ATOM_NS}published")
        assert published is not None
        assert it["date_published"] == rfc3339(datetime.fromisoformat(published.text or ""))
    first = items[0]
    assert first["summary"] == NASTY.strip()
    assert first["content_text"] == NASTY.strip()
    assert "&lt;b&gt;new&lt;/b&gt;" in first["content_html"]
    assert first["image"] == "https://img.example.com/1.jpg?w=1200&h=800"
    assert first["authors"] == [{"name": "Example News"}]
    assert first["tags"] == ["AI", "Computer Vision"]
    bare = items[2]  # no excerpt, provider, image or topic
    assert bare["content_text"] == bare["title"] == "Story 3"
    assert not {"summary", "image", "authors", "tags"} & set(bare)
    assert items[4]["tags"] == ["AI"]
    assert "authors" not in items[4]  # a blank provider name is no author


def test_dates_are_rfc3339_utc_from_the_items_never_the_clock() -> None:
    first = three(plan(variety()))[FeedFormat.JSON]
    again = three(plan(variety()))[FeedFormat.JSON]
    assert first == again
    items = json.loads(first)["items"]
    assert items[0]["date_published"] == "2024-05-01T11:30:15Z"
    assert all("date_modified" not in i for i in items)


def test_bytes_are_stable_utf8_with_a_trailing_newline() -> None:
    data = three(plan(variety()))[FeedFormat.JSON]
    assert data.endswith(b"}\n")
    assert "日本語 😀".encode() in data  # not \u-escaped
    assert data == json.dumps(json.loads(data), ensure_ascii=False, indent=2).encode() + b"\n"


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        "",
        {"a": [], "b": {}, "c": [{}], "d": [[], [[]]]},
        {"items": [{"id": NASTY, "tags": ["x", "\u0000\u001f\u007f\u2028", '\\/"\n\t']}]},
        ["1", {"authors": [{"name": "é"}]}, ("t", "u")],
        {"n": 1, "f": 0.5, "t": True, "z": None, "nested": {"deep": [1, [2, {"x": "y"}]]}},
    ],
)
def test_the_fast_indented_writer_gives_json_dumps_bytes(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, ensure_ascii=False, indent=2)


@pytest.mark.parametrize("items", [(), variety()[:1], variety()])
def test_feed_bytes_are_json_dumps_bytes_with_and_without_items(
    items: tuple[FeedItem, ...],
) -> None:
    data = three(replace(plan(items), hubs=(HUB,)))[FeedFormat.JSON]
    feed = json.loads(data)
    assert len(feed["items"]) == len(items)
    assert data == json.dumps(feed, ensure_ascii=False, indent=2).encode() + b"\n"


def test_hubs_are_advertised_in_every_format() -> None:
    files = three(plan(variety(), hubs=(HUB, "https://hub.example.org/")))
    feed = json.loads(files[FeedFormat.JSON])
    assert schema_errors(feed) == []
    assert feed["hubs"] == [
        {"type": "WebSub", "url": HUB},
        {"type": "WebSub", "url": "https://hub.example.org/"},
    ]
    for fmt, self_url in (
        (FeedFormat.RSS, BASE + "all.rss.xml"),
        (FeedFormat.ATOM, BASE + "all.atom.xml"),
    ):
        parsed = feedparser.parse(files[fmt])
        assert not parsed.bozo
        links = [(link.rel, link.href) for link in parsed.feed.links]
        assert ("self", self_url) in links
        assert {("hub", HUB), ("hub", "https://hub.example.org/")} <= set(links)
        # The feed's own <link> stays the site's page, never a hub.
        assert parsed.feed.link == BASE + "index.html"
    rss = ET.fromstring(files[FeedFormat.RSS])
    channel_links = rss.findall(f"channel/{ATOM_NS}link")
    assert [(a.get("rel"), a.get("href")) for a in channel_links if a.get("rel") == "hub"] == [
        ("hub", HUB),
        ("hub", "https://hub.example.org/"),
    ]
    assert rss.findtext("channel/link") == BASE + "index.html"


def test_without_hubs_no_hub_link_anywhere() -> None:
    for data in three(plan(variety())).values():
        assert b"hub" not in data


def test_formats_render_only_what_is_asked() -> None:
    p = plan(variety())
    only_json = render_feed(replace(p, formats=(FeedFormat.JSON,)))
    assert [f.path for f in only_json] == ["all.json"]
    assert only_json[0].data == three(p)[FeedFormat.JSON]
    atom_only = render_feed(replace(p, formats=(FeedFormat.ATOM,)))
    assert [f.path for f in atom_only] == ["all.atom.xml"]
    assert atom_only[0].data == three(p)[FeedFormat.ATOM]


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("items/0", {"id": 1}),  # ids are strings
        ("items/0", "no content"),
        ("items/0/date_published", {"date_published": "2026-01-01 00:00"}),
        ("items/0", {"secured": True}),  # an unknown key that is not an `_extension`
        ("version", {"version": "https://jsonfeed.org/version/1"}),
        ("hubs/0", {"hubs": [{"url": HUB}]}),
        ("feed_url", {"feed_url": "not a url"}),
    ],
)
def test_the_schema_rejects_what_the_spec_forbids(path: str, bad: object) -> None:
    feed = json.loads(three(plan(variety()))[FeedFormat.JSON])
    assert schema_errors(feed) == []
    broken = copy.deepcopy(feed)
    target = broken["items"][0] if path.startswith("items/0") else broken
    if bad == "no content":
        del target["content_html"], target["content_text"]
    else:
        assert isinstance(bad, dict)
        target.update(bad)
    assert path in schema_errors(broken) or any(e.startswith(path) for e in schema_errors(broken))
    broken_ok = copy.deepcopy(feed)
    broken_ok["_aggregator"] = {"any": "thing"}  # extensions are allowed
    assert schema_errors(broken_ok) == []


def test_an_items_text_is_the_standard_librarys_with_orjson_or_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aggregator.output import jsonfeed

    awkward = "".join(chr(c) for c in range(0x20)) + '\x7f\x85\u2028\u2029\ufeff"\\/é😀'
    items = (*variety(), item(article(6, title=awkward, excerpt=awkward, topics=(awkward,))))
    texts = [jsonfeed.item_text(i) for i in items]
    assert texts == [dumps_indented(jsonfeed._item(i), 2) for i in items]
    # A lone surrogate (orjson refuses it) is written as the standard library writes it.
    lone = {"title": "a\ud800b", "tags": ["x"]}
    assert jsonfeed._ITEM_DUMPS(lone) == dumps_indented(lone, 2)
    monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` now raises ImportError
    assert jsonfeed._item_dumps() is jsonfeed._stdlib_item


@pytest.mark.parametrize(
    "when",
    [
        datetime(2024, 5, 1, 11, 30, 15, 999999, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2024, 5, 1, 0, 30, 1, 5, tzinfo=timezone(timedelta(0))),
    ],
)
def test_rfc3339_is_strftimes_utc_whole_seconds(when: datetime) -> None:
    slow = when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rfc3339(when) == slow
