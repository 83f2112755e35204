"""Article files → `Article`, or an `ArticleError` that names the file, the field and the fix.

    bytes --size, NUL, UTF-8--> text --split at `---` lines--> YAML
          --front_matter.parse_fast, else PyYAML after safety checks--> mapping
          --fields--> Article

An article file is UTF-8 (BOM and CRLF allowed): a `---` line, YAML fields, a `---` line, then
an optional body that is ignored. Only what `Article` holds is kept; internal fields such as
`secured` are never read. Both functions are plain top-level functions so that they can run in
worker processes.

PyYAML is the reference for what the YAML means (`safe_load`, YAML 1.1). It is only reached for
files the fast parser declines, and only after the event stream has shown the document holds no
anchors or aliases (billion-laughs), no nesting deeper than `MAX_DEPTH`, no more than
`MAX_VALUES` values, and no tags beyond the core schema (`!!python/object/apply:...` and
friends are rejected before anything is built). Numbers longer than `MAX_NUMERAL_CHARS` stay
text. So no file under the size limit costs more than a fraction of a second to read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from aggregator.errors import ArticleError
from aggregator.model import Article, Image, Provider, RelatedLink
from aggregator.reading.front_matter import MAX_DEPTH, MAX_VALUES, parse_fast

__all__ = [
    "DEFAULT_MAX_BYTES",
    "front_matter_text",
    "load_front_matter",
    "parse_article",
    "read_article",
]

DEFAULT_MAX_BYTES = 1_048_576

LOGGER = logging.getLogger("aggregator.articles")

MAX_NUMERAL_CHARS = 100
"""A number written with more characters than this is kept as its text.

No article field needs such a number, and PyYAML's cost for some is quadratic in their length
(a sexagesimal `1:0:0:...` of 1 MiB took 15 s of CPU); a huge integer also cannot be turned
into text (Python refuses more than 4,300 digits) nor stored as JSON.
"""

MAX_TOPICS = 100
"""Most topics one article may name: each is a feed of its own, so one file of 20,000
topics would make 20,000 feeds. More is a field error, not a silent cut."""

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The dates accepted: RFC 822 (RSS) and RFC 3339 (Atom) write four-digit years, and no
article predates 1900. A date outside is a field error (for a related link: no date)."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    # PyYAML raises a bare ValueError for `2021-02-30` or `25:00` (and a TypeError for
    # `!!timestamp x`), and the whole file would be reported as malformed YAML; keeping the
    # text lets the field check name the field instead.
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "a list or mapping is not a valid !!timestamp", node.start_mark
        )
    try:
        return loader.construct_yaml_timestamp(node)
    except Exception:
        return node.value


def _guarded(
    tag: str, construct: Callable[[yaml.SafeLoader, yaml.Node], object], *, numeral: bool
) -> Callable[[yaml.SafeLoader, yaml.Node], object]:
    """`construct` with bounded cost, and with its failures said as YAML errors with a place.

    PyYAML's scalar constructors fail with bare KeyError, IndexError or ValueError for a value
    their explicit tag cannot take (`!!bool x`, an empty `!!int`).
    """

    def run(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        if numeral and isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_NUMERAL_CHARS:
            return node.value
        try:
            return construct(loader, node)
        except yaml.YAMLError:
            raise
        except Exception:
            shown = _shown(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid !!{tag}", node.start_mark
            ) from None

    return run


def _loader_class(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`base` with invalid timestamps kept as text, over-long numbers kept as text, and
    constructor failures made YAML errors (a subclass: the base stays untouched)."""
    loader: type[yaml.SafeLoader] = type("_Loader", (base,), {})
    loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)
    for tag, numeral in (("int", True), ("float", True), ("bool", False), ("null", False)):
        construct = base.yaml_constructors[f"tag:yaml.org,2002:{tag}"]
        loader.add_constructor(
            f"tag:yaml.org,2002:{tag}", _guarded(tag, construct, numeral=numeral)
        )
    return loader


# libyaml's parser is ~7x quicker than the pure-Python one for the files handed over.
_Loader = _loader_class(getattr(yaml, "CSafeLoader", yaml.SafeLoader))

_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
)
_Clean = Callable[[str], str]
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)

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


def read_article(path: Path, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Article:
    """Read the article file at `path`; `source` is its path relative to the input folder.

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
    return parse_article(data, source, max_bytes=max_bytes)


def _read_up_to(fd: int, expected: int, limit: int) -> bytes:
    """Up to `limit` bytes of `fd`; `expected` (the size fstat gave) sizes the first read."""
    # One read of the expected size plus one byte (to notice a file that grew), then reads
    # until end of file: never a buffer of `limit` bytes for a file of a few kilobytes.
    chunks = [os.read(fd, min(expected + 1, limit))]
    total = len(chunks[0])
    while chunks[-1] and total < limit:
        chunks.append(os.read(fd, limit - total))
        total += len(chunks[-1])
    return b"".join(chunks) if len(chunks) > 2 or chunks[-1] else chunks[0]


def parse_article(data: bytes, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Article:
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
        fields = load_front_matter(text, source)
        return _article(fields, source, text)
    except ArticleError as exc:
        exc.withdrawn = _says_unpublished(data, fields)
        raise
    except Exception as exc:  # the boundary: one file's failure is that file's alone
        LOGGER.debug("unexpected error reading %s", source, exc_info=True)
        raise ArticleError(
            source,
            f"cannot be read as an article ({type(exc).__name__}: {_shown(str(exc))});"
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


def load_front_matter(text: str, source: str) -> dict[str, object]:
    """The mapping PyYAML's `safe_load` makes of front matter `text`; raises `ArticleError`.

    The fast parser reads it when it is sure; otherwise PyYAML does, after the safety checks
    (and with one difference: a timestamp that is no date, `2021-02-30`, stays text so that the
    field check can name it).
    """
    mapping = parse_fast(text)
    if mapping is not None:
        return mapping
    loaded = _load_with_pyyaml(text, source)
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


# --- PyYAML, for what the fast parser declines ------------------------------------------------


def _load_with_pyyaml(text: str, source: str) -> object:
    try:
        _check_events(text, source)
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ArticleError(source, _yaml_problem(exc, text)) from None
    except ValueError as exc:
        # PyYAML lets a few bad scalars through as bare ValueErrors: `"\U00110000"`, `0x_`.
        raise ArticleError(source, f"malformed YAML: {exc}; fix the front matter") from None


def _check_events(text: str, source: str) -> None:
    """Refuse what could hurt before PyYAML builds anything: aliases, tags, deep nesting.

    Streaming the events stops at the first offence, so a billion-laughs file or one nested
    ten thousand levels deep costs a few microseconds and never reaches the recursive composer.
    """
    try:
        _scan_events(text, source, _Loader)
    except yaml.YAMLError:
        # libyaml reads tokens ahead of the events and may stop on an error of its own (its
        # nesting limit, worded differently from one release to the next) before our check
        # sees the offence. The pure-Python parser streams the same events lazily: if it
        # meets one of our offences first, that is the reason given; if not, libyaml's is.
        # It is some 10 times slower: only the first _PURE_SCAN_CHARS are scanned again
        # (an error at the end of 1 MiB took it 4 s), which holds any nesting libyaml's
        # limit can refuse.
        c_loader = getattr(yaml, "CSafeLoader", None)
        if c_loader is not None and issubclass(_Loader, c_loader):
            # An error of the text (or of its cut) there: libyaml's is the one to give.
            with contextlib.suppress(yaml.YAMLError):
                _scan_events(text[:_PURE_SCAN_CHARS], source, _PURE_LOADER)
        raise


_PURE_SCAN_CHARS = 65_536


_PURE_LOADER = _loader_class(yaml.SafeLoader)


def _scan_events(text: str, source: str, loader: type[yaml.SafeLoader]) -> None:
    depth = 0
    values = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise ArticleError(
                source,
                f"YAML alias *{event.anchor} at line {_line(event)}: anchors and aliases are"
                " not allowed in articles; write the value out in full",
            )
        if isinstance(event, _NODE_EVENTS):
            values += 1
            if values > MAX_VALUES:
                raise ArticleError(
                    source,
                    f"front matter holds more than {MAX_VALUES:,} keys and values (line"
                    f" {_line(event)});"
                    " an article needs a few hundred at most: move the rest out of the file",
                )
            if event.anchor is not None:
                raise ArticleError(
                    source,
                    f"YAML anchor &{event.anchor} at line {_line(event)}: anchors and aliases"
                    " are not allowed in articles; write the value out in full",
                )
            tag = event.tag
            if tag is not None and tag != "!" and tag not in _CORE_TAGS:
                shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
                raise ArticleError(
                    source,
                    f"YAML tag {shown} at line {_line(event)} is not allowed: remove it (article"
                    " fields are plain text, numbers, dates, lists and mappings)",
                )
            if not isinstance(event, yaml.ScalarEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ArticleError(
                        source,
                        f"front matter is nested more than {MAX_DEPTH} levels deep (line"
                        f" {_line(event)}); articles need a handful at most",
                    )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _line(event: yaml.Event) -> int:
    # The front matter starts on the file's second line, after the opening `---`.
    mark = event.start_mark
    return int(mark.line) + 2 if mark is not None else 0


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    where = ""
    problem: str = str(exc)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            where = f" at line {mark.line + 2}, column {mark.column + 1}"
        problem = exc.problem or problem
        if exc.context:
            problem = f"{problem} ({exc.context})"
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 2
        where = f" at line {line}"
        problem = f"unacceptable character {exc.character!r}"
    return (
        f"malformed YAML{where}: {problem}; fix the front matter"
        " (text holding ': ' or ' #' needs quotes)"
    )


def _written(text: str, key: str) -> yaml.Node | None:
    """The node of top-level `key` as written, to keep `title: 2021` as the text `2021`."""
    node = yaml.compose(text, Loader=_Loader)  # safe: the text has already loaded
    found: yaml.Node | None = None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found = value_node  # the last one wins, as in the mapping
    return found


# --- mapping → Article ------------------------------------------------------------------------


def _article(fields: dict[str, object], source: str, text: str) -> Article:
    # Control characters XML cannot carry only arrive through escapes (raw ones are dropped
    # before parsing), so a document without a backslash needs no cleaning at all.
    clean = _clean if "\\" in text else _unchanged

    title = _title(fields.get("title"), source, text, clean)
    url = fields.get("webUrl")
    if url is None:
        raise ArticleError(
            source,
            "missing: add the article's absolute http(s) URL, like webUrl: https://example.com/a",
            field="webUrl",
        )
    web_url = _url(url, clean)
    if web_url is None:
        raise ArticleError(
            source,
            f"{_shown(url)} is not an absolute http(s) URL with a host: write it like"
            " https://example.com/story",
            field="webUrl",
        )

    excerpt = fields.get("excerpt")
    if excerpt is None:
        excerpt = ""
    elif not isinstance(excerpt, str):
        excerpt = _scalar_text(excerpt, source, "excerpt", text)
    excerpt = clean(excerpt).strip()

    published_at = fields.get("publishedDateTime")
    try:
        when = _utc(published_at)
    except _OutOfRange:
        raise ArticleError(
            source,
            f"{_shown(published_at)} is outside the dates accepted (years"
            f" {EARLIEST.year} to {LATEST.year}, in UTC): correct the year",
            field="publishedDateTime",
        ) from None
    except ValueError:
        raise ArticleError(
            source,
            f"{_shown(published_at)} is not an ISO 8601 date-time: write it like"
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
        topics=_topics(fields.get("topics"), source, text, clean),
        images=_images(fields.get("images"), clean),
        related=_related(fields.get("related"), clean),
    )


def _title(value: object, source: str, text: str, clean: _Clean) -> str:
    if value is None:
        raise ArticleError(source, "missing: every article needs a title", field="title")
    if not isinstance(value, str):
        value = _scalar_text(value, source, "title", text)
    title = clean(value).strip()
    if not title:
        raise ArticleError(source, "is empty: give the article a title", field="title")
    return title


def _scalar_text(value: object, source: str, field: str, text: str) -> str:
    """The text of a scalar YAML read as a number, date or boolean, as it was written."""
    if isinstance(value, (list, dict)):
        raise ArticleError(source, f"must be text, not {_kind(value)}", field=field)
    node = _written(text, field)
    return node.value if isinstance(node, yaml.ScalarNode) else str(value)


def _topics(value: object, source: str, text: str, clean: _Clean) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise ArticleError(
            source,
            f"must be a list of topic names (or one name), not {_kind(value)}",
            field="topics",
        )
    topics: list[str] = []
    seen: set[str] = set()
    written: list[yaml.Node] | None = None  # the items as written, composed once if needed
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
                f"item {index + 1} is {_kind(item)}: write each topic as a name",
                field="topics",
            )
        else:
            if written is None:
                node = _written(text, "topics")
                written = node.value if isinstance(node, yaml.SequenceNode) else []
            node = written[index] if index < len(written) else None
            topic = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else str(item)
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


def _provider(value: object, clean: _Clean) -> Provider | None:
    if isinstance(value, str):
        text = _name(clean(value))
        return Provider(text) if text else None
    if not isinstance(value, dict):
        return None
    domain = _name(_optional_text(value.get("domain"), clean) or "") or None
    name = _name(_optional_text(value.get("name"), clean) or "") or domain
    return Provider(name, domain) if name else None


def _name(text: str) -> str:
    """A topic's or provider's name as it may title a shared feed: no invisible format
    characters (bidirectional overrides and isolates, zero-width spaces, BOM …: they would
    reorder or hide the feed's title for every subscriber) and single spaces, trimmed."""
    if text.isprintable():  # nearly every name: no format character, no odd space
        return text.strip()
    kept = "".join(char for char in text if char in _JOINERS or unicodedata.category(char) != "Cf")
    return " ".join(kept.split())


def _images(value: object, clean: _Clean) -> tuple[Image, ...]:
    images: list[Image] = []
    for item in _items(value):
        if isinstance(item, dict):
            url = _url(item.get("url"), clean)
            if url is not None:
                images.append(
                    Image(url, _dimension(item.get("width")), _dimension(item.get("height")))
                )
        elif isinstance(item, str):
            url = _url(item, clean)
            if url is not None:
                images.append(Image(url))
    return tuple(images)


def _related(value: object, clean: _Clean) -> tuple[RelatedLink, ...]:
    links: list[RelatedLink] = []
    for item in _items(value):
        if not isinstance(item, dict):
            continue
        raw_title = item.get("title")
        # Inlined common case (a string): this loop runs for every related item of every file.
        title = (
            clean(raw_title).strip()
            if isinstance(raw_title, str)
            else _optional_text(raw_title, clean)
        )
        url = _url(item.get("webUrl"), clean)
        if not title or url is None:
            continue
        provider = item.get("provider")
        if isinstance(provider, dict):
            name = _optional_text(provider.get("name"), clean) or _optional_text(
                provider.get("domain"), clean
            )
        else:
            name = _optional_text(provider, clean)
        when = item.get("publishedDateTime")
        if not (isinstance(when, datetime) and when.tzinfo is UTC and EARLIEST <= when <= LATEST):
            try:
                when = _utc(when)
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


# --- values ------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry."""
    if _XML_UNSAFE.search(text) is None:
        return text
    if _SURROGATE.search(text) is not None:
        # `"\ud83d\ude00"` is one emoji written as two escapes: join such pairs first, so
        # that only lone halves are dropped.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _XML_UNSAFE.sub("", text)


def _unchanged(text: str) -> str:
    return text


def _optional_text(value: object, clean: _Clean) -> str | None:
    """Text of a scalar (numbers and dates as text), trimmed; None when missing or empty."""
    if isinstance(value, str):
        text = clean(value).strip()
    elif isinstance(value, (int, float, date)):
        text = str(value)
    else:
        return None
    return text or None


def _url(value: object, clean: _Clean) -> str | None:
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


def _dimension(value: object) -> int | None:
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


def _utc(value: object) -> datetime | None:
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
                raise _OutOfRange(value) from None
    if not EARLIEST <= moment <= LATEST:
        raise _OutOfRange(value)
    return moment


class _OutOfRange(ValueError):
    """A date-time that is one, but outside EARLIEST..LATEST."""


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {_shown(value)}"


def _shown(value: object) -> str:
    text = repr(value.isoformat()) if isinstance(value, date) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
