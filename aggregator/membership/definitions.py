"""Feeds defined in the config (`feeds:`): their validation and their filters. Pure, no I/O.

A definition is checked once, when the settings load (every problem at once, each naming its
key); its patterns are compiled then, by RE2 (`patterns`: linear time whatever the title).
What it lists is decided where the feeds of an article are decided (`slugs.feeds_of`), in the
worker processes that read files: a definition is plain picklable data (a pattern pickles as
its text).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggregator.membership.patterns import Pattern, PatternError
from aggregator.membership.slugs import ArticleFacts, slugify
from aggregator.model import ALL_FORMATS, Article, FeedFormat, FeedKey, FeedKind

# The most items a feed may list (here and the config's `max_items`): more is a typo, and past
# 2**63 SQLite's LIMIT overflows. A feed's time window is at most a century (`timedelta` and
# the dates an article may carry end well before a million days).
MAX_ITEMS = 100_000
MAX_DAYS = 36_500

_KNOWN_KEYS = (
    "name",
    "title",
    "description",
    "topics_any",
    "topics_all",
    "topics_none",
    "providers",
    "title_matches",
    "excerpt_matches",
    "has_image",
    "newer_than_days",
    "max_age_days",
    "max_items",
    "formats",
)


@dataclass(frozen=True, slots=True)
class FeedDefinition:
    """One feed of the config. Topics and providers are kept as slugs (so `AI`, `ai` and
    `A.I.`-style spellings that slug alike match alike); None means "no condition"."""

    name: str
    title: str
    description: str
    topics_any: frozenset[str] | None = None
    topics_all: frozenset[str] = frozenset()
    topics_none: frozenset[str] = frozenset()
    providers: frozenset[str] | None = None
    title_matches: Pattern | None = None
    excerpt_matches: Pattern | None = None
    has_image: bool | None = None
    max_age_days: float | None = None
    max_items: int | None = None
    formats: tuple[FeedFormat, ...] | None = None  # None: the site's `formats`
    # `custom/<name>`; made once: every article read asks every definition for it.
    key: FeedKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", FeedKey(FeedKind.CUSTOM, self.name))

    def matches(self, article: Article) -> bool:
        """Whether the feed lists this (published) article, whatever its date."""
        return self.accepts(ArticleFacts.of(article))

    def accepts(self, facts: ArticleFacts) -> bool:
        """`matches`, with the article's slugs made once for every feed (`feeds_of`)."""
        topics, article = facts.topics, facts.article
        if self.topics_any is not None and topics.isdisjoint(self.topics_any):
            return False
        if not self.topics_all <= topics or not topics.isdisjoint(self.topics_none):
            return False
        if self.providers is not None and facts.provider not in self.providers:
            return False
        if self.has_image is not None and bool(article.images) != self.has_image:
            return False
        if self.title_matches is not None and not self.title_matches.search(article.title):
            return False
        return self.excerpt_matches is None or self.excerpt_matches.search(article.excerpt)

    def refusal(self, article: Article) -> str | None:
        """Why the feed leaves this (published) article out: the first condition it fails,
        named by its config key (None: the feed lists it, whatever its date). The same
        conditions as `accepts`, in words, for `aggregator explain`."""
        facts = ArticleFacts.of(article)
        topics = facts.topics
        if self.topics_any is not None and topics.isdisjoint(self.topics_any):
            return (
                f"topics_any: it names none of {_listed(self.topics_any)} "
                f"(its topics: {_listed(topics) or 'none'})"
            )
        if not self.topics_all <= topics:
            return f"topics_all: it does not name {_listed(self.topics_all - topics)}"
        if not topics.isdisjoint(self.topics_none):
            return f"topics_none: it names {_listed(topics & self.topics_none)}"
        if self.providers is not None and facts.provider not in self.providers:
            return (
                f"providers: its provider ({facts.provider or 'none'}) is not "
                f"{_listed(self.providers, 'or')}"
            )
        if self.has_image is not None and bool(article.images) != self.has_image:
            return (
                "has_image: true, and it has no image"
                if self.has_image
                else ("has_image: false, and it has an image")
            )
        if self.title_matches is not None and not self.title_matches.search(article.title):
            return f"title_matches: {self.title_matches.pattern!r} is not found in its title"
        if self.excerpt_matches is not None and not self.excerpt_matches.search(article.excerpt):
            return f"excerpt_matches: {self.excerpt_matches.pattern!r} is not found in its excerpt"
        return None

    def membership_fingerprint(self) -> str:
        """Changes exactly when the definition's filter, title, window or size changes."""
        data = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "topics_any": sorted(self.topics_any) if self.topics_any is not None else None,
            "topics_all": sorted(self.topics_all),
            "topics_none": sorted(self.topics_none),
            "providers": sorted(self.providers) if self.providers is not None else None,
            "title_matches": _pattern_text(self.title_matches),
            "excerpt_matches": _pattern_text(self.excerpt_matches),
            "has_image": self.has_image,
            "max_age_days": self.max_age_days,
            "max_items": self.max_items,
            "formats": None if self.formats is None else [f.value for f in self.formats],
        }
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def _listed(slugs: frozenset[str], word: str = "and") -> str:
    names = sorted(slugs)
    return ", ".join(names[:-1]) + f" {word} " + names[-1] if len(names) > 1 else "".join(names)


def _pattern_text(pattern: Pattern | None) -> str | None:
    return None if pattern is None else pattern.pattern


def parse_feed_definitions(value: Any) -> tuple[tuple[FeedDefinition, ...], list[str]]:
    """The `feeds:` list of the config → (definitions, problems). Every problem names its
    key as `feeds[i].field` (with the feed's name when it has a valid one)."""
    if value is None:
        return (), []
    if not isinstance(value, list):
        return (), [f"feeds: must be a list of feed definitions, got {value!r}"]
    problems: list[str] = []
    definitions: list[FeedDefinition] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(value):
        where = f"feeds[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping with at least `name`, got {raw!r}")
            continue
        name = raw.get("name")
        if isinstance(name, str) and name:
            where = f"feeds[{index}] ({name})"
        definition = _parse_one(raw, where, problems)
        if definition is None:
            continue
        if definition.name in names:
            problems.append(
                f"{where}.name: {definition.name!r} clashes with feeds[{names[definition.name]}]"
                " (each feed needs its own name: it is its file name)"
            )
            continue
        names[definition.name] = index
        definitions.append(definition)
    return tuple(definitions), problems


def _parse_one(raw: Mapping[str, Any], where: str, problems: list[str]) -> FeedDefinition | None:
    before = len(problems)
    for key in raw:
        if key not in _KNOWN_KEYS:
            import difflib  # only for a mistake

            close = difflib.get_close_matches(str(key), _KNOWN_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(_KNOWN_KEYS)}"
            problems.append(f"{where}.{key}: unknown key; {hint}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: required, a slug such as 'ai-at-forbes'")
        name = ""
    elif slugify(name) != name:
        problems.append(
            f"{where}.name: must be a slug (lowercase letters, digits and single '-'), "
            f"such as {slugify(name) or 'my-feed'!r}, got {name!r}"
        )
    title = _text(raw, "title", where, problems) or name
    description = _text(raw, "description", where, problems) or f"{title}, newest first."
    topics_any = _slugs(raw, "topics_any", where, problems)
    topics_all = _slugs(raw, "topics_all", where, problems) or frozenset()
    topics_none = _slugs(raw, "topics_none", where, problems) or frozenset()
    providers = _slugs(raw, "providers", where, problems)
    for both in sorted(topics_all & topics_none):
        problems.append(
            f"{where}.topics_none: {both!r} is also in topics_all: the feed could never list "
            "anything; remove it from one of them"
        )
    if topics_any is not None and topics_any and topics_any <= topics_none:
        problems.append(
            f"{where}.topics_none: excludes every topic of topics_any: the feed could never "
            "list anything"
        )
    title_matches = _pattern(raw, "title_matches", where, problems)
    excerpt_matches = _pattern(raw, "excerpt_matches", where, problems)
    has_image = raw.get("has_image")
    if has_image is not None and not isinstance(has_image, bool):
        problems.append(f"{where}.has_image: must be true or false, got {has_image!r}")
        has_image = None
    max_age = _days(raw, where, problems)
    max_items = raw.get("max_items")
    if max_items is not None and (
        isinstance(max_items, bool)
        or not isinstance(max_items, int)
        or not 1 <= max_items <= MAX_ITEMS
    ):
        problems.append(
            f"{where}.max_items: must be a whole number from 1 to {MAX_ITEMS:,}, got {max_items!r}"
        )
        max_items = None
    formats = _formats(raw, where, problems)
    if len(problems) > before:
        return None
    return FeedDefinition(
        name=name,
        title=title,
        description=description,
        topics_any=topics_any,
        topics_all=topics_all,
        topics_none=topics_none,
        providers=providers,
        title_matches=title_matches,
        excerpt_matches=excerpt_matches,
        has_image=has_image,
        max_age_days=max_age,
        max_items=max_items,
        formats=formats,
    )


def _text(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}.{key}: must be non-empty text, got {value!r}")
        return None
    return value.strip()


def _slugs(
    raw: Mapping[str, Any], key: str, where: str, problems: list[str]
) -> frozenset[str] | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}.{key}: must be a list of names, got {value!r}")
        return None
    if not value:
        problems.append(
            f"{where}.{key}: an empty list matches nothing: the feed could never list "
            "anything; remove the key to have no condition"
        )
        return None
    slugs = set()
    for name in value:
        slug = slugify(name)
        if not slug:
            problems.append(f"{where}.{key}: {name!r} has no letters or digits to match on")
        slugs.add(slug)
    return frozenset(slugs)


def _pattern(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> Pattern | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append(f"{where}.{key}: must be a regular expression, got {value!r}")
        return None
    try:
        return Pattern(value)
    except PatternError as exc:
        problems.append(f"{where}.{key}: {exc}: {value!r}")
        return None


def _days(raw: Mapping[str, Any], where: str, problems: list[str]) -> float | None:
    found: dict[str, float] = {}
    for key in ("newer_than_days", "max_age_days"):
        value = raw.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value <= MAX_DAYS  # False for nan too
        ):
            problems.append(
                f"{where}.{key}: must be a number of days > 0 and at most {MAX_DAYS:,} "
                f"(a century), got {value!r}"
            )
            continue
        found[key] = float(value)
    if len(set(found.values())) > 1:
        problems.append(
            f"{where}.max_age_days: newer_than_days says otherwise; they are the same "
            "setting, give one"
        )
        return None
    return next(iter(found.values()), None)


def _formats(
    raw: Mapping[str, Any], where: str, problems: list[str]
) -> tuple[FeedFormat, ...] | None:
    value = raw.get("formats")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    names = [fmt.value for fmt in ALL_FORMATS]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v in names for v in value)
    ):
        problems.append(
            f"{where}.formats: must be a non-empty list of {', '.join(names)}, got {value!r}"
        )
        return None
    return tuple(fmt for fmt in ALL_FORMATS if fmt.value in value)
