"""Field values as an `Article` keeps them: text without what XML cannot carry, http(s) URLs,
pixel sizes, and dates in UTC within the years accepted.

Pure functions of one value each, shared by every field check in `articles`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from urllib.parse import urlsplit


def short_repr(value: object) -> str:
    """`value` as a message shows it: its repr (a date's in ISO form), cut at 80 characters."""
    text = repr(value.isoformat()) if isinstance(value, date) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The dates accepted: RFC 822 (RSS) and RFC 3339 (Atom) write four-digit years, and no
article predates 1900. A date outside is a field error (for a related link: no date)."""


Clean = Callable[[str], str]

# What XML 1.0 cannot carry, removed from every text kept.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# The start of an http(s) URL whose host is a plain DNS name or IPv4 address: with nothing
# unprintable after it, that is nearly every URL, checked without urlsplit.
_SIMPLE_HOST = re.compile(
    r"(?:https?|HTTPS?)://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?:[/?#]|\Z)"
)
_URL_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_DIGITS = re.compile(r"[0-9]{1,9}")  # more is no pixel size (and int() refuses 4,300 digits)


def xml_clean(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry."""
    if _XML_UNSAFE.search(text) is None:
        return text
    if _SURROGATE.search(text) is not None:
        # `"\ud83d\ude00"` is one emoji written as two escapes: join such pairs first, so
        # that only lone halves are dropped.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _XML_UNSAFE.sub("", text)


def unchanged(text: str) -> str:
    return text


def optional_text(value: object, clean: Clean) -> str | None:
    """Text of a scalar (numbers and dates as text), trimmed; None when missing or empty."""
    if isinstance(value, str):
        text = clean(value).strip()
    elif isinstance(value, (int, float, date)):
        text = str(value)
    else:
        return None
    return text or None


def http_url(value: object, clean: Clean) -> str | None:
    """`value` cleaned and trimmed if it is an absolute http(s) URL with a host, else None."""
    if not isinstance(value, str):
        return None
    url = clean(value).strip()
    if _SIMPLE_HOST.match(url) is not None and (
        # memchr-quick checks for the few unwanted ASCII characters `clean` leaves
        " " not in url and "\t" not in url and "\n" not in url and "\r" not in url
        and "\x7f" not in url
        if url.isascii()
        else url.isprintable()
    ):  # fmt: skip
        return url  # nearly every URL: a DNS name or IPv4 host, and nothing odd after it
    if _URL_UNSAFE.search(url) is not None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def pixels(value: object) -> int | None:
    """A width or height in pixels: positive whole numbers, also written as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()) is not None:
        number = int(value.strip())
    else:
        return None
    return number if number > 0 else None


def to_utc(value: object) -> datetime | None:
    """An ISO 8601 date-time (or a YAML timestamp or date) as aware UTC; ValueError if not one.

    A time without zone is taken as UTC, a date as midnight UTC. None and blank mean no date.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        if not value.strip():
            return None
        moment = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(value)
    if moment.tzinfo is not UTC:
        if moment.utcoffset() is None:
            moment = moment.replace(tzinfo=UTC)
        else:
            try:
                moment = moment.astimezone(UTC)
            except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC time
                raise OutOfRange(value) from None
    if not EARLIEST <= moment <= LATEST:
        raise OutOfRange(value)
    return moment


class OutOfRange(ValueError):
    """A date-time that is one, but outside EARLIEST..LATEST."""


def kind_of(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {short_repr(value)}"
