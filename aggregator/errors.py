"""One exception root for the package; each subclass names the resource it concerns.

Every message a user sees says what went wrong, where (file, field or key) and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.events import ChangeEvent


class AggregatorError(Exception):
    """Root of every error this package raises on purpose."""


class ArticleError(AggregatorError):
    """An article file cannot be used: the file, the field (if any) and the reason.

    `withdrawn`: what could be read of the file says it is not published (a takedown saved
    together with a mistake), so its last good version must leave the feeds.
    """

    def __init__(
        self, path: str, reason: str, field: str | None = None, *, withdrawn: bool = False
    ) -> None:
        self.path = path
        self.reason = reason
        self.field = field
        self.withdrawn = withdrawn
        super().__init__(path, reason, field)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled across the worker boundary with the keyword-only flag.
        return (_article_error, (self.path, self.reason, self.field, self.withdrawn))

    @property
    def detail(self) -> str:
        """What is wrong without the file name: the field (if any) and the reason."""
        return f"field {self.field!r}: {self.reason}" if self.field else self.reason

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


def _article_error(path: str, reason: str, field: str | None, withdrawn: bool) -> ArticleError:
    return ArticleError(path, reason, field, withdrawn=withdrawn)


class ConfigError(AggregatorError):
    """The configuration is invalid; `problems` lists every one, each naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(source, self.problems)

    def __str__(self) -> str:
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"invalid configuration ({self.source}):\n{lines}"


class CatalogError(AggregatorError):
    """The catalog (SQLite state) cannot be used: locked, corrupt, unwritable."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"catalog {self.path}: {self.reason}"


class PublishError(AggregatorError):
    """An output file could not be written; the previous version stays in place."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.reason} (the previous file is left as it was)"


class FencedOut(AggregatorError):
    """A render stored by a node that is no longer the cluster's leader: refused, so a stale
    leader's bytes never reach any node (the current leader renders the same changes)."""

    def __init__(self, node: str, epoch: int) -> None:
        self.node = node
        self.epoch = epoch
        super().__init__(node, epoch)

    def __str__(self) -> str:
        return (
            f"node {self.node}: its render was refused: epoch {self.epoch} is no longer the "
            "leader's (another node took over and renders these changes)"
        )


def reason_of(exc: BaseException) -> str:
    """What a failure says in one line: one of ours, its message; anything else (a bug),
    its repr, which names its type."""
    return str(exc) if isinstance(exc, AggregatorError) else repr(exc)


class BuildIncomplete(AggregatorError):
    """A build that failed after its catalog sync was committed: what the sync took in is
    real, so its change events (`events`) still go out, and the feeds it marked stay pending
    for the next build, which writes them. `cause` is the failure itself."""

    def __init__(self, cause: Exception, events: Sequence[ChangeEvent], files: int) -> None:
        self.cause = cause
        self.events = tuple(events)
        self.files = files
        super().__init__(cause, files)

    @property
    def reason(self) -> str:
        """The failure alone, the same on every try (what a retry's log compares)."""
        return reason_of(self.cause)

    def __str__(self) -> str:
        files = f"{self.files} file{'' if self.files == 1 else 's'}"
        return (
            f"{self.reason}; the catalog had already taken in the changes of {files} (their "
            "feeds are written by the next build)"
        )


class NodeNameInUse(ConfigError):
    """The `node:` name is held by another live process of the cluster (exit 2, as for a
    bad config): two processes with one name would take each other's files for their own."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, [reason])
        self.reason = reason

    def __str__(self) -> str:
        return f"node {self.source}: {self.reason}"


class MissingExtra(ConfigError):
    """A setting needs an optional part of the package that is not installed (exit 2)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, [reason])
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


_PASSWORD_IN_URL = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/@?#:\s]*:)(?P<secret>[^/@?#\s]*)@", re.IGNORECASE
)
_PASSWORD_PARAM = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&#]*)", re.I)


def redact_url(url: str) -> str:
    """`url` (or a message holding URLs) with any password (`user:SECRET@`,
    `?password=SECRET`) shown as `***`: the form in which a URL may reach output or a log."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***@", url)
    return _PASSWORD_PARAM.sub(r"\g<head>***", text)
