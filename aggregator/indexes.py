"""The lists of every feed: `index.opml` (OPML 2.0, for readers) and `index.html` (for people).

Both are pure functions of the feed summaries: no clock, stable order, so an unchanged set of
feeds gives unchanged bytes (and no rewrite). `render.py` re-exports `render_indexes`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from html import escape

from aggregator.model import FeedFormat, FeedKind, FeedSummary, RenderedFile

__all__ = ["HTML_PATH", "OPML_PATH", "render_indexes", "xml_safe"]

OPML_PATH = "index.opml"
HTML_PATH = "index.html"

# The groups, in the order both indexes show them.
_GROUPS: tuple[tuple[FeedKind, str], ...] = (
    (FeedKind.ALL, "All"),
    (FeedKind.TOPIC, "Topics"),
    (FeedKind.PROVIDER, "Providers"),
)

# How the page names each format, and its media type.
_FORMAT_LINKS: dict[FeedFormat, tuple[str, str]] = {
    FeedFormat.RSS: ("RSS", "application/rss+xml"),
    FeedFormat.ATOM: ("Atom", "application/atom+xml"),
    FeedFormat.JSON: ("JSON Feed", "application/feed+json"),
}


def _url_of(feed: FeedSummary, fmt: FeedFormat) -> str:
    return {FeedFormat.RSS: feed.rss_url, FeedFormat.ATOM: feed.atom_url}.get(fmt, feed.json_url)


# Characters XML 1.0 cannot carry at all (C0 controls but tab/newline/CR, lone surrogates,
# U+FFFE/U+FFFF): lxml refuses them and ElementTree would write a file no parser reads.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML cannot represent (they are never meaningful text)."""
    return _NOT_XML.sub("", text)


def render_indexes(
    feeds: Sequence[FeedSummary], *, title: str, home_url: str, opml_url: str
) -> tuple[RenderedFile, RenderedFile]:
    """Render (`index.opml`, `index.html`) listing `feeds`, grouped All / Topics / Providers.

    Within a group feeds are sorted by title, then key, whatever order they come in. OPML
    outlines point to the RSS files (the format every reader takes; Atom, then JSON Feed, when
    RSS is turned off); the HTML page links every format and carries autodiscovery `<link>`
    tags for every feed. `home_url` is the page the
    feeds belong to (`htmlUrl` in OPML), `opml_url` where the OPML is published (linked from
    the page). Every text is escaped: a feed title cannot add markup to either file.
    """
    groups = _grouped(feeds)
    return (
        RenderedFile(OPML_PATH, _opml(groups, title=title, home_url=home_url)),
        RenderedFile(HTML_PATH, _html(groups, title=title, opml_url=opml_url)),
    )


def _grouped(feeds: Sequence[FeedSummary]) -> list[tuple[str, list[FeedSummary]]]:
    """Non-empty groups in display order, each sorted for stable output."""
    result = []
    for kind, label in _GROUPS:
        members = sorted(
            (f for f in feeds if f.key.kind is kind),
            key=lambda f: (f.title.casefold(), f.title, f.key.slug),
        )
        if members:
            result.append((label, members))
    return result


def _opml(groups: list[tuple[str, list[FeedSummary]]], *, title: str, home_url: str) -> bytes:
    """OPML 2.0: a head with the title only (no dates: there is no clock-free one to give)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _opml_text(title)
    body = ET.SubElement(root, "body")
    for label, members in groups:
        # A folder outline has text only: with title but no type the W3C validator warns.
        folder = ET.SubElement(body, "outline", text=label)
        for feed in members:
            name = _opml_text(feed.title)
            ET.SubElement(
                folder,
                "outline",
                type="rss",
                text=name,
                title=name,
                xmlUrl=xml_safe(_url_of(feed, feed.formats[0])),
                htmlUrl=xml_safe(home_url),
            )
    ET.indent(root, space="  ")
    # ElementTree writes attributes in insertion order and escapes them fully.
    data: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return data + b"\n"


def _opml_text(value: str) -> str:
    """OPML text as HTML: the W3C validator (and outliners) read `text`/`title` as HTML, so a
    bare `&` or `<` in a feed title would be invalid there; escaped, it shows as written."""
    return escape(xml_safe(value), quote=False)


def _html(groups: list[tuple[str, list[FeedSummary]]], *, title: str, opml_url: str) -> bytes:
    """A small HTML5 page: autodiscovery links in the head, a list per group in the body."""

    def attr(value: str) -> str:
        return escape(xml_safe(value), quote=True)

    def text(value: str) -> str:
        return escape(xml_safe(value), quote=False)

    head_links = []
    sections = []
    for label, members in groups:
        items = []
        for feed in members:
            links = []
            for fmt in feed.formats:
                name, media_type = _FORMAT_LINKS[fmt]
                url = attr(_url_of(feed, fmt))
                head_links.append(
                    f'<link rel="alternate" type="{media_type}" '
                    f'title="{attr(feed.title)} ({name})" href="{url}">'
                )
                links.append(f'<a href="{url}" type="{media_type}">{name}</a>')
            count = "1 item" if feed.items == 1 else f"{feed.items} items"
            items.append(f"<li>{text(feed.title)}: {', '.join(links)} ({count})</li>")
        sections.append(f"<h2>{text(label)}</h2>\n<ul>\n" + "\n".join(items) + "\n</ul>")

    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{text(title)}</title>",
            *head_links,
            "</head>",
            "<body>",
            f"<h1>{text(title)}</h1>",
            f'<p>Every feed below, as one file for feed readers: <a href="{attr(opml_url)}" '
            f'type="text/x-opml">OPML</a>.</p>',
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )
    return page.encode("utf-8")
