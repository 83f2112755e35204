"""The lists of every feed: `index.opml` (OPML 2.0, for readers), one OPML per group, and
`index.html` (for people: a filter, and an OPML of the feeds one ticks made in the page).

All are pure functions of the feed summaries: no clock, stable order, so an unchanged set of
feeds gives unchanged bytes (and no rewrite). `render.py` re-exports `render_indexes`.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Generic, TypeVar

from aggregator.model import FeedFormat, FeedItem, FeedKey, FeedKind, FeedSummary, RenderedFile
from aggregator.output.page import CSS as _CSS
from aggregator.output.page import SCRIPT as _SCRIPT
from aggregator.output.text import xml_safe

__all__ = ["GROUP_OPML_PATHS", "HTML_PATH", "OPML_PATH", "render_group_opmls", "render_indexes"]

OPML_PATH = "index.opml"
HTML_PATH = "index.html"
# One OPML per group of several feeds, linked from its heading: a person without scripts
# can still take only the topics, or only the providers.
GROUP_OPML_PATHS: dict[FeedKind, str] = {
    FeedKind.CUSTOM: "index-selections.opml",
    FeedKind.TOPIC: "index-topics.opml",
    FeedKind.PROVIDER: "index-providers.opml",
}

_Key = TypeVar("_Key")


class _LastMade(Generic[_Key]):
    """Each feed's piece of an index as the last render made it, with what it was made of:
    a build that changes a few feeds makes a few pieces again. One entry per feed listed
    (`keep_only` drops the others), so a daemon's memory follows its feeds, not its builds."""

    def __init__(self) -> None:
        self.made: dict[FeedKey, tuple[_Key, str]] = {}

    def get(self, feed: FeedKey, source: _Key) -> str | None:
        found = self.made.get(feed)
        return found[1] if found is not None and found[0] == source else None

    def put(self, feed: FeedKey, source: _Key, text: str) -> str:
        self.made[feed] = (source, text)
        return text

    def keep_only(self, feeds: set[FeedKey]) -> None:
        if len(self.made) > len(feeds):
            self.made = {k: v for k, v in self.made.items() if k in feeds}


_OUTLINES: _LastMade[tuple[str, str, str]] = _LastMade()
_ITEMS: _LastMade[FeedSummary] = _LastMade()

# The groups, in the order both indexes show them.
_GROUPS: tuple[tuple[FeedKind, str], ...] = (
    (FeedKind.ALL, "All"),
    (FeedKind.CUSTOM, "Selections"),
    (FeedKind.TOPIC, "Topics"),
    (FeedKind.PROVIDER, "Providers"),
)


def render_indexes(
    feeds: Sequence[FeedSummary],
    *,
    title: str,
    home_url: str,
    opml_url: str,
    headlines: Sequence[FeedItem] = (),
) -> tuple[RenderedFile, RenderedFile]:
    """Render (`index.opml`, `index.html`) listing `feeds`, grouped All / Selections
    (the config's feeds) / Topics / Providers.

    Within a group feeds are sorted by title, then key, whatever order they come in. OPML
    outlines point to the RSS files (the format every reader takes; Atom, then JSON Feed,
    when RSS is turned off). The HTML page is for a
    person choosing what to subscribe to: `headlines` (the all feed's newest items), each
    feed's formats with a copy button, its item and article counts and its last update, a
    filter, and autodiscovery links for the all feed only. `home_url` is the page the feeds
    belong to (`htmlUrl` in OPML), `opml_url` where the OPML is published (linked from the
    page). Every text is escaped: a feed title cannot add markup to either file.
    """
    groups = _grouped(feeds)
    files = (
        RenderedFile(OPML_PATH, _opml(groups, title=title, home_url=home_url)),
        RenderedFile(
            HTML_PATH,
            _html(groups, title=title, home_url=home_url, opml_url=opml_url, headlines=headlines),
        ),
    )
    listed = {feed.key for feed in feeds}
    _OUTLINES.keep_only(listed)
    _ITEMS.keep_only(listed)
    return files


def render_group_opmls(
    feeds: Sequence[FeedSummary], *, title: str, home_url: str
) -> tuple[list[RenderedFile], list[str]]:
    """(the OPML of each group that has feeds, the paths of those of the groups that have
    none: they must not be left behind) of `GROUP_OPML_PATHS`."""
    files, empty = [], []
    grouped = _grouped(feeds)
    for kind, label in _GROUPS:
        path = GROUP_OPML_PATHS.get(kind)
        if path is None:
            continue
        members = [group for group in grouped if group[0] == label]
        if members:
            opml = _opml(members, title=f"{title}: {label}", home_url=home_url)
            files.append(RenderedFile(path, opml))
        else:
            empty.append(path)
    return files, empty


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
    """OPML 2.0: a head with the title only (no dates: there is no clock-free one to give).

    ElementTree's bytes for the tree of `_opml_tree` (`ET.indent`, two spaces), put together
    from each element's own serialisation, one outline a line: a feed's outline is made once
    (`_outline`) and reused by every build, and by the group OPMLs, until its title or URL
    changes (tests/test_indexes.py compares the two on every shape of input).
    """
    head = _element("title", {}, _opml_text(title))
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", '<opml version="2.0">', "  <head>"]
    lines += [f"    {head}", "  </head>"]
    if not groups:
        lines.append("  <body />")
    else:
        lines.append("  <body>")
        for label, members in groups:
            # A folder outline has text only: with title but no type the W3C validator warns.
            folder = _element("outline", {"text": label}, None)
            lines.append(f"    {folder[: -len(' />')]}>")
            lines += [
                # RSS, the format every reader takes; the first one left when it is off.
                _outline(feed, home_url)
                for feed in members
            ]
            lines.append("    </outline>")
        lines.append("  </body>")
    lines += ["</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _element(tag: str, attributes: dict[str, str], text: str | None) -> str:
    """One element without children as ElementTree writes it (attributes in this order,
    escaped fully)."""
    element = ET.Element(tag, attributes)
    element.text = text
    return ET.tostring(element, encoding="unicode")


def _outline(feed: FeedSummary, home_url: str) -> str:
    """A feed's outline line (indented as in a folder), made again only if its title or URL
    changed."""
    xml_url = _formats(feed)[0][2]
    source = (feed.title, xml_url, home_url)
    kept = _OUTLINES.get(feed.key, source)
    if kept is not None:
        return kept
    name = _opml_text(feed.title)
    attributes = {
        "type": "rss",
        "text": name,
        "title": name,
        "xmlUrl": xml_safe(xml_url),
        "htmlUrl": xml_safe(home_url),
    }
    return _OUTLINES.put(feed.key, source, "      " + _element("outline", attributes, None))


def _opml_text(value: str) -> str:
    """OPML text as HTML: the W3C validator (and outliners) read `text`/`title` as HTML, so a
    bare `&` or `<` in a feed title would be invalid there; escaped, it shows as written."""
    return escape(xml_safe(value), quote=False)


# --- index.html -------------------------------------------------------------------------
# One self-contained page: inline CSS and script, no external asset, no clock. Without
# scripts every feed is listed with plain links (the filter and copy buttons stay hidden,
# since they would do nothing); the script only adds them.

def _attr(value: str) -> str:
    return escape(xml_safe(value), quote=True)


def _text(value: str) -> str:
    return escape(xml_safe(value), quote=False)


def _time(moment: datetime, *, with_time: bool = True) -> str:
    """A `<time>` of a content date, in UTC (the page must not depend on who renders it)."""
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    shown = moment.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")
    return f'<time datetime="{iso}">{shown}</time>'


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _formats(feed: FeedSummary) -> list[tuple[str, str, str]]:
    """(label, MIME type, URL) of each format the feed is published in (`feed.formats`)."""
    formats = {
        FeedFormat.RSS: ("RSS", "application/rss+xml", feed.rss_url),
        FeedFormat.ATOM: ("Atom", "application/atom+xml", feed.atom_url),
    }
    if feed.json_url:
        formats[FeedFormat.JSON] = ("JSON", "application/feed+json", feed.json_url)
    return [formats[f] for f in feed.formats if f in formats]


def _feed_item(feed: FeedSummary) -> str:
    """A feed's `<li>`, made again only if its summary (title, counts, date, URLs) changed."""
    kept = _ITEMS.get(feed.key, feed)
    return kept if kept is not None else _ITEMS.put(feed.key, feed, _new_feed_item(feed))


def _new_feed_item(feed: FeedSummary) -> str:
    if feed.articles is not None and feed.articles > feed.items:
        counts = f"newest {feed.items:,} of {_plural(feed.articles, 'article')}"
    else:
        counts = _plural(feed.items, "article")
    if feed.updated is not None and feed.items:
        counts += f" · updated {_time(feed.updated)}"
    # The copy button copies the link just before it: the URL is written once per format
    # (a 2,000-article corpus has some 270 feeds; the page stays small).
    links = "".join(
        f'<span class="format"><a href="{_attr(url)}" type="{mime}">{label}</a>'
        f'<button type="button" class="copy" hidden '
        f'aria-label="copy the {label} URL of {_attr(feed.title)}">copy</button></span>'
        for label, mime, url in _formats(feed)
    )
    qualifier = f" ({feed.key.slug})"
    return (
        # The slug a shared name is told apart by is matched as the slug, not as words.
        f'<li class="feed" data-name="{_attr(_words(feed.title.removesuffix(qualifier)))}" '
        f'data-slug="{_attr(feed.key.slug.replace("-", ""))}" '
        f'data-opml-text="{_attr(_opml_text(feed.title))}">'
        f'<input type="checkbox" class="pick" hidden aria-label="choose {_attr(feed.title)}">'
        f'<div class="about"><div class="name">{_text(feed.title)}</div>'
        f'<div class="meta">{counts}</div></div>'
        f'<div class="formats">{links}</div></li>'
    )


def _words(text: str) -> str:
    """The words the filter matches typed words against (each must start one): lower case,
    accents off, split at anything but letters and digits, as the page's script splits
    what is typed. `ai` then finds "AI" and "AI Weekly", not "Daily" or "Blockchain" (nor
    every provider at a .ai domain, which a match on the path would)."""
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.findall(r"[^\W_]+", plain))


def _headline(item: FeedItem) -> str:
    article = item.article
    provider = article.provider.name if article.provider else ""
    meta = f"{_text(provider)} · " if provider else ""
    return (
        f'<li><a href="{_attr(article.url)}">{_text(article.title)}</a> '
        f'<span class="meta">{meta}{_time(item.date, with_time=False)}</span></li>'
    )


def _html(
    groups: list[tuple[str, list[FeedSummary]]],
    *,
    title: str,
    home_url: str,
    opml_url: str,
    headlines: Sequence[FeedItem],
) -> bytes:
    """The subscription page: headlines, then every feed by group with a filter."""
    everything = [f for _, members in groups for f in members if f.key.kind is FeedKind.ALL]
    # Autodiscovery for the main feed only: a reader offered 542 feeds offers none.
    head_links = [
        f'<link rel="alternate" type="{mime}" title="{_attr(feed.title)} ({label})" '
        f'href="{_attr(url)}">'
        for feed in everything
        for label, mime, url in _formats(feed)
    ]
    total = sum(len(members) for _, members in groups)
    labels = [label for label, _, _ in _formats(everything[0])] if everything else ["RSS", "Atom"]
    formats = ", ".join(labels[:-1]) + " and " + labels[-1]
    body: list[str] = [
        "<main>",
        f"<h1>{_text(title)}</h1>",
        f'<p class="muted">{_plural(total, "feed")} of published articles, in {formats}. '
        "Add one to your feed reader (copy its link), or import them all at once: "
        f'<a href="{_attr(opml_url)}" type="text/x-opml">OPML</a>.</p>',
    ]
    if headlines:
        body += [
            '<section aria-labelledby="latest">',
            '<h2 id="latest">Latest headlines</h2>',
            '<ol class="headlines">',
            *(_headline(item) for item in headlines),
            "</ol>",
            "</section>",
        ]
    body += [
        '<section aria-labelledby="feeds-heading">',
        '<h2 id="feeds-heading">Feeds</h2>',
        '<form id="filter" class="filter" role="search" hidden>',
        '<label for="q">Filter</label>',
        '<input id="q" name="q" type="search" placeholder="a topic or provider" '
        'autocomplete="off">',
        '<span id="shown" class="meta" aria-live="polite"></span>',
        "</form>",
        f'<div id="picker" class="picker" hidden data-title="{_attr(title)}" '
        f'data-home="{_attr(home_url)}">'
        '<button type="button" id="opml-chosen" disabled>OPML of 0 chosen feeds</button>'
        '<button type="button" id="clear-chosen">clear</button>'
        '<span class="meta">tick the feeds you want, or a group\'s "choose all"</span></div>',
        '<noscript><p class="meta">Every feed is listed below; your browser\'s Find '
        "(Ctrl+F) searches them.</p></noscript>",
    ]
    group_paths = {label: GROUP_OPML_PATHS.get(kind) for kind, label in _GROUPS}
    for label, members in groups:
        slug = label.lower()
        path = group_paths.get(label)
        group_link = (
            f' <a class="group-opml" href="{_attr(opml_url.rsplit("/", 1)[0] + "/" + path)}" '
            f'type="text/x-opml">OPML of these {len(members):,}</a>'
            if path
            else ""
        )
        body += [
            f'<section class="group" aria-labelledby="group-{slug}">',
            f'<h2 id="group-{slug}">{_text(label)}<button type="button" class="group-pick" '
            f'hidden aria-label="choose every {_attr(label)} feed shown">choose all</button>'
            f"{group_link}</h2>",
            '<ul class="feeds">',
            *(_feed_item(feed) for feed in members),
            "</ul>",
            "</section>",
        ]
    body += ["</section>", "</main>"]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="color-scheme" content="light dark">',
            f"<title>{_text(title)}</title>",
            *head_links,
            f"<style>\n{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            f"<script>\n{_SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )
    return page.encode("utf-8")
