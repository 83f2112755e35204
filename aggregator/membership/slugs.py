"""Names → slugs: lowercase ASCII letters, digits and single `-`, safe as one path segment."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from aggregator.model import Article, FeedKey, FeedKind

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG_LENGTH = 80


@lru_cache(maxsize=8192)  # a corpus has few distinct topics and providers, named often
def slugify(name: str) -> str:
    """`Réalité Augmentée` → `realite-augmentee`, `forbes.com` → `forbes-com`.

    The result never contains `/`, `.` or `\\`, so it cannot leave the folder it is joined to.
    An empty result means the name gets no feed.
    """
    if name.isascii():
        ascii_text = name.lower()  # what anyascii would give, without importing it
    else:
        # Imported on first use: its import (importlib.resources, tempfile, shutil) is a
        # good part of a build that has nothing to do.
        from anyascii import anyascii

        ascii_text = anyascii(name).lower()
    slug = _NOT_SLUG.sub("-", ascii_text).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")


@dataclass(frozen=True, slots=True)
class ArticleFacts:
    """An article with the slugs filters compare, made once for all the config's feeds."""

    article: Article
    topics: frozenset[str]
    provider: str | None

    @classmethod
    def of(cls, article: Article) -> ArticleFacts:
        """The facts of one article."""
        provider = slugify(article.provider.feed_name) if article.provider else None
        return cls(article, frozenset(slugify(t) for t in article.topics), provider or None)


class ArticleFilter(Protocol):
    """A feed defined in the config: its key, and which articles it lists."""

    @property
    def key(self) -> FeedKey: ...

    def accepts(self, facts: ArticleFacts) -> bool: ...


@dataclass(frozen=True, slots=True)
class FeedRules:
    """Which feeds exist: the built-in groups switched on, and the feeds of the config.

    Plain picklable data: worker processes get it with each chunk of files to read.
    """

    all: bool = True
    topics: bool = True
    providers: bool = True
    custom: Sequence[ArticleFilter] = ()


DEFAULT_RULES = FeedRules()


def feeds_of(article: Article, rules: FeedRules = DEFAULT_RULES) -> tuple[FeedKey, ...]:
    """Every feed a published article belongs in: all, one per topic, its provider's, and
    each feed of the config whose filter it passes (a built-in group switched off: none)."""
    keys = [FeedKey.everything()] if rules.all else []
    if rules.topics:
        seen: set[str] = set()
        for topic in article.topics:
            slug = slugify(topic)
            if slug and slug not in seen:
                seen.add(slug)
                keys.append(FeedKey(FeedKind.TOPIC, slug))
    if rules.providers and article.provider is not None:
        slug = slugify(article.provider.feed_name)
        if slug:
            keys.append(FeedKey(FeedKind.PROVIDER, slug))
    if rules.custom:
        facts = ArticleFacts.of(article)
        keys.extend(feed.key for feed in rules.custom if feed.accepts(facts))
    return tuple(keys)


def display_name(article: Article, key: FeedKey) -> str | None:
    """The name, as this article spells it, of the topic or provider behind `key`."""
    if key.kind is FeedKind.TOPIC:
        for topic in article.topics:
            if slugify(topic) == key.slug:
                return topic
    elif key.kind is FeedKind.PROVIDER and article.provider is not None:
        return article.provider.name
    return None
