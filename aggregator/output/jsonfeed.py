"""FeedPlan → JSON Feed 1.1 bytes (https://jsonfeed.org/version/1.1), byte-stable.

The same items, in the same order, with the same strings as the RSS and Atom files
(`content.py` makes them): `id` is the item's id in this feed (`FeedKey.entry_id`),
`content_html` is what Atom carries as `content` (or `summary` when there is no body),
HTML-escaped the same way. Keys are written in
the order the spec lists them, so the file reads like the spec; no clock, no dict of unknown
order, `ensure_ascii=False` (JSON is UTF-8 by definition), a trailing newline.

`date_modified` is there only for an item edited since it was first listed (as Atom's
`<updated>`, from `FeedItem.modified`): repeating `date_published` would claim an edit.

What is left out, and why:
- `author` (1.0): deprecated in 1.1 for `authors`; readers of 1.1 read `authors`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring  # in C where CPython has it
from typing import Any

from aggregator.model import FeedItem, FeedPlan, RenderedFile
from aggregator.output.text import item_excerpt, item_html, item_title, unique, xml_safe

VERSION = "https://jsonfeed.org/version/1.1"
JSON_FEED_TYPE = "application/feed+json"
ITEM_CACHE_SIZE = 8192  # as many as the XML entries' cache (`render._ENTRY_CACHE_SIZE`)


def render_json_feed(
    plan: FeedPlan, ids: dict[str, str] | None = None, texts: list[str] | None = None
) -> RenderedFile:
    """Render `plan` as JSON Feed 1.1 at `plan.key.json_path`. When already made: `ids`,
    each item's id in this feed (XML-safe `FeedKey.entry_id` of its GUID); `texts`, each
    item's `item_text`, in the plan's order."""
    title = xml_safe(plan.title).strip() or plan.key.stem
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": title,
        "home_page_url": plan.home_url,
        "feed_url": plan.json_url,
    }
    description = xml_safe(plan.description).strip()
    if description:
        feed["description"] = description
    # The feed-level author, as in Atom: items without a provider inherit it.
    feed["authors"] = [{"name": title}]
    feed["language"] = plan.language
    if plan.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in plan.hubs]
    # Each item's text is made once per process and shared by every feed that lists it (an
    # article is in several), indented for its place: the feed's `items`, two levels down.
    if ids is None:
        ids = {item.guid: xml_safe(plan.key.entry_id(item.guid)) for item in plan.items}
    if texts is None:
        texts = [item_json(item) for item in plan.items]
    items = ",\n    ".join(
        _with_id(ids[item.guid], text) for item, text in zip(plan.items, texts, strict=True)
    )
    members = dumps_indented(feed)[: -len("\n}")]  # the feed's keys, items last
    listed = f"[\n    {items}\n  ]" if items else "[]"
    text = f'{members},\n  "items": {listed}\n}}\n'
    return RenderedFile(plan.key.json_path, text.encode("utf-8"))


# An item's members start after this (its first, `id`, is the one that differs per feed).
_ITEM_START = "{\n" + "  " * 3


def _with_id(entry_id: str, text: str) -> str:
    """The item's JSON with `id` first, as the spec lists it: the id of the item in this
    feed (`FeedKey.entry_id`, XML-safe), the rest shared by every feed that lists the item."""
    members = text[len(_ITEM_START) :]  # "url": …, after the opening brace
    entry = encode_basestring(entry_id)
    return f'{_ITEM_START}"id": {entry},\n      {members}'


def item_text(item: FeedItem) -> str:
    """One item as JSON without its `id`, indented as in a feed's `items` (`_with_id` adds
    the id)."""
    return _ITEM_DUMPS(_item(item))


def _stdlib_item(entry: dict[str, Any]) -> str:
    return dumps_indented(entry, 2)


def _item_dumps() -> Callable[[dict[str, Any]], str]:
    """How an item's dict becomes its text: by orjson when installed (pinned in the locks),
    else `dumps_indented`, the same bytes either way.

    orjson's two-space indent is `json.dumps(indent=2, ensure_ascii=False)`'s layout and
    escapes (tests/test_jsonfeed.py holds it to `dumps_indented`); its text starts at the
    left margin, so each line after the first is moved right by the item's two levels (a
    string's own line breaks are escapes: every newline is the layout's). An item holds
    strings only; one orjson refuses (a lone surrogate) is `dumps_indented`'s to write.
    """
    try:
        import orjson
    except ImportError:  # not installed: the same text, in three times the time
        return _stdlib_item
    dumps, indent, refused = orjson.dumps, orjson.OPT_INDENT_2, orjson.JSONEncodeError
    margin = "\n" + _INDENT * 2

    def item_dumps(entry: dict[str, Any]) -> str:
        try:
            return dumps(entry, option=indent).decode().replace("\n", margin)
        except refused:
            return dumps_indented(entry, 2)

    return item_dumps


item_json = lru_cache(maxsize=ITEM_CACHE_SIZE)(item_text)
"""`item_text`, kept: keyed on the frozen item, as the XML entries are (`render._entry`, which
keeps its own): an edited article is a new key."""


def _item(item: FeedItem) -> dict[str, Any]:
    article = item.article
    title = item_title(article)
    # The same strings RSS and Atom carry: characters XML cannot hold are dropped everywhere.
    entry: dict[str, Any] = {
        "url": xml_safe(article.url),
        "title": title,
    }
    # One of content_html / content_text is required: the HTML is always there.
    summary, body = item_html(article)
    entry["content_html"] = body or summary
    excerpt = item_excerpt(article)
    entry["content_text"] = excerpt or title
    if excerpt:
        entry["summary"] = excerpt
    if article.images:
        entry["image"] = xml_safe(article.images[0].url)
    published = entry["date_published"] = rfc3339(item.date)
    modified = rfc3339(item.updated)
    if modified != published:
        entry["date_modified"] = modified  # edited since it was first listed
    if article.provider is not None:
        name = xml_safe(article.provider.name).strip()
        if name:
            entry["authors"] = [{"name": name}]
    tags = unique(xml_safe(t).strip() for t in article.topics)
    if tags:
        entry["tags"] = tags
    return entry


def dumps_indented(value: Any, level: int = 0) -> str:
    """`json.dumps(value, ensure_ascii=False, indent=2)`, byte for byte, several times faster.

    With `indent`, the standard library encodes in pure Python (its C encoder only writes
    compact JSON): that was most of the time a build spent on JSON Feeds. Here only the
    layout is Python; each string goes through the C string encoder. Numbers, booleans and
    null (no feed has any now) are left to `json.dumps`.
    """
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = "\n" + _INDENT * (level + 1)
        members = (
            f"{encode_basestring(k)}: {dumps_indented(v, level + 1)}" for k, v in value.items()
        )
        return "{" + inner + ("," + inner).join(members) + "\n" + _INDENT * level + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        inner = "\n" + _INDENT * (level + 1)
        elements = (dumps_indented(v, level + 1) for v in value)
        return "[" + inner + ("," + inner).join(elements) + "\n" + _INDENT * level + "]"
    return json.dumps(value)


_INDENT = "  "
_ITEM_DUMPS = _item_dumps()


def rfc3339(when: datetime) -> str:
    """`when` as RFC 3339 in UTC, whole seconds, `Z`: the instant RSS and Atom give too."""
    if when.tzinfo is UTC and when.year >= 1000:  # nearly every date: C, no strftime
        return when.isoformat(timespec="seconds")[:19] + "Z"
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: feed dates must be UTC-aware")
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
