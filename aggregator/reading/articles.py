"""Article files → `Article`, or an `ArticleError` that names the file, the field and the fix.

    bytes --size, NUL, UTF-8--> text --split at `---` lines--> YAML
          --front_matter.parse_fast, else PyYAML after safety checks--> mapping
          --fields--> Article

An article file is UTF-8 (BOM and CRLF allowed): a `---` line, YAML fields, a `---` line, then
an optional body that is ignored. Only what `Article` holds is kept; internal fields such as
`secured` are never read. Both functions are plain top-level functions so that they can run in
worker processes.

PyYAML, and the guards that keep its cost bounded, are in `yaml_safe`: it is only reached for
files the fast parser declines (and imported then only). The `loader` these functions take is
the PyYAML loader class used there (None: `yaml_safe.LOADER`).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.errors import ArticleError
from aggregator.model import Article, Image, Provider, RelatedLink
from aggregator.reading.front_matter import parse_fast
from aggregator.reading.values import (
    EARLIEST,
    LATEST,
    Clean,
    OutOfRange,
    http_url,
    kind_of,
    optional_text,
    pixels,
    short_repr,
    to_utc,
    unchanged,
    xml_clean,
)

if TYPE_CHECKING:
    import yaml

__all__ = [
    "DEFAULT_MAX_BYTES",
    "front_matter_text",
    "load_front_matter",
    "parse_article",
    "read_article",
]

DEFAULT_MAX_BYTES = 1_048_576

LOGGER = logging.getLogger("aggregator.articles")

MAX_TOPICS = 100
"""Most topics one article may name: each is a feed of its own, so one file of 20,000
topics would make 20,000 feeds. More is a field error, not a silent cut."""


# O_NONBLOCK: opening a named pipe dropped into the input folder must not wait for a writer;
# for regular files it changes nothing.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_BOM = b"\xef\xbb\xbf"
# Bytes of ordinary text: deleting them from a file leaves the C0 controls and DEL, if any.
_TEXT_BYTES = b"\t\n\r" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_OPENING = re.compile(rb"---[ \t]*\r?\n")
# Raw characters YAML cannot carry (PyYAML rejects the whole file for one of them). They are
# invisible debris in practice, so they are dropped instead; NEL (U+0085) is a YAML line break
# and stays. The same characters written as escapes (`"\x01"`) reach the text fields, where the
# XML rule below applies.
_RAW_UNSAFE = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
# A top-level `published:` line, read from a file whose YAML cannot be parsed (a takedown
# saved with a mistake): its value, without quotes' meaning or a trailing comment. Only a
# whole line counts: a file cut short inside `published: true` must not read as `tr`.
_PUBLISHED_LINE = re.compile(
    rb"""^["']?published["']?[ \t]*:(?:[ \t]+([^#\r\n]*?))?[ \t]*(?:[ \t]#[^\r\n]*)?(?=\r?\n)""",
    re.MULTILINE,
)
# What YAML 1.1 reads as the boolean true (the only `published` value that lists an article).
_YAML_TRUE = frozenset({b"true", b"True", b"TRUE", b"yes", b"Yes", b"YES", b"on", b"On", b"ON"})
# Format characters (Unicode Cf) other than the joiners, which spell words in Persian and
# Indic scripts and emoji, and cannot reorder text.
_JOINERS = frozenset("\u200c\u200d")


def read_article(
    path: str | Path,
    source: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    loader: type[yaml.SafeLoader] | None = None,
) -> Article:
    """Read the article file at `path` (a `str` path costs less than a `Path` to make);
    `source` is its path relative to the input folder.

    The size is checked before reading and at most `max_bytes + 1` bytes are read, so a huge
    file costs nothing. Raises `ArticleError` for every problem, I/O included.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a pipe, socket or device"
                raise ArticleError(source, f"not a regular file ({kind}): cannot be an article")
            if status.st_size > max_bytes:
                raise ArticleError(source, _too_big(status.st_size, max_bytes))
            data = _read_up_to(fd, status.st_size, max_bytes + 1)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise ArticleError(source, "file vanished while being read") from None
    except OSError as exc:
        raise ArticleError(source, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # it grew between fstat and read
        raise ArticleError(source, _too_big(len(data), max_bytes, at_least=True))
    return parse_article(data, source, max_bytes=max_bytes, loader=loader)


def _read_up_to(fd: int, expected: int, limit: int) -> bytes:
    """Up to `limit` bytes of `fd`; `expected` (the size fstat gave) sizes the first read."""
    # One read of the expected size plus one byte (to notice a file that grew), then reads
    # until end of file: never a buffer of `limit` bytes for a file of a few kilobytes. A
    # short first read is the whole file (a regular file reads short only at its end).
    first = min(expected + 1, limit)
    chunks = [os.read(fd, first)]
    total = len(chunks[0])
    if total < first:
        return chunks[0]
    while chunks[-1] and total < limit:
        chunks.append(os.read(fd, limit - total))
        total += len(chunks[-1])
    return b"".join(chunks) if len(chunks) > 2 or chunks[-1] else chunks[0]


def parse_article(
    data: bytes,
    source: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    loader: type[yaml.SafeLoader] | None = None,
) -> Article:
    """Turn the bytes of an article file into an `Article`; raises `ArticleError`, only.

    `source` is the file's path relative to the input folder: it becomes `Article.source` and
    is named in every error. Whatever goes wrong in here, however unexpected, comes out as an
    `ArticleError` with a plain reason (the unexpected ones are logged at DEBUG with their
    traceback); its `withdrawn` says whether the text says the article is not published.
    """
    if len(data) > max_bytes:
        raise ArticleError(source, _too_big(len(data), max_bytes))
    fields: dict[str, object] | None = None
    try:
        text = front_matter_text(data, source)
        fields = load_front_matter(text, source, loader=loader)
        return _article(fields, source, text, loader)
    except ArticleError as exc:
        exc.withdrawn = _says_unpublished(data, fields)
        raise
    except Exception as exc:  # the boundary: one file's failure is that file's alone
        LOGGER.debug("unexpected error reading %s", source, exc_info=True)
        raise ArticleError(
            source,
            f"cannot be read as an article ({type(exc).__name__}: {short_repr(str(exc))});"
            " check its front matter",
            withdrawn=_says_unpublished(data, fields),
        ) from None


def _says_unpublished(data: bytes, fields: dict[str, object] | None) -> bool:
    """Whether a rejected file's text says its article is not published.

    Its fields, if the YAML parsed: `published` is not true. Otherwise its top-level
    `published:` lines in the front matter: one whose value is not a YAML true. With no such
    line nothing can be told (a file cut short mid-copy), and the answer is False.
    """
    if fields is not None:
        return fields.get("published") is not True
    start = data.find(b"\n") + 1 if data.startswith((b"---", _BOM + b"---")) else 0
    end = _closing_line(data, start)
    region = data[start:end] if end >= 0 else data[start:]
    return any(match.group(1) not in _YAML_TRUE for match in _PUBLISHED_LINE.finditer(region))


def front_matter_text(data: bytes, source: str) -> str:
    """The YAML between the `---` lines of an article file, with LF line ends.

    Raises `ArticleError` for empty, binary and non-UTF-8 files and for files whose front
    matter is missing or not closed. Raw characters YAML cannot carry (C0 and C1 controls,
    U+FFFE, U+FFFF) are dropped.
    """
    if not data:
        raise ArticleError(source, "file is empty: write front matter between two `---` lines")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ArticleError(
            source,
            f"binary file (NUL byte at offset {nul}): article files must be UTF-8 text"
            " (UTF-16 files look like this too: save them as UTF-8)",
        )
    bom = 3 if data.startswith(_BOM) else 0
    try:
        whole = data[bom:].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = data.count(b"\n", 0, offset) + 1
        raise ArticleError(
            source,
            f"not UTF-8: byte 0x{data[offset]:02x} at line {line} (offset {offset})"
            f" is an {exc.reason}; save the file as UTF-8",
        ) from None
    if not whole or whole.isspace():
        raise ArticleError(
            source, "file holds only whitespace: write front matter between two `---` lines"
        )
    # The `---` lines are looked for in the bytes: quicker than in text, and the same places.
    opening = _OPENING.match(data, bom)
    if opening is None:
        raise ArticleError(
            source,
            "no front matter: the file must start with a `---` line, then the YAML fields,"
            " then a closing `---` line",
        )
    start = opening.end()
    end = _closing_line(data, start)
    if end < 0:
        raise ArticleError(
            source, "front matter is not closed: add a `---` line after the YAML fields"
        )
    text = data[start:end].decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    # A regex scan of every file would cost more than the fast parser's whole read of it: look
    # for the bytes these characters are made of first (C0 and DEL, or the UTF-8 lead bytes of
    # U+0080..U+009F and U+FFFE/U+FFFF). Single bytes: `in` finds those with memchr.
    if data.translate(None, _TEXT_BYTES) or b"\xc2" in data or b"\xef" in data:
        text = _RAW_UNSAFE.sub("", text)
    return text


def _closing_line(data: bytes, start: int) -> int:
    """Where the first `---` line at or after `start` (a line start) begins, or -1."""
    # find() is many times quicker than a MULTILINE regex search over the whole file.
    at = start if data.startswith(b"---", start) else data.find(b"\n---", start) + 1
    while at > 0:
        end = data.find(b"\n", at)
        if not data[at + 3 : end if end >= 0 else len(data)].strip(b" \t\r"):
            return at
        at = data.find(b"\n---", at) + 1
    return -1


def load_front_matter(
    text: str, source: str, *, loader: type[yaml.SafeLoader] | None = None
) -> dict[str, object]:
    """The mapping PyYAML's `safe_load` makes of front matter `text`; raises `ArticleError`.

    The fast parser reads it when it is sure; otherwise PyYAML does, after the safety checks
    (and with one difference: a timestamp that is no date, `2021-02-30`, stays text so that the
    field check can name it).
    """
    if (mapping := parse_fast(text)) is not None:
        return mapping
    from aggregator.reading.yaml_safe import load_guarded

    loaded = load_guarded(text, source, loader)
    if loaded is None:
        raise ArticleError(source, "front matter is empty: add at least title and webUrl")
    if not isinstance(loaded, dict):
        kind = "a list" if isinstance(loaded, list) else f"a single value ({loaded!r:.40})"
        raise ArticleError(
            source, f"front matter is {kind}, not a mapping of fields: write `key: value` lines"
        )
    return loaded


def _too_big(size: int, limit: int, *, at_least: bool = False) -> str:
    what = f"more than {limit}" if at_least else str(size)
    return f"file is {what} bytes, over the limit of {limit} bytes (raise max_file_bytes in config)"


# --- mapping → Article ------------------------------------------------------------------------


def _article(
    fields: dict[str, object], source: str, text: str, loader: type[yaml.SafeLoader] | None
) -> Article:
    # Control characters XML cannot carry only arrive through escapes (raw ones are dropped
    # before parsing), so a document without a backslash needs no cleaning at all.
    clean = xml_clean if "\\" in text else unchanged

    title = _title(fields.get("title"), source, text, clean, loader)
    url = fields.get("webUrl")
    if url is None:
        raise ArticleError(
            source,
            "missing: add the article's absolute http(s) URL, like webUrl: https://example.com/a",
            field="webUrl",
        )
    web_url = http_url(url, clean)
    if web_url is None:
        raise ArticleError(
            source,
            f"{short_repr(url)} is not an absolute http(s) URL with a host: write it like"
            " https://example.com/story",
            field="webUrl",
        )

    excerpt = fields.get("excerpt")
    if excerpt is None:
        excerpt = ""
    elif not isinstance(excerpt, str):
        from aggregator.reading.yaml_safe import scalar_text

        excerpt = scalar_text(excerpt, source, "excerpt", text, loader)
    excerpt = clean(excerpt).strip()

    published_at = fields.get("publishedDateTime")
    try:
        when = to_utc(published_at)
    except OutOfRange:
        raise ArticleError(
            source,
            f"{short_repr(published_at)} is outside the dates accepted (years"
            f" {EARLIEST.year} to {LATEST.year}, in UTC): correct the year",
            field="publishedDateTime",
        ) from None
    except ValueError:
        raise ArticleError(
            source,
            f"{short_repr(published_at)} is not an ISO 8601 date-time: write it like"
            " 2021-12-22T13:00:00Z",
            field="publishedDateTime",
        ) from None

    return Article(
        source=source,
        url=web_url,
        title=title,
        excerpt=excerpt,
        published=fields.get("published") is True,
        published_at=when,
        provider=_provider(fields.get("provider"), clean),
        topics=_topics(fields.get("topics"), source, text, clean, loader),
        images=_images(fields.get("images"), clean),
        related=_related(fields.get("related"), clean),
    )


def _title(
    value: object, source: str, text: str, clean: Clean, loader: type[yaml.SafeLoader] | None
) -> str:
    if value is None:
        raise ArticleError(source, "missing: every article needs a title", field="title")
    if not isinstance(value, str):
        from aggregator.reading.yaml_safe import scalar_text

        value = scalar_text(value, source, "title", text, loader)
    title = clean(value).strip()
    if not title:
        raise ArticleError(source, "is empty: give the article a title", field="title")
    return title


def _topics(
    value: object, source: str, text: str, clean: Clean, loader: type[yaml.SafeLoader] | None
) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise ArticleError(
            source,
            f"must be a list of topic names (or one name), not {kind_of(value)}",
            field="topics",
        )
    topics: list[str] = []
    seen: set[str] = set()
    written: dict[int, str] | None = None  # the scalar items as written, composed if needed
    for index, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, str):
            topic = clean(item).strip()
            if not topic.isprintable():
                topic = _name(topic)
        elif isinstance(item, (list, dict)):
            raise ArticleError(
                source,
                f"item {index + 1} is {kind_of(item)}: write each topic as a name",
                field="topics",
            )
        else:
            if written is None:
                from aggregator.reading.yaml_safe import items_as_written

                written = items_as_written(text, "topics", loader)
            topic = written[index].strip() if index in written else str(item)
            if not topic.isprintable():
                topic = _name(topic)
        folded = topic.casefold()
        if topic and folded not in seen:
            seen.add(folded)
            topics.append(topic)
            if len(topics) > MAX_TOPICS:
                raise ArticleError(
                    source,
                    f"names more than {MAX_TOPICS} topics; each topic is a feed: keep the"
                    " ones readers follow",
                    field="topics",
                )
    return tuple(topics)


def _provider(value: object, clean: Clean) -> Provider | None:
    if isinstance(value, str):
        text = _name(clean(value))
        return Provider(text) if text else None
    if not isinstance(value, dict):
        return None
    domain = _name(optional_text(value.get("domain"), clean) or "") or None
    name = _name(optional_text(value.get("name"), clean) or "") or domain
    return Provider(name, domain) if name else None


def _name(text: str) -> str:
    """A topic's or provider's name as it may title a shared feed: no invisible format
    characters (bidirectional overrides and isolates, zero-width spaces, BOM …: they would
    reorder or hide the feed's title for every subscriber) and single spaces, trimmed."""
    if text.isprintable():  # nearly every name: no format character, no odd space
        return text.strip()
    kept = "".join(char for char in text if char in _JOINERS or unicodedata.category(char) != "Cf")
    return " ".join(kept.split())


def _images(value: object, clean: Clean) -> tuple[Image, ...]:
    images: list[Image] = []
    for item in _items(value):
        if isinstance(item, dict):
            url = http_url(item.get("url"), clean)
            if url is not None:
                images.append(Image(url, pixels(item.get("width")), pixels(item.get("height"))))
        elif isinstance(item, str):
            url = http_url(item, clean)
            if url is not None:
                images.append(Image(url))
    return tuple(images)


def _related(value: object, clean: Clean) -> tuple[RelatedLink, ...]:
    links: list[RelatedLink] = []
    for item in _items(value):
        if not isinstance(item, dict):
            continue
        raw_title = item.get("title")
        # Inlined common case (a string): this loop runs for every related item of every file.
        title = (
            clean(raw_title).strip()
            if isinstance(raw_title, str)
            else optional_text(raw_title, clean)
        )
        url = http_url(item.get("webUrl"), clean)
        if not title or url is None:
            continue
        provider = item.get("provider")
        if isinstance(provider, dict):
            name = optional_text(provider.get("name"), clean) or optional_text(
                provider.get("domain"), clean
            )
        else:
            name = optional_text(provider, clean)
        when = item.get("publishedDateTime")
        if not (isinstance(when, datetime) and when.tzinfo is UTC and EARLIEST <= when <= LATEST):
            try:
                when = to_utc(when)
            except ValueError:
                when = None  # a related link is worth showing without its date
        links.append(RelatedLink(title, url, name, when))
    return tuple(links)


def _items(value: object) -> list[object]:
    """A list as is, a lone mapping or string as a list of one, anything else as nothing."""
    if isinstance(value, list):
        return value
    if isinstance(value, (dict, str)):
        return [value]
    return []
