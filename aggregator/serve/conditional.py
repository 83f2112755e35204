"""The HTTP meaning of a file response, as plain functions of header values: its Content-Type,
its ETag, whether gzip is accepted, conditional requests and one byte range.

- `ETag`: strong, a hash of the bytes sent (not of mtime and size), so identical files give
  identical ETags on every machine serving them, and new bytes always give a new one.
- 304 on `If-None-Match` (weak comparison, lists, `*`), or else on `If-Modified-Since`; 412
  on `If-Match` / `If-Unmodified-Since` (RFC 9110 §13); `Range` (one range: 206;
  unsatisfiable: 416) with `If-Range`.
- explicit Content-Types (never the host's /etc/mime.types).
"""

from __future__ import annotations

import hashlib
import re
from base64 import urlsafe_b64encode
from collections.abc import Mapping
from email.utils import mktime_tz, parsedate_tz

from aggregator.output import GZIP_SUFFIX

# Longest suffix first: `all.rss.xml` is RSS, not plain XML.
CONTENT_TYPES: tuple[tuple[str, str], ...] = (
    (".rss.xml", "application/rss+xml"),
    (".atom.xml", "application/atom+xml"),
    (".json", "application/feed+json"),
    (".opml", "text/x-opml"),
    (".html", "text/html; charset=utf-8"),
    (".xml", "application/xml"),
    (GZIP_SUFFIX, "application/gzip"),
)
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_RANGE = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")
# Digits of a byte position taken at their value: more is past any file (and int() refuses
# strings over 4,300 digits).
_POSITION_DIGITS = 18
_PAST_ANY_FILE: int = 10**_POSITION_DIGITS
_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')


def content_type(name: str) -> str:
    """The Content-Type a file is served with, from its name alone."""
    for suffix, kind in CONTENT_TYPES:
        if name.endswith(suffix):
            return kind
    return DEFAULT_CONTENT_TYPE


def entity_tag(data: bytes) -> str:
    """The strong ETag of `data`: a quoted 128-bit BLAKE2b hash, base64url."""
    digest = hashlib.blake2b(data, digest_size=16).digest()
    return '"' + urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding value accepts gzip (`gzip`, `x-gzip` or `*`, q > 0)."""
    if "gzip" not in header and "*" not in header:
        return False
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[coding.strip().lower()] = weight
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


def _http_date(value: str | None) -> int | None:
    if value is None:
        return None
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None


def _tags(header: str) -> list[tuple[bool, str]] | None:
    """(weak, tag) pairs of an If-Match / If-None-Match value; None for `*`."""
    if header.strip() == "*":
        return None
    return [(bool(weak), tag) for weak, tag in _ENTITY_TAG.findall(header)]


def precondition_failed(headers: Mapping[str, str], etag: str, mtime: int) -> bool:
    """If-Match (strong comparison), or else If-Unmodified-Since (RFC 9110 13.2.2)."""
    if_match = headers.get("If-Match")
    if if_match is not None:
        tags = _tags(if_match)
        return tags is not None and not any(not weak and tag == etag for weak, tag in tags)
    since = _http_date(headers.get("If-Unmodified-Since"))
    return since is not None and mtime > since


def not_modified(headers: Mapping[str, str], etag: str, mtime: int) -> bool:
    """If-None-Match (weak comparison), or else If-Modified-Since."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _tags(if_none_match)
        return tags is None or any(tag == etag for _, tag in tags)
    since = _http_date(headers.get("If-Modified-Since"))
    return since is not None and mtime <= since


def if_range_holds(headers: Mapping[str, str], etag: str, mtime: int) -> bool:
    """Whether a Range applies: no If-Range, or it names this version (strong match)."""
    value = headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return _http_date(value) == mtime


def _position(digits: str) -> int:
    """A byte position; a number too long to be one is past the end of any file."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > _POSITION_DIGITS:
        return _PAST_ANY_FILE
    return int(digits)


def byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte of a one-range `Range`; "unsatisfiable"; None to send it all.

    Other units and several ranges are ignored (RFC 9110 allows sending the whole file);
    a malformed or unsatisfiable byte range is "unsatisfiable" (416).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _RANGE.fullmatch(spec)
    if match is None or not (match[1] or match[2]):
        return "unsatisfiable"
    if not match[1]:
        suffix = _position(match[2])
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = _position(match[1])
    last = _position(match[2]) if match[2] else size - 1
    if last < first or first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)
