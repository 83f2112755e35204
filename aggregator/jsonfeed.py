"""FeedPlan → JSON Feed 1.1 bytes (https://jsonfeed.org/version/1.1), byte-stable.

The same items, in the same order, with the same strings as the RSS and Atom files
(`content.py` makes them): `id` is the item's GUID, `content_html` is what Atom carries as
`content` (or `summary` when there is no body), HTML-escaped the same way. Keys are written in
the order the spec lists them, so the file reads like the spec; no clock, no dict of unknown
order, `ensure_ascii=False` (JSON is UTF-8 by definition), a trailing newline.

What is left out, and why:
- `date_modified`: the articles carry one date; repeating it would claim a modification.
- `author` (1.0): deprecated in 1.1 for `authors`; readers of 1.1 read `authors`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aggregator.content import content_html, item_excerpt, item_title, summary_html, unique
from aggregator.indexes import xml_safe
from aggregator.model import FeedItem, FeedPlan, RenderedFile

VERSION = "https://jsonfeed.org/version/1.1"
JSON_FEED_TYPE = "application/feed+json"


def render_json_feed(plan: FeedPlan) -> RenderedFile:
    """Render `plan` as JSON Feed 1.1 at `plan.key.json_path`."""
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
    feed["items"] = [_item(item) for item in plan.items]
    text = json.dumps(feed, ensure_ascii=False, indent=2) + "\n"
    return RenderedFile(plan.key.json_path, text.encode("utf-8"))


def _item(item: FeedItem) -> dict[str, Any]:
    article = item.article
    title = item_title(article)
    # The same strings RSS and Atom carry: characters XML cannot hold are dropped everywhere.
    entry: dict[str, Any] = {
        "id": xml_safe(item.guid),
        "url": xml_safe(article.url),
        "title": title,
    }
    # One of content_html / content_text is required: the HTML is always there.
    entry["content_html"] = content_html(article) or summary_html(article)
    excerpt = item_excerpt(article)
    entry["content_text"] = excerpt or title
    if excerpt:
        entry["summary"] = excerpt
    if article.images:
        entry["image"] = xml_safe(article.images[0].url)
    entry["date_published"] = rfc3339(item.date)
    if article.provider is not None:
        name = xml_safe(article.provider.name).strip()
        if name:
            entry["authors"] = [{"name": name}]
    tags = unique(xml_safe(t).strip() for t in article.topics)
    if tags:
        entry["tags"] = tags
    return entry


def rfc3339(when: datetime) -> str:
    """`when` as RFC 3339 in UTC, whole seconds, `Z`: the instant RSS and Atom give too."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: feed dates must be UTC-aware")
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
