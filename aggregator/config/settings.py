"""The settings a build, the daemon and the server run on (`Settings` and its parts), with
their defaults, and the keys the config file documents.

How they are read: `loading` (file, flags, origins) and `validate` (the table of keys).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.membership import FeedDefinition, FeedRules
from aggregator.model import ALL_FORMATS, FeedFormat

# Looked for in this order when no --config is given.
DEFAULT_CONFIGS = (Path("aggregator.yaml"), Path("config/aggregator.yaml"))

NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _default_node() -> str:
    """The host name, as far as it is a valid node name (it names stored paths)."""
    # uname, not socket.gethostname: the same name, without importing the socket module.
    name = os.uname().nodename.split(".")[0]
    return name if NODE_NAME.fullmatch(name) else "node"


@dataclass(frozen=True, slots=True)
class FeedTitles:
    """Titles and descriptions of the feeds; `{name}` is the topic's or provider's name."""

    site: str = "Aggregator"
    all: str = "All articles"
    all_description: str = "Every published article, newest first."
    topic: str = "Topic: {name}"
    topic_description: str = "Published articles on {name}, newest first."
    provider: str = "Provider: {name}"
    provider_description: str = "Published articles from {name}, newest first."


DEFAULT_MAX_EXCERPT_CHARS = 4000
"""Characters of an excerpt shown in an item: about 600 words, more than any reader shows."""


@dataclass(frozen=True, slots=True)
class BuiltinFeeds:
    """Which groups of built-in feeds are built (`builtin_feeds:` in the config)."""

    all: bool = True
    topics: bool = True
    providers: bool = True


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a build or the daemon needs to know, already validated."""

    # What `aggregator init` makes. Relative folders: to the config file's folder when one is
    # read (`loading`), else to the current folder.
    input: Path = Path("articles")
    output: Path = Path("feeds")
    state: Path = Path(".aggregator")
    base_url: str = "http://localhost:8000/"
    max_items: int = 50
    patterns: tuple[str, ...] = ("*.txt", "*.md")
    max_file_bytes: int = 1_048_576
    max_excerpt_chars: int = DEFAULT_MAX_EXCERPT_CHARS
    language: str = "en"
    workers: int = 0  # 0: one per core
    formats: tuple[FeedFormat, ...] = ALL_FORMATS
    # WebSub hubs every feed advertises and that are told of each change (none: no pings).
    hubs: tuple[str, ...] = ()
    titles: FeedTitles = field(default_factory=FeedTitles)
    # Hold back published articles dated in the future until their date.
    embargo: bool = True
    feeds: tuple[FeedDefinition, ...] = ()
    builtin_feeds: BuiltinFeeds = field(default_factory=BuiltinFeeds)
    log_level: str = "INFO"
    log_format: str = "text"
    # daemon
    debounce_seconds: float = 0.2
    debounce_max_seconds: float = 2.0
    reconcile_seconds: float = 300.0
    poll: bool = False
    poll_seconds: float = 1.0
    # serving (`aggregator serve`, `run --serve`)
    bind: str = "127.0.0.1"
    port: int = 8000
    max_age: int = 60
    gzip_sidecars: bool = True
    # One line per request on the `aggregator.access` logger (off: none).
    access_log: bool = False
    # Subscriber counts feed readers report, kept in <state>/subscribers.json (see serve).
    subscribers_seconds: float = 60.0
    # metrics and health over HTTP (`run --metrics-port`; None: no such server)
    metrics_port: int | None = None
    metrics_bind: str = "127.0.0.1"
    # reliability
    lock_wait_seconds: float = 30.0
    follow_external_links: bool = False
    # scale-out: a PostgreSQL catalog shared by several nodes (None: SQLite in `state`)
    catalog: str | None = None
    node: str = field(default_factory=_default_node)

    @property
    def catalog_path(self) -> Path:
        """The SQLite file that remembers articles between runs."""
        return self.state / "catalog.sqlite3"

    @property
    def feed_rules(self) -> FeedRules:
        """Which feeds an article can be in: the built-in groups on, and the config's feeds."""
        return FeedRules(
            all=self.builtin_feeds.all,
            topics=self.builtin_feeds.topics,
            providers=self.builtin_feeds.providers,
            custom=self.feeds,
        )

    @property
    def catalog_location(self) -> Path | str:
        """The catalog to open: the PostgreSQL URL if one is set, else the SQLite file."""
        return self.catalog if self.catalog is not None else self.catalog_path

    @property
    def worker_count(self) -> int:
        """Processes used to parse many files at once."""
        return self.workers or max(1, os.cpu_count() or 1)


# The top-level keys the template documents (flat forms of section keys are accepted too,
# as the command line gives them, but never suggested).
DOCUMENTED_KEYS = (
    "input",
    "output",
    "state",
    "catalog",
    "node",
    "base_url",
    "max_items",
    "patterns",
    "max_file_bytes",
    "max_excerpt_chars",
    "language",
    "workers",
    "formats",
    "websub",
    "feed_titles",
    "embargo",
    "builtin_feeds",
    "feeds",
    "logging",
    "daemon",
    "serve",
    "metrics",
)
