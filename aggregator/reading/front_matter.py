"""A fast reader for the small YAML subset that article front matter is written in.

PyYAML spends most of a build turning a few kilobytes of `key: value` lines into a dict. The
article files use a tiny, regular part of YAML, so `parse_fast` reads that part line by line
with precompiled regular expressions and gives up (returns None) on anything else; the caller
then hands the text to PyYAML. PyYAML's `safe_load` (YAML 1.1 resolvers) is the reference:
whenever `parse_fast` returns a mapping, it is the mapping PyYAML would build, and whenever it
is not completely sure of that, it declines.

What it accepts:

* a block mapping at column 0; nested block mappings and block sequences indented under a
  `key:` with an empty value, or on the `- ` line of a sequence item (`- url: "..."`);
* keys that are plain ASCII words (`publishedDateTime`, `is_cached`, `cdn-url`) and never
  resolve to anything but a string in YAML 1.1 (`on:`, `yes:`, `null:` are declined);
* one-line scalars: double-quoted with YAML escapes, single-quoted (`'it''s'`), and plain
  scalars that are certainly strings, `true` / `false`, decimal integers, and timestamps of the
  form `2021-12-22`, `2021-12-22T13:00:00Z` (optional fraction, `Z` or `+hh:mm` offset);
* empty values (`key:` → None), blank lines, comment lines and ` # comments` after values.

What it declines: flow collections, block scalars (`|`, `>`), anchors, aliases, tags,
directives, multi-line scalars, tabs, CR, unusual line breaks, unexpected indentation,
sequences not indented under their key, duplicate keys, quoted or complex keys, keys longer
than MAX_KEY_CHARS, nesting deeper than MAX_DEPTH, and every plain scalar YAML 1.1 could read
as something other than a string (yes/no/on/off/y/n/null/~/true/false in other spellings,
0x1F, 012, 1_000, 1e3, .inf, 1:20, `2021-1-5 10:00`, ...).

No PyYAML here on purpose: only `yaml_safe` runs it (and `articles` reads its nodes).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache

MAX_DEPTH = 32
"""Deepest nesting of collections accepted; real articles use three or four levels."""

MAX_VALUES = 20_000
"""Most keys and values (scalars, lists, mappings) in one front matter; real articles have a
few hundred. Building each costs PyYAML 10-20 µs, so this bounds a file's reading time (a
1 MiB file of 130,000 values took 1.5 s of CPU). A line here holds at most three of them:
texts of more lines than a third of this are declined, and PyYAML's checks count."""

MAX_KEY_CHARS = 1000
"""Longer keys are declined: YAML allows an implicit key of at most 1,024 characters, and
PyYAML refuses a longer one (with a margin, so that where the count starts cannot matter)."""

# One line: indentation, an optional sequence dash (with the spaces after it), an optional
# `key:` (the colon must be followed by a space or the end of the line, as in YAML), the rest.
# Every line matches, so findall() tokenises the whole text in one call into C code. Every
# group is possessive (`*+`, `?+`): whatever it takes, the rest still matches (all optional,
# then the rest of the line), so no backtracking could change a match, and the engine keeps
# no backtracking points: a tenth less time than the greedy form, the same tokens.
_LINE = re.compile(
    r"^( *+)(- ++|-$)?+(?:([A-Za-z_][A-Za-z0-9_.-]*+):(?: ++|$))?+([^\n]*+)", re.MULTILINE
)

_PLAIN_ASCII = bytes(range(0x20, 0x7F)) + b"\n"
# Characters on which the whole text is declined: tab, CR, NEL, LS, PS, BOM and everything
# PyYAML refuses as unprintable (C0 and C1 controls, DEL, surrogates, U+FFFE, U+FFFF). The
# others are ordinary text inside scalars. Listed, not as the complement of the accepted
# ranges: `re` compiles that complement in 5-6 ms (it fills a map of 65,536 characters in
# Python), this in 0.4 ms; and only on the first text that is not ASCII.
_UNSURE_CHARS = "[\x00-\t\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]"

_DOUBLE_QUOTED = re.compile(
    r'"([^"\\]*(?:\\(?:[0abtnvfre "/\\N_LP]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})'
    r'[^"\\]*)*)"(?: +(?:#.*)?)?'
)
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_ESCAPES = {
    "0": "\0", "a": "\x07", "b": "\x08", "t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_SINGLE_QUOTED = re.compile(r"'([^']*(?:''[^']*)*)'(?: +(?:#.*)?)?")

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
# The timestamps taken on: hours, minutes and seconds (offsets too) in range, so that PyYAML
# and fromisoformat() could not disagree about 24:00 or +05:99.
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[-+](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
# Every character YAML 1.1's int, float and timestamp patterns can contain after a leading digit.
# A digit-led scalar made only of these might be a number or a date: decline it. One with any
# other character (`5G`, `3D printing`, `2020s`) can only be a string.
_NUMBERISH = re.compile(r"[0-9a-fA-F_+\-:.xXoOtTzZ ]*")
# Plain scalars YAML 1.1 reads as booleans or null, in every spelling PyYAML knows and more.
_SPECIAL_WORDS = frozenset({"yes", "no", "y", "n", "true", "false", "on", "off", "null"})
_PLAIN_START = frozenset("_/(")

_CACHE_LIMIT = 8192
# Names of providers and topics, `news`, `article`, small numbers: the same plain scalars come
# back in file after file, so their meaning is remembered (bounded; reset when full).
_plain_cache: dict[str, object] = {}
_good_keys: set[str] = set()


class _Unsure(Exception):
    """Raised inside the parser to decline the whole text; never leaves this module."""


def parse_fast(text: str) -> dict[str, object] | None:
    """Parse `text` (front matter without its `---` lines) if it is in the subset, else None.

    The mapping returned is the one PyYAML builds (`SafeLoader` and `CSafeLoader` alike), key
    order and value types included; None means "ask PyYAML", never "invalid": the text may still
    be valid YAML, or hold an error PyYAML will explain.
    """
    if text.count("\n") >= MAX_VALUES // 3:
        return None  # maybe more values than PyYAML may build: let its checks count them
    if text.isascii():
        # Most files are ASCII: deleting the expected bytes is far quicker than a regex scan.
        if text.encode().translate(None, _PLAIN_ASCII):
            return None
    elif _unsure_char().search(text) is not None:
        return None
    try:
        return _parse(text)
    except _Unsure:
        return None


@cache
def _unsure_char() -> re.Pattern[str]:
    return re.compile(_UNSURE_CHARS)


def _parse(text: str) -> dict[str, object] | None:
    root: dict[str, object] = {}
    cols = [0]  # column of each open collection, outermost first
    stack: list[dict[str, object] | list[object]] = [root]
    top_map: dict[str, object] | None = root  # the innermost collection if a mapping, else None
    top_col = 0  # the column of its keys
    # After a `key:` or `-` with nothing after it, the slot (already None) gets a nested
    # collection if the next line is indented deeper than `pending_col`.
    pending_col = -1
    pending_map: dict[str, object] | None = None
    pending_key = ""
    pending_list: list[object] | None = None
    cache = _plain_cache
    good_keys = _good_keys

    # The hot loop: most lines are `key: value` in the mapping being read, and get through
    # with three comparisons; indentation changes and sequence items take the longer way.
    for indent, dash, key, value in _LINE.findall(text):
        col = len(indent)
        if dash:
            if pending_col >= 0 and col > pending_col:
                items: list[object] = []
                _nest(items, col, cols, stack, pending_map, pending_key, pending_list)
            else:
                while col < cols[-1]:
                    cols.pop()
                    stack.pop()
                if col != cols[-1]:
                    raise _Unsure  # deeper than the open collection, or between two levels
            pending_col = -1
            pending_map = pending_list = None
            container = stack[-1]
            if not isinstance(container, list):
                raise _Unsure  # `- item` among the keys of a mapping, as in `key:\n- item`
            if not key:
                top_map = None
                if not value or value[0] == "#":
                    container.append(None)
                    pending_list, pending_col = container, col
                else:
                    container.append(_scalar(value))
                continue
            # `- key: value` opens a mapping whose keys sit where this key starts.
            top_map = {}
            container.append(top_map)
            top_col = col + len(dash)
            cols.append(top_col)
            stack.append(top_map)
            if len(stack) > MAX_DEPTH:
                raise _Unsure
        elif key:
            if col != top_col or pending_col >= 0 or top_map is None:
                if pending_col >= 0 and col > pending_col:
                    top_map = {}
                    _nest(top_map, col, cols, stack, pending_map, pending_key, pending_list)
                else:
                    while col < cols[-1]:
                        cols.pop()
                        stack.pop()
                    container = stack[-1]
                    if col != cols[-1] or isinstance(container, list):
                        raise _Unsure  # misaligned, or a key among sequence items
                    top_map = container
                top_col = col
                pending_col = -1
                pending_map = pending_list = None
        elif not value or value[0] == "#":
            continue  # blank or comment line
        else:
            raise _Unsure  # a scalar alone on its line: continuation, `...`, `%YAML`, `[a]`

        if key in top_map or (key not in good_keys and not _key_ok(key)):
            raise _Unsure  # a duplicate (PyYAML keeps the last), or a key like `on` or `null`
        if not value:
            top_map[key] = None
            pending_map, pending_key, pending_col = top_map, key, top_col
            continue
        first = value[0]
        if first == '"':
            inner = value[1:-1]
            if value[-1] == '"' and len(value) > 1 and '"' not in inner and "\\" not in inner:
                top_map[key] = inner  # the common case: nothing to unescape, nothing after it
            else:
                top_map[key] = _double_quoted(value)
        elif first == "#":
            top_map[key] = None
            pending_map, pending_key, pending_col = top_map, key, top_col
        else:
            cached = cache.get(value)
            top_map[key] = cached if cached is not None else _scalar(value)

    return root or None


def _nest(  # noqa: PLR0917 - the parser's locals, passed as they are: no object to build
    new: dict[str, object] | list[object],
    col: int,
    cols: list[int],
    stack: list[dict[str, object] | list[object]],
    pending_map: dict[str, object] | None,
    pending_key: str,
    pending_list: list[object] | None,
) -> None:
    """Open `new` at column `col` in the slot the last `key:` or `-` left empty."""
    # Called once per nested collection (16 in a seed file), not per line: timed against the
    # two inline copies it replaces, a seed file parses in ~120 µs either way.
    if pending_map is not None:
        pending_map[pending_key] = new
    elif pending_list is not None:
        pending_list[-1] = new
    cols.append(col)
    stack.append(new)
    if len(stack) > MAX_DEPTH:
        raise _Unsure


def _key_ok(key: str) -> bool:
    if len(key) > MAX_KEY_CHARS or key.lower() in _SPECIAL_WORDS:
        return False
    if len(_good_keys) < _CACHE_LIMIT:
        _good_keys.add(key)
    return True


def _scalar(value: str) -> object:
    """The value of a one-line scalar, `value` starting at its first character."""
    first = value[0]
    if first == '"':
        inner = value[1:-1]
        if len(value) > 1 and value[-1] == '"' and '"' not in inner and "\\" not in inner:
            return inner  # the common case: nothing to unescape, nothing after it
        return _double_quoted(value)
    if first == "'":
        match = _SINGLE_QUOTED.fullmatch(value)
        if match is None:
            raise _Unsure
        return match.group(1).replace("''", "'")
    cached = _plain_cache.get(value)
    if cached is not None:
        return cached
    result = _plain(value)
    if not isinstance(result, date):  # dates differ in every file: not worth remembering
        if len(_plain_cache) >= _CACHE_LIMIT:
            _plain_cache.clear()
        _plain_cache[value] = result
    return result


def _double_quoted(value: str) -> str:
    match = _DOUBLE_QUOTED.fullmatch(value)
    if match is None:
        raise _Unsure  # unclosed (multi-line), unknown escape, or something after the quote
    inner = match.group(1)
    return _ESCAPE.sub(_unescape, inner) if "\\" in inner else inner


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 1:
        return _ESCAPES[code]
    number = int(code[1:], 16)
    if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        # Beyond Unicode: PyYAML fails with a ValueError. Surrogates: libyaml refuses them,
        # pure-Python PyYAML takes them; PyYAML settles it either way.
        raise _Unsure
    return chr(number)


def _plain(value: str) -> object:
    end = value.find(" #")
    text = (value[:end] if end >= 0 else value).rstrip(" ")
    if ": " in text or text[-1] == ":":
        raise _Unsure  # YAML reads a mapping here, or fails
    first = text[0]
    if "0" <= first <= "9" or first == "-":
        if _INT.fullmatch(text) is not None:
            if len(text) > 18:
                raise _Unsure  # int() refuses over 4300 digits; PyYAML will say so
            return int(text)
        if _TIMESTAMP.fullmatch(text) is not None:
            return _timestamp(text)
        if first == "-" or _NUMBERISH.fullmatch(text) is not None:
            raise _Unsure
        return text
    if "a" <= first <= "z" or "A" <= first <= "Z":
        if text.lower() in _SPECIAL_WORDS:
            if text == "true":
                return True
            if text == "false":
                return False
            raise _Unsure
        return text
    if first >= "\xa0" or first in _PLAIN_START:
        return text  # no YAML 1.1 pattern starts with these
    raise _Unsure  # indicators (& * ! | > % @ ` [ { ...), `~`, `.5`, `+1`, `<<`, `=`


def _timestamp(text: str) -> date:
    """The value PyYAML's timestamp constructor builds for `text` (a `_TIMESTAMP` match).

    fromisoformat() builds it in C; the tests hold it to PyYAML on every shape `_TIMESTAMP` lets
    through: `Z` is `timezone.utc`, offsets are fixed zones, fractions of 1-6 digits pad right.
    """
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise _Unsure from None  # 2021-02-30: PyYAML raises; let it
