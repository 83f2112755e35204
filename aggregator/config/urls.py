"""URLs of the config read the way they will be used: `base_url` with the feeds' paths
appended as the renderer appends them, the WebSub hubs as urllib will open them, the
PostgreSQL URL as far as urllib can read it (host and port); and `Invalid`, the problem a
reader of a value raises.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aggregator.errors import redact_url


class Invalid(Exception):
    """A value that cannot be read: each problem whole, `<dotted key>: <what is wrong>`."""

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems = problems


def _url_problem(url: Any, *, joined: str = "") -> str | None:
    """What is wrong with `url` as an absolute http(s) URL, read the way it will be used:
    parsed by urllib (host and port included), and, with `joined`, with that path appended
    as the renderer appends the feeds' paths to `base_url`. None when nothing is."""
    if not isinstance(url, str) or len(url) > _MAX_URL_CHARS:
        return f"must be text of at most {_MAX_URL_CHARS} characters"
    if any(c.isspace() or c in '<>"\\^`{|}' or not c.isprintable() for c in url):
        return 'holds a space, a control character or one of <>"\\^`{|} (percent-encode it)'
    for candidate in (url, url + joined) if joined else (url,):
        try:
            parts = urlsplit(candidate)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            return f"cannot be read as a URL ({exc})"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "must be an absolute http(s) URL with a host"
    return None


# Long enough for any real URL, short enough that none is a megabyte in every feed item.
_MAX_URL_CHARS = 2000


def base_url(key: str, base: Any) -> str:
    problem = _url_problem(base, joined="topics/a-topic.rss.xml")
    if problem is None and (urlsplit(base).query or urlsplit(base).fragment or "#" in base):
        problem = "must not have a query (?…) or fragment (#…): the feeds' paths go after it"
    if problem is not None:
        raise Invalid(
            f"{key}: {problem}; give one such as https://feeds.example.org/, got {base!r}"
        )
    return str(base) if base.endswith("/") else base + "/"


def postgres_url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        readable = False
    else:
        try:
            urlsplit(value).port  # noqa: B018 - raises ValueError for [::1 or port 99999
            readable = True
        except ValueError:
            readable = False
    if not readable:
        raise Invalid(
            f"{key}: must be a PostgreSQL URL such as postgresql://user@db-host/feeds "
            f"(leave it out to keep the SQLite catalog in `state`), "
            f"got {(redact_url(value) if isinstance(value, str) else value)!r}"
        )
    return str(value)


def hub_urls(key: str, hubs: Any) -> tuple[str, ...]:
    if isinstance(hubs, str):
        hubs = [hubs]
    if not isinstance(hubs, list):
        raise Invalid(f"{key}: must be a list of hub URLs, got {hubs!r}")
    good: list[str] = []
    bad: list[str] = []
    for hub in hubs:
        problem = _url_problem(hub)
        if problem is not None:
            bad.append(
                f"{key}: each hub must be an absolute http(s) URL such as "
                f"https://pubsubhubbub.appspot.com/ ({problem}), got {hub!r}"
            )
        elif hub not in good:
            good.append(hub)
    if bad:
        raise Invalid(*bad)
    return tuple(good)
