"""`aggregator explain`, the deciding half: why one article is or is not in each feed, from
what the catalog says of it (`Evidence`, read in one snapshot by `cli.inspect`) and the
config's feed rules. Pure: no disk, no clock; tests give it evidence directly.

The rules are the build's own: the newest file (then the first path) speaks for a webUrl; a
rejected file keeps its last good version unless it says it is not published; an item dated
after the cut-off is embargoed; a feed lists its newest `max_items` items within its time
window; the feeds an article belongs in are `feeds_of` under the config's rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aggregator.catalog import FileRecord, IdentityRecord, ItemRecord
from aggregator.config import Settings
from aggregator.membership import feeds_of, slugify
from aggregator.model import Article, FeedKey, FeedKind


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the catalog says of one article file or webUrl, all of one moment."""

    asked: str  # as the editor gave it
    path: str | None  # the file asked for, relative to the input (None: asked by URL)
    file: FileRecord | None  # that file's record (None: unknown, or asked by URL)
    url: str | None
    rivals: tuple[FileRecord, ...] = ()  # every file whose last good version has `url`
    item: ItemRecord | None = None  # what the feeds list for `url`
    identities: tuple[IdentityRecord, ...] = ()
    positions: Mapping[FeedKey, int] = field(default_factory=dict)  # at the cut-off
    written: Mapping[FeedKey, int | None] = field(default_factory=dict)  # as last written
    cutoff: datetime | None = None  # the last build's
    embargo: bool = True  # whether that build held back later items
    unknown_reason: str | None = None  # why the file is not in the catalog, if known


@dataclass(frozen=True, slots=True)
class FeedVerdict:
    """One feed: whether it lists the article, where, and otherwise the rule that left it
    out (`position` only for the feeds the article is a member of)."""

    feed: str
    listed: bool
    reason: str | None = None
    position: int | None = None
    max_items: int | None = None
    written_position: int | None = None  # in the feed file as last written

    def as_json(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "listed": self.listed,
            "position": self.position,
            "max_items": self.max_items,
            "written_position": self.written_position,
            "reason": self.reason,
        }


@dataclass(slots=True)
class Explanation:
    """The answer: a one-line summary, the facts, and a verdict per feed."""

    asked: str
    path: str | None
    url: str | None
    summary: str = ""
    known: bool = True
    error: str | None = None  # why the file's current bytes were rejected
    kept_version: bool = False  # rejected, but its last good version is still used
    published: bool | None = None
    guid: str | None = None
    date: datetime | None = None
    embargoed_until: datetime | None = None
    duplicate: dict[str, Any] | None = None  # winner, losers, reason
    feeds: list[FeedVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def listed(self) -> bool:
        return any(v.listed for v in self.feeds)

    def as_json(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "path": self.path,
            "url": self.url,
            "known": self.known,
            "listed": self.listed,
            "summary": self.summary,
            "error": self.error,
            "kept_version": self.kept_version,
            "published": self.published,
            "guid": self.guid,
            "date": _iso(self.date),
            "embargoed_until": _iso(self.embargoed_until),
            "duplicate": self.duplicate,
            "feeds": [v.as_json() for v in self.feeds],
            "notes": self.notes,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def winner_of(rivals: tuple[FileRecord, ...]) -> tuple[FileRecord | None, str]:
    """The file that speaks for a webUrl (newest mtime, then first path) and why, in words."""
    candidates = sorted(
        (r for r in rivals if r.article_json is not None), key=lambda r: (-r.mtime_ns, r.path)
    )
    if not candidates:
        return None, ""
    if len(candidates) == 1:
        return candidates[0], "the only file with this webUrl"
    first, second = candidates[0], candidates[1]
    if first.mtime_ns > second.mtime_ns:
        return first, "newest mtime"
    return first, "same mtime, first path"


def explain(evidence: Evidence, settings: Settings) -> Explanation:
    """Why the article is or is not in each feed."""
    answer = Explanation(evidence.asked, evidence.path, evidence.url)
    record = evidence.file
    if evidence.path is not None and record is None:
        answer.known = False
        answer.summary = "not in any feed: the catalog does not know this file"
        answer.notes.append(
            evidence.unknown_reason
            or "no build has read it yet (the daemon reads it within seconds of its arrival), "
            "or it is not an article file of the input (see `aggregator config`: input, "
            "patterns)"
        )
        return answer
    if record is not None and record.error is not None:
        answer.error = record.error
        answer.kept_version = record.article_json is not None
        if not answer.kept_version:
            answer.summary = "not in any feed: the file is rejected and no good version is kept"
            answer.notes.append(
                "fix the file (`aggregator check FILE` says the same): the next build reads it"
            )
            return answer
        answer.notes.append("rejected now; its last good version is still listed as it was")
    if evidence.url is None:
        answer.summary = "not in any feed: no version of it was ever read"
        return answer
    winner, why = winner_of(evidence.rivals)
    if winner is not None and len([r for r in evidence.rivals if r.article_json]) > 1:
        losers = [r.path for r in evidence.rivals if r.article_json and r is not winner]
        answer.duplicate = {"winner": winner.path, "losers": sorted(losers), "reason": why}
    this = record if record is not None else winner
    article = this.article() if this is not None else None
    if article is None:
        answer.summary = "not in any feed: no version of it is kept"
        return answer
    answer.published = article.published
    answer.guid = _guid(evidence, this)
    if record is not None and winner is not None and winner.path != record.path:
        answer.summary = f"not in any feed: {winner.path} has the same webUrl and wins ({why})"
        return answer
    if not article.published:
        answer.summary = "not in any feed: it is not published (published: is not true)"
        return answer
    item = evidence.item
    if item is None:
        answer.summary = "not in any feed yet: the next build lists it"
        return answer
    answer.date = item.date
    answer.guid = item.guid
    _membership_verdicts(answer, evidence, item, settings)
    _rule_verdicts(answer, article, item, settings)
    listed = [v for v in answer.feeds if v.listed]
    left = len(answer.feeds) - len(listed)
    if answer.embargoed_until is not None:
        answer.summary = f"not in any feed yet: embargoed until {_iso(answer.embargoed_until)}"
    elif listed:
        answer.summary = f"listed in {_plural(len(listed), 'feed')}" + (
            f", left out of {left}" if left else ""
        )
    else:
        answer.summary = "not in any feed: every feed it belongs in leaves it out"
    return answer


def _guid(evidence: Evidence, record: FileRecord | None) -> str | None:
    """The GUID the article has, or had when it was last listed (None: never listed)."""
    if evidence.item is not None and (record is None or evidence.item.path == record.path):
        return evidence.item.guid
    for identity in reversed(evidence.identities):
        if record is not None and identity.path == record.path:
            return identity.guid
    return None


def _membership_verdicts(
    answer: Explanation, evidence: Evidence, item: ItemRecord, settings: Settings
) -> None:
    cutoff = evidence.cutoff
    if evidence.embargo and cutoff is not None and item.date > cutoff:
        answer.embargoed_until = item.date
    for key in item.feeds:
        limit = _limit(key, settings)
        position = evidence.positions.get(key)
        written = evidence.written.get(key)
        verdict = FeedVerdict(str(key), True, None, position, limit, written_position=written)
        days = _window(key, settings)
        if answer.embargoed_until is not None:
            verdict = _out(verdict, f"embargo: dated {_iso(item.date)}, after the cut-off")
        elif days is not None and cutoff is not None and item.date <= cutoff - timedelta(days):
            verdict = _out(
                verdict,
                f"max_age_days: {days:g}: dated {_iso(item.date)}, before the window's start "
                f"{_iso(cutoff - timedelta(days))}",
            )
        elif position is not None and position > limit:
            verdict = _out(
                verdict,
                f"max_items: {limit}: it is #{position} ({_plural(position - 1, 'newer item')})",
            )
        answer.feeds.append(verdict)
        if verdict.listed and written is None:
            answer.notes.append(f"{key}: not written with it yet; the next build writes it")


def _out(verdict: FeedVerdict, reason: str) -> FeedVerdict:
    return FeedVerdict(
        verdict.feed,
        False,
        reason,
        verdict.position,
        verdict.max_items,
        verdict.written_position,
    )


def _limit(key: FeedKey, settings: Settings) -> int:
    for definition in settings.feeds:
        if definition.key == key and definition.max_items is not None:
            return definition.max_items
    return settings.max_items


def _window(key: FeedKey, settings: Settings) -> float | None:
    for definition in settings.feeds:
        if definition.key == key:
            return definition.max_age_days
    return None


def _rule_verdicts(
    answer: Explanation, article: Article, item: ItemRecord, settings: Settings
) -> None:
    """The feeds the article is not a member of, each with the rule that leaves it out."""
    rules = settings.feed_rules
    out = answer.feeds
    if not rules.all:
        out.append(FeedVerdict("all", False, "builtin_feeds.all: false"))
    if not rules.topics:
        out.append(FeedVerdict("topics/*", False, "builtin_feeds.topics: false"))
    elif not article.topics:
        out.append(FeedVerdict("topics/*", False, "topics: it names none"))
    for topic in article.topics:
        if not slugify(topic):
            out.append(FeedVerdict("topics/?", False, f"topic {topic!r} has no letters or digits"))
    if not rules.providers:
        out.append(FeedVerdict("providers/*", False, "builtin_feeds.providers: false"))
    elif article.provider is None:
        out.append(FeedVerdict("providers/*", False, "provider: it names none"))
    for definition in settings.feeds:
        if definition.key in item.feeds:
            continue
        reason = definition.refusal(article)
        out.append(
            FeedVerdict(
                str(definition.key),
                False,
                f"feeds: {definition.name}: {reason}"
                if reason
                else "the catalog has not decided it under this feed's definition yet "
                "(the next build does)",
                max_items=_limit(definition.key, settings),
            )
        )
    expected = set(feeds_of(article, rules))
    for key in item.feeds:
        if key not in expected and key.kind is not FeedKind.ALL:
            answer.notes.append(
                f"{key}: this config would not list it there; the catalog was decided under "
                "another config (the next build decides again)"
            )
