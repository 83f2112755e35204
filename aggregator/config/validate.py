"""The config's keys as one table, each with the `Settings` field it sets and how its value is
read: the merged YAML and flags are checked against it, and every problem is listed at once.

A problem is written `<dotted key>: <what is wrong>`; `config_error` then blames each on the
file or on the flag its value came from. The order of the problems is the table's: unknown
top-level keys first, then each key and section in turn.
"""

from __future__ import annotations

import dataclasses
import math
import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.config.settings import (
    DOCUMENTED_KEYS,
    NODE_NAME,
    BuiltinFeeds,
    FeedTitles,
    Settings,
)
from aggregator.config.urls import Invalid, base_url, hub_urls, postgres_url
from aggregator.errors import ConfigError
from aggregator.membership import MAX_ITEMS, parse_feed_definitions
from aggregator.model import ALL_FORMATS

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")


# (dotted key, value) → the value as `Settings` holds it; raises `Invalid`.
Reader = Callable[[str, Any], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One key of the file: how its value is read and the `Settings` field it sets."""

    name: str
    read: Reader
    field: str = ""  # default: the name
    flat: str = ""  # also accepted at the top level under this name (the command line's), winning
    null_is_unset: bool = False  # `key:` with no value leaves the default


@dataclass(frozen=True, slots=True)
class Section:
    """A key of the file whose value is a mapping of keys."""

    name: str
    keys: tuple[Key, ...]
    # The keys make one `Settings` field of this type (`feed_titles` → `titles`); without it,
    # each key sets a field of its own.
    into: type | None = None
    field: str = ""
    # Unknown keys reported first, then the keys in the table's order; otherwise all in the
    # file's order.
    unknown_first: bool = False
    suggest: bool = True  # `did you mean …?` for an unknown key close to a known one


# --- readers --------------------------------------------------------------------------------


def _folder(key: str, value: Any) -> Path:
    if isinstance(value, str | Path) and str(value).strip():
        return Path(value)
    raise Invalid(f"{key}: must be a folder path, got {value!r}")


def _whole(minimum: int, maximum: int) -> Reader:
    def read(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise Invalid(
                f"{key}: must be a whole number from {minimum:,} to {maximum:,}, got {value!r}"
            )
        return value

    return read


def _seconds(minimum: float, maximum: float, *, show_value: bool = True) -> Reader:
    def read(key: str, value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not minimum <= value <= maximum
        ):
            got = f", got {value!r}" if show_value else ""
            raise Invalid(
                f"{key}: must be a number of seconds from {minimum:g} to {maximum:g}{got}"
            )
        return float(value)

    return read


def _switch(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{key}: must be true or false, got {value!r}")
    return value


def _patterns(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, str) and p.strip() and "/" not in p for p in value)
    ):
        raise Invalid(f"{key}: must be a list of file name patterns like '*.txt', got {value!r}")
    return tuple(value)


def _language(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{key}: must be a language tag such as 'en', got {value!r}")
    return value.strip()


def _node_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not NODE_NAME.fullmatch(value):
        raise Invalid(
            f"{key}: must be a name of letters, digits, '.', '_' or '-' (at most 63), got {value!r}"
        )
    return value


def _feeds(key: str, value: Any) -> object:
    definitions, problems = parse_feed_definitions(value)
    if problems:
        raise Invalid(*problems)
    return definitions


def _formats(key: str, value: Any) -> object:
    if isinstance(value, str):
        value = [value]
    names = [f.value for f in ALL_FORMATS]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip().lower() in names for v in value)
    ):
        raise Invalid(
            f"{key}: must be a non-empty list of {', '.join(names)} "
            f"(at least one stays on), got {value!r}"
        )
    chosen = {v.strip().lower() for v in value}
    # Always in the one order, whatever order the file lists them: the bytes of the
    # indexes and the settings fingerprint must not depend on it.
    return tuple(f for f in ALL_FORMATS if f.value in chosen)


def _log_level(key: str, level: Any) -> str:
    if not isinstance(level, str) or level.upper() not in _LOG_LEVELS:
        raise Invalid(f"{key}: must be one of {', '.join(_LOG_LEVELS)} (any case)")
    return level.upper()


def _log_format(key: str, fmt: Any) -> str:
    fmt = fmt.lower() if isinstance(fmt, str) else fmt
    if fmt not in _LOG_FORMATS:
        raise Invalid(f"{key}: must be one of {', '.join(_LOG_FORMATS)}")
    return str(fmt)


def _bind(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise Invalid(
            f"{key}: must be an address to listen on such as 127.0.0.1 or 0.0.0.0, got {value!r}"
        )
    return value


def _port(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise Invalid(f"{key}: must be a TCP port 1-65535 (0: any free port), got {value!r}")
    return value


def _max_age(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _YEAR:
        raise Invalid(
            f"{key}: must be a whole number of seconds from 0 to {_YEAR:,} (a year), got {value!r}"
        )
    return value


_YEAR = 365 * 86_400
_DAY = 86_400.0


def _title(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{key}: must be non-empty text")
    # Parsed the way str.format will read it: only a bare {name}, no conversion (!r), no
    # format spec ({name:>99999999} would take minutes and gigabytes), no attribute/index.
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(value)
            if name is not None
        ]
    except ValueError:
        fields = [("", "", None)]
    if any(field != ("name", "", None) for field in fields):
        raise Invalid(
            f"{key}: only {{name}} may appear in braces (write {{{{ and }}}} for a brace), "
            f"got {value!r}"
        )
    sample = value.format(name="A topic's name")
    if len(sample) > _MAX_TITLE_CHARS:
        raise Invalid(f"{key}: must be at most {_MAX_TITLE_CHARS} characters")
    return value


_MAX_TITLE_CHARS = 1000


# --- the table --------------------------------------------------------------------------------


def _daemon_seconds(name: str, minimum: float, maximum: float) -> Key:
    return Key(name, _seconds(minimum, maximum, show_value=False), flat=name)


TABLE: tuple[Key | Section, ...] = (
    Key("input", _folder),
    Key("output", _folder),
    Key("state", _folder),
    Key("base_url", base_url),
    # Every number bounded: past these a value is a typo, and some would overflow later
    # (SQLite's 64-bit LIMIT, a timer of inf seconds, a worker pool of a million).
    Key("max_items", _whole(1, MAX_ITEMS)),
    Key("max_file_bytes", _whole(1, 1 << 30)),
    Key("max_excerpt_chars", _whole(100, 1_000_000)),
    Key("workers", _whole(0, 256)),
    Key("patterns", _patterns),
    Key("language", _language),
    Key("lock_wait_seconds", _seconds(0, _DAY)),
    Key("follow_external_links", _switch),
    Key("catalog", postgres_url, null_is_unset=True),
    Key("node", _node_name, null_is_unset=True),
    Key("embargo", _switch),
    Key("feeds", _feeds),
    Section(
        "builtin_feeds",
        tuple(Key(f.name, _switch) for f in dataclasses.fields(BuiltinFeeds)),
        into=BuiltinFeeds,
        field="builtin_feeds",
    ),
    Key("formats", _formats),
    Section(
        "websub",
        (Key("hubs", hub_urls, null_is_unset=True),),
        unknown_first=True,
        suggest=False,
    ),
    Section(
        "logging",
        (
            Key("level", _log_level, field="log_level", flat="log_level"),
            Key("format", _log_format, field="log_format", flat="log_format"),
        ),
        unknown_first=True,
    ),
    Section(
        "daemon",
        (
            Key("poll", _switch, flat="poll"),
            _daemon_seconds("debounce_seconds", 0.0, 3600.0),
            _daemon_seconds("debounce_max_seconds", 0.0, 3600.0),
            _daemon_seconds("reconcile_seconds", 1.0, _DAY),
            _daemon_seconds("poll_seconds", 0.05, 3600.0),
        ),
    ),
    Section(
        "serve",
        (
            Key("bind", _bind, flat="bind"),
            Key("port", _port, flat="port"),
            Key("max_age", _max_age, flat="max_age"),
            Key("gzip_sidecars", _switch, flat="gzip_sidecars"),
            Key("access_log", _switch, flat="access_log"),
            Key("subscribers_seconds", _seconds(1.0, _DAY), flat="subscribers_seconds"),
        ),
    ),
    Section(
        "metrics",
        (
            Key("port", _port, field="metrics_port", flat="metrics_port", null_is_unset=True),
            Key("bind", _bind, field="metrics_bind", flat="metrics_bind"),
        ),
    ),
    Section(
        "feed_titles",
        tuple(Key(name, _title) for name in sorted(f.name for f in dataclasses.fields(FeedTitles))),
        into=FeedTitles,
        field="titles",
    ),
)

# Settings fields that live in a section of the file: field → dotted key.
SECTION_OF = {
    key.field or key.name: f"{item.name}.{key.name}"
    for item in TABLE
    if isinstance(item, Section) and item.into is None
    for key in item.keys
}
# The keys of the file whose value is a mapping of settings.
SECTIONS = frozenset(item.name for item in TABLE if isinstance(item, Section))
# Dotted keys whose null in the file leaves the default (`node: null`: the host name).
NULL_IS_UNSET = frozenset(
    [item.name for item in TABLE if isinstance(item, Key) and item.null_is_unset]
    + [
        f"{item.name}.{key.name}"
        for item in TABLE
        if isinstance(item, Section)
        for key in item.keys
        if key.null_is_unset
    ]
)


# --- checking ---------------------------------------------------------------------------------


def validate(raw: Mapping[str, Any], origins: Mapping[str, str], source: str) -> Settings:
    """The `Settings` of the merged file and flags `raw`; raises `ConfigError` listing every
    problem, each blamed on its origin (`origins`: dotted key → where its value came from)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    # `hubs` is written inside `websub:` only.
    accepted = {f.name for f in dataclasses.fields(Settings)} - {"hubs"}
    accepted |= set(DOCUMENTED_KEYS)
    for key in raw:
        if key not in accepted:
            problems.append(f"{key}: {suggest(str(key), DOCUMENTED_KEYS)}")
    for item in TABLE:
        if isinstance(item, Section):
            _check_section(item, raw, values, problems)
        elif item.name in raw and not (item.null_is_unset and raw[item.name] is None):
            try:
                values[item.field or item.name] = item.read(item.name, raw[item.name])
            except Invalid as bad:
                problems.extend(bad.problems)
    if settings_problem := _cross_check(values):
        problems.append(settings_problem)
    if problems:
        raise config_error(problems, origins, source)
    return Settings(**values)


def _check_section(
    section: Section, raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]
) -> None:
    given = dict(_mapping(raw, section.name, problems))
    for key in section.keys:
        if key.flat and key.flat in raw:
            given[key.name] = raw[key.flat]
    keys = {key.name: key for key in section.keys}
    parts: dict[str, Any] = {}
    into = parts if section.into is not None else values

    def read(key: Key, value: Any) -> None:
        if key.null_is_unset and value is None:
            return
        name = key.name if section.into is not None else key.field or key.name
        try:
            into[name] = key.read(f"{section.name}.{key.name}", value)
        except Invalid as bad:
            problems.extend(bad.problems)

    for name, value in given.items():
        if name not in keys:
            problems.append(f"{section.name}.{name}: {_unknown(section, str(name))}")
        elif not section.unknown_first:
            read(keys[name], value)
    if section.unknown_first:
        for key in section.keys:
            if key.name in given:
                read(key, given[key.name])
    if section.into is not None and parts:
        values[section.field] = section.into(**parts)


def _unknown(section: Section, key: str) -> str:
    known = [k.name for k in section.keys]
    if section.suggest:
        return suggest(key, known)
    return f"unknown key (known: {', '.join(known)})"


def _mapping(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a mapping, got {value!r}")
        return {}
    return value


def suggest(key: str, known: Collection[str]) -> str:
    """`; did you mean 'input'?` for a key close to a known one, else a pointer to the keys."""
    import difflib  # only for a mistake: a config without one need not load it

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key (known: {', '.join(known)})"


def _cross_check(values: Mapping[str, Any]) -> str | None:
    defaults = Settings()
    debounce = values.get("debounce_seconds", defaults.debounce_seconds)
    ceiling = values.get("debounce_max_seconds", defaults.debounce_max_seconds)
    if ceiling < debounce:
        return (
            f"daemon.debounce_max_seconds: must be at least daemon.debounce_seconds "
            f"({ceiling:g} < {debounce:g})"
        )
    return None


def config_error(problems: list[str], origins: Mapping[str, str], source: str) -> ConfigError:
    """Each problem blamed on where its value came from: the file (by key) or a flag.

    Every problem is written `<dotted key>: <what is wrong>`; a value given on the command
    line is reported under its flag instead, so a bad --base-url is not called an error of
    the config file.
    """
    blamed: list[str] = []
    sources: list[str] = []
    for problem in problems:
        key, _, detail = problem.partition(": ")
        origin = origins.get(key, "")
        if origin.startswith("flag:"):
            blamed.append(f"{origin.removeprefix('flag:')}: {detail}")
            where = "command line"
        else:
            blamed.append(problem)
            where = source
        if where not in sources:
            sources.append(where)
    # The file first, then the command line, whichever problem came first.
    sources.sort(key=lambda where: where == "command line")
    return ConfigError(" and ".join(sources), blamed)
