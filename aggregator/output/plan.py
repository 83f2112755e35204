"""Pure planning: catalog rows in, the feeds to render out. No I/O, no clock.

Like a decider in lemon24/reader: it only processes data, so it is tested without disk.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aggregator.config import DEFAULT_MAX_EXCERPT_CHARS, FeedTitles
from aggregator.membership import FeedDefinition, display_name
from aggregator.model import (
    ALL_FORMATS,
    Article,
    FeedFormat,
    FeedItem,
    FeedKey,
    FeedKind,
    FeedPlan,
    FeedSummary,
)

# The date of a feed that has never listed anything (a feed of the config that matches no
# article yet): fixed, so its bytes are stable, and after 1990, before which the W3C
# validator calls a date implausible.
NEVER_LISTED = datetime(2000, 1, 1, tzinfo=UTC)

MAX_RELATED_LINKS = 20
"""Related links shown per item; the others are left out of the feeds."""
MAX_TITLE_CHARS = 1000
"""Longest title (of an item or of a related link) shown; longer ones are cut like excerpts."""
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The part of the settings that shapes feeds (a change re-renders every feed)."""

    base_url: str
    titles: FeedTitles
    language: str
    max_items: int
    formats: tuple[FeedFormat, ...] = ALL_FORMATS
    hubs: tuple[str, ...] = ()  # WebSub hubs the feeds advertise (they are in the bytes)
    max_excerpt_chars: int = DEFAULT_MAX_EXCERPT_CHARS
    # The config's feeds. Not part of what re-renders every feed: a change to one
    # definition re-renders that feed only (the catalog keeps a fingerprint of each).
    custom: tuple[FeedDefinition, ...] = ()
    # The topic and provider feeds whose name another feed of their kind shares: their
    # titles add the slug (`ambiguous_names`). Decided per build, like `custom` not part of
    # what re-renders every feed: the builder renders the feeds whose state changed.
    ambiguous: frozenset[FeedKey] = frozenset()

    def definition(self, key: FeedKey) -> FeedDefinition | None:
        """The config's definition of a custom feed (None for the built-in feeds)."""
        if key.kind is FeedKind.CUSTOM:
            for definition in self.custom:
                if definition.name == key.slug:
                    return definition
        return None

    def formats_of(self, key: FeedKey) -> tuple[FeedFormat, ...]:
        """The formats a feed is written in: its definition's, else the site's."""
        definition = self.definition(key)
        if definition is not None and definition.formats is not None:
            return definition.formats
        return self.formats

    def limit(self, key: FeedKey) -> int:
        """How many items the feed lists at most."""
        definition = self.definition(key)
        if definition is not None and definition.max_items is not None:
            return definition.max_items
        return self.max_items

    def window_start(self, key: FeedKey, now: datetime) -> datetime | None:
        """Items dated at or before this have aged out of the feed (None: no window)."""
        definition = self.definition(key)
        if definition is None or definition.max_age_days is None:
            return None
        return now - timedelta(days=definition.max_age_days)

    def windows(self) -> list[tuple[FeedKey, timedelta]]:
        """Every feed with a time window, and its length."""
        return [
            (d.key, timedelta(days=d.max_age_days))
            for d in self.custom
            if d.max_age_days is not None
        ]


def feed_name(key: FeedKey, items: Sequence[FeedItem], previous_name: str | None) -> str:
    """The topic's or provider's name as its newest article spells it.

    A feed whose last item left keeps the name it had, so its title does not change.
    """
    if key.kind is FeedKind.ALL:
        return ""
    for item in items:
        name = display_name(item.article, key)
        if name:
            return name
    return previous_name or key.slug


def plan_feed(
    key: FeedKey,
    items: Sequence[FeedItem],
    settings: PlanSettings,
    *,
    previous_name: str | None = None,
    previous_updated: datetime | None = None,
) -> FeedPlan:
    """Everything a feed shows, decided from its items (newest first) and its last state."""
    name = feed_name(key, items, previous_name)
    title, description = _titles(key, name, settings)
    # The newest item date or edit: an edit changes the feed too (RFC 4287 4.2.15).
    updated = max(item.updated for item in items) if items else previous_updated or NEVER_LISTED
    return FeedPlan(
        key=key,
        title=title,
        description=description,
        items=tuple(_bounded_item(item, settings.max_excerpt_chars) for item in items),
        updated=updated,
        rss_url=settings.base_url + key.rss_path,
        atom_url=settings.base_url + key.atom_path,
        home_url=settings.base_url + "index.html",
        language=settings.language,
        json_url=settings.base_url + key.json_path,
        formats=settings.formats_of(key),
        hubs=settings.hubs,
    )


def _bounded_item(item: FeedItem, max_excerpt_chars: int) -> FeedItem:
    article = bounded(item.article, max_excerpt_chars)
    return item if article is item.article else replace(item, article=article)


def bounded(article: Article, max_excerpt_chars: int) -> Article:
    """The article as one item may show it, so that one file cannot swell every feed it is in
    (60 articles of 900 kB excerpts made 1.1 GB of feeds): the excerpt cut at a word boundary
    to at most `max_excerpt_chars` characters with "…" at the end, titles likewise to
    `MAX_TITLE_CHARS`, and the first `MAX_RELATED_LINKS` related links. The article itself,
    in the catalog, stays whole. Returns `article` itself when nothing needs cutting."""
    if (
        len(article.excerpt) <= max_excerpt_chars
        and len(article.title) <= MAX_TITLE_CHARS
        and len(article.related) <= MAX_RELATED_LINKS
        and all(len(link.title) <= MAX_TITLE_CHARS for link in article.related)
    ):
        return article
    related = tuple(
        link
        if len(link.title) <= MAX_TITLE_CHARS
        else replace(link, title=cut(link.title, MAX_TITLE_CHARS))
        for link in article.related[:MAX_RELATED_LINKS]
    )
    return replace(
        article,
        title=cut(article.title, MAX_TITLE_CHARS),
        excerpt=cut(article.excerpt, max_excerpt_chars),
        related=related,
    )


def cut(text: str, limit: int) -> str:
    """`text` if at most `limit` characters, else its start up to the last word boundary that
    fits, with "…": at most `limit` characters in all. A single word longer than half the
    limit is cut inside it."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    head = text[: limit - len(ELLIPSIS) + 1]  # one more: is the character after a space?
    space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    head = head[:space] if space > limit // 2 else head[:-1]
    return head.rstrip() + ELLIPSIS


def _titles(
    key: FeedKey, name: str, settings: PlanSettings, ambiguous: Collection[FeedKey] | None = None
) -> tuple[str, str]:
    definition = settings.definition(key)
    if definition is not None:
        return definition.title, definition.description
    if key in (settings.ambiguous if ambiguous is None else ambiguous):
        name = f"{name} ({key.slug})"
    return titles_of(key, name, settings.titles)


def ambiguous_names(names: Iterable[tuple[FeedKey, str]]) -> frozenset[FeedKey]:
    """The topic and provider feeds whose name another feed of the same kind has too (case
    and spacing aside): two providers called "DataBrief", at databrief.com and databrief.co.
    Their titles add the slug, `Provider: DataBrief (databrief-co)`; the others stay as
    they are. From the names alone, so every node and build decides the same."""
    groups: dict[tuple[FeedKind, str], list[FeedKey]] = {}
    for key, name in names:
        if key.kind in (FeedKind.TOPIC, FeedKind.PROVIDER):
            groups.setdefault((key.kind, " ".join(name.casefold().split())), []).append(key)
    return frozenset(key for keys in groups.values() if len(keys) > 1 for key in keys)


def titles_of(key: FeedKey, name: str, titles: FeedTitles) -> tuple[str, str]:
    """(title, description) of a feed, from the configured templates."""
    if key.kind is FeedKind.TOPIC:
        return titles.topic.format(name=name), titles.topic_description.format(name=name)
    if key.kind is FeedKind.PROVIDER:
        return titles.provider.format(name=name), titles.provider_description.format(name=name)
    return titles.all, titles.all_description


def feeds_to_render(
    dirty: Iterable[FeedKey],
    known: Collection[FeedKey],
    missing: Iterable[FeedKey],
    *,
    settings_changed: bool,
) -> list[FeedKey]:
    """Which feeds a build renders, in a stable order (the `all` feed first).

    `dirty`: their items changed. `missing`: a known feed whose file is gone from the output.
    A change of the settings that shape feeds re-renders every known feed.
    """
    chosen = set(dirty) | set(missing)
    if settings_changed:
        chosen |= set(known)
    return sorted(chosen)


def added_updated_removed(
    old: Sequence[str], new: Sequence[str], changed: Collection[str]
) -> tuple[int, int, int]:
    """How a feed's list of GUIDs moved: added, updated (listed before and changed), removed."""
    old_set, new_set = set(old), set(new)
    return (
        len(new_set - old_set),
        len((new_set & old_set) & set(changed)),
        len(old_set - new_set),
    )


@dataclass(frozen=True, slots=True)
class FeedListing:
    """What the catalog knows of one written feed, for the indexes."""

    key: FeedKey
    name: str
    items: int  # listed now
    articles: int  # every visible published article in it (the feed lists the newest max_items)
    updated: datetime


def summaries(feeds: Iterable[FeedListing], settings: PlanSettings) -> list[FeedSummary]:
    """The index entries: every feed that lists something, plus `all` and the config's
    feeds always; in path order."""
    listed = []
    feeds = sorted(feeds, key=lambda f: f.key)
    ambiguous = ambiguous_names((f.key, f.name) for f in feeds if f.items)
    for feed in feeds:
        if feed.items == 0 and feed.key.kind not in (FeedKind.ALL, FeedKind.CUSTOM):
            continue
        title, _ = _titles(feed.key, feed.name, settings, ambiguous)
        formats = settings.formats_of(feed.key)
        listed.append(
            FeedSummary(
                key=feed.key,
                title=title,
                rss_url=settings.base_url + feed.key.rss_path,
                atom_url=settings.base_url + feed.key.atom_path,
                items=feed.items,
                articles=feed.articles,
                updated=feed.updated if feed.items else None,
                json_url=(
                    settings.base_url + feed.key.json_path if FeedFormat.JSON in formats else None
                ),
                formats=formats,
            )
        )
    return listed
