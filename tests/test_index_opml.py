"""indexes: the OPMLs, put together from each outline's own serialisation (made once per feed
and kept from build to build), are byte for byte the ElementTree document they used to be
built as; the cached `<li>` of index.html is the one made afresh."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aggregator.model import FeedFormat, FeedKey, FeedKind, FeedSummary
from aggregator.output.indexes import (
    _feed_item,
    _formats,
    _grouped,
    _new_feed_item,
    _opml,
    _opml_text,
)
from aggregator.output.text import xml_safe

TITLES = [
    "AI",
    "Robots & <Machines>",
    'Quotes "double" and \'single\'',
    "tab\tnew\nline\rreturn",
    "café 東京 \U0001f600",
    "",
    "control \x01 char",
    "]]> & &amp; &#x26;",
]


def reference(groups: list[tuple[str, list[FeedSummary]]], *, title: str, home_url: str) -> bytes:
    """The OPML as `indexes._opml` built it before: one ElementTree, indented, serialised."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _opml_text(title)
    body = ET.SubElement(root, "body")
    for label, members in groups:
        folder = ET.SubElement(body, "outline", text=label)
        for feed in members:
            name = _opml_text(feed.title)
            ET.SubElement(
                folder,
                "outline",
                type="rss",
                text=name,
                title=name,
                xmlUrl=xml_safe(_formats(feed)[0][2]),
                htmlUrl=xml_safe(home_url),
            )
    ET.indent(root, space="  ")
    data: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return data + b"\n"


def summaries(count: int, formats: tuple[FeedFormat, ...]) -> list[FeedSummary]:
    kinds = [FeedKind.TOPIC, FeedKind.PROVIDER]
    feeds = [
        FeedSummary(
            FeedKey.everything(),
            "Everything",
            "https://x.example/all.rss.xml",
            "https://x.example/all.atom.xml",
            5,
            json_url="https://x.example/all.json",
            formats=formats,
        )
    ]
    for n in range(count):
        kind = kinds[n % 2]
        slug = f"feed-{n}"
        feeds.append(
            FeedSummary(
                FeedKey(kind, slug),
                TITLES[n % len(TITLES)] + f" {n}",
                f"https://x.example/{slug}.rss.xml?a=1&b=<2>",
                f"https://x.example/{slug}.atom.xml",
                n,
                articles=n * 3,
                updated=datetime(2024, 1, 1 + n % 28, tzinfo=UTC),
                json_url=f"https://x.example/{slug}.json",
                formats=formats,
            )
        )
    return feeds


@pytest.mark.parametrize("count", [0, 1, 17])
@pytest.mark.parametrize(
    "formats",
    [(FeedFormat.RSS, FeedFormat.ATOM), (FeedFormat.ATOM, FeedFormat.JSON), (FeedFormat.JSON,)],
    ids=["rss", "atom-first", "json-only"],
)
@pytest.mark.parametrize("title", ["Site", "", "A & <b>", "tab\there"])
def test_the_opml_is_the_elementtree_document(
    count: int, formats: tuple[FeedFormat, ...], title: str
) -> None:
    groups = _grouped(summaries(count, formats))
    home = "https://x.example/index.html?x=1&y=2"
    expected = reference(groups, title=title, home_url=home)
    assert _opml(groups, title=title, home_url=home) == expected
    # Twice: the second from the kept outlines; then with every title changed.
    assert _opml(groups, title=title, home_url=home) == expected
    renamed = [(label, [replace(f, title=f.title + "!") for f in fs]) for label, fs in groups]
    assert _opml(renamed, title=title, home_url=home) == reference(
        renamed, title=title, home_url=home
    )


def test_no_group_is_an_empty_body() -> None:
    assert _opml([], title="T", home_url="h") == reference([], title="T", home_url="h")


def test_the_kept_feed_item_is_the_one_made_afresh() -> None:
    for feed in summaries(17, (FeedFormat.RSS, FeedFormat.ATOM, FeedFormat.JSON)):
        assert _feed_item(feed) == _new_feed_item(feed)
        assert _feed_item(feed) == _new_feed_item(feed)
        changed = replace(feed, items=feed.items + 1, title=feed.title + " again")
        assert _feed_item(changed) == _new_feed_item(changed) != _new_feed_item(feed)
