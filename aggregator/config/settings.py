"""Settings: defaults → YAML file → command-line overrides → validation (every problem at once)."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from aggregator.errors import ConfigError
from aggregator.membership import FeedDefinition, FeedRules, parse_feed_definitions
from aggregator.model import ALL_FORMATS, FeedFormat

# Looked for in this order when no --config is given.
DEFAULT_CONFIGS = (Path("aggregator.yaml"), Path("config/aggregator.yaml"))

_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _default_node() -> str:
    """The host name, as far as it is a valid node name (it names stored paths)."""
    # uname, not socket.gethostname: the same name, without importing the socket module.
    name = os.uname().nodename.split(".")[0]
    return name if _NODE_NAME.fullmatch(name) else "node"


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

    input: Path = Path("seeds")
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


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")

# Config keys as written in YAML, and how to read each into a Settings field.
_PATH_KEYS = ("input", "output", "state")
_FLOAT_KEYS = {
    "debounce_seconds": 0.0,
    "debounce_max_seconds": 0.0,
    "reconcile_seconds": 1.0,
    "poll_seconds": 0.05,
}
_SERVE_KEYS = ("bind", "port", "max_age", "gzip_sidecars")
# Settings fields that live in a section of the file: field → dotted key.
_SECTION_OF = {
    "log_level": "logging.level",
    "log_format": "logging.format",
    "poll": "daemon.poll",
    **{key: f"daemon.{key}" for key in _FLOAT_KEYS},
    "hubs": "websub.hubs",
    **{key: f"serve.{key}" for key in _SERVE_KEYS},
}
# The keys of the file whose value is a mapping of settings: those above, and two more.
_SECTIONS = frozenset(
    {dotted.partition(".")[0] for dotted in _SECTION_OF.values()} | {"feed_titles", "builtin_feeds"}
)
# The top-level keys the template documents (flat forms of section keys are accepted too,
# as the command line gives them, but never suggested).
_DOCUMENTED_KEYS = (
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
)

DEFAULT = "default"


def file_origin(path: Path) -> str:
    """How `aggregator config` and error messages name a value read from `path`."""
    return f"file:{path}"


def flag_origin(key: str) -> str:
    """How a value given on the command line is named: its flag (`base_url` → --base-url)."""
    return "flag:--" + key.replace("_", "-")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Validated settings, the file they came from, and where each value came from."""

    settings: Settings
    file: Path | None
    # dotted key (`base_url`, `logging.level`, `feed_titles.topic`) → `default`,
    # `file:<path>` or `flag:--<name>`; only keys not at their default are listed.
    origins: Mapping[str, str]

    def origin(self, key: str) -> str:
        """Where the value of a dotted key came from."""
        return self.origins.get(key, DEFAULT)


def default_config_file() -> Path | None:
    """The config read when no --config is given: ./aggregator.yaml (what `aggregator init`
    writes), else config/aggregator.yaml (this repository's); None if neither exists."""
    for candidate in DEFAULT_CONFIGS:
        if candidate.is_file():
            return candidate
    return None


def load_config(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Read the YAML config (the default file only if it exists) and apply CLI overrides.

    Relative paths in the file are taken relative to the working directory, as the CLI's are.
    Raises `ConfigError` listing every problem found, each with its key and, for a value
    given on the command line, its flag.
    """
    path = config_path if config_path is not None else default_config_file()
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        raw = _read_yaml(path)
        origins.update(_dotted_keys(raw, file_origin(path)))
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
            origins[_SECTION_OF.get(key, key)] = flag_origin(key)
    settings = _validate(raw, origins, str(path) if path is not None else "defaults")
    return LoadedConfig(settings, path, origins)


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """`load_config(...).settings`: the validated settings alone."""
    return load_config(config_path, overrides).settings


def _dotted_keys(raw: Mapping[str, Any], origin: str) -> dict[str, str]:
    """Every key of the file, sections flattened (`logging.level`), mapped to `origin`."""
    keys: dict[str, str] = {}
    for name, value in raw.items():
        key = str(name)
        if key in _SECTIONS and isinstance(value, dict):
            keys.update({f"{key}.{inner}": origin for inner in value})
        else:
            keys[_SECTION_OF.get(key, key)] = origin
    return keys


def effective_values(settings: Settings) -> list[tuple[str, Any]]:
    """(dotted key, value) of every setting, in the order the config template lists them."""
    values: list[tuple[str, Any]] = []
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if f.name == "titles":
            values.extend(
                (f"feed_titles.{t.name}", getattr(value, t.name))
                for t in dataclasses.fields(FeedTitles)
            )
        elif f.name == "builtin_feeds":
            values.extend(
                (f"builtin_feeds.{b.name}", getattr(value, b.name))
                for b in dataclasses.fields(BuiltinFeeds)
            )
        elif f.name == "feeds":
            values.append(("feeds", [definition.name for definition in value]))
        elif isinstance(value, Path):
            values.append((f.name, str(value)))
        elif isinstance(value, tuple):
            # str(): formats are StrEnum members, which YAML should show as plain text.
            values.append((_SECTION_OF.get(f.name, f.name), [str(v) for v in value]))
        else:
            values.append((_SECTION_OF.get(f.name, f.name), value))
    order = {key: i for i, key in enumerate(_DOCUMENTED_KEYS)}
    return sorted(values, key=lambda kv: order.get(kv[0].split(".")[0], len(order)))


def yaml_value(value: object) -> str:
    """`value` as YAML on one line, as it would be written in the config file."""
    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text: {exc.reason}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [_yaml_problem(path, exc)]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the file must be a mapping of keys to values"])
    return dict(data)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """The YAML error at its line and column of the config file (PyYAML's own text names
    a "<unicode string>", which tells the user nothing)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    context = getattr(exc, "context", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    detail = f"{problem} ({context})" if context else problem
    return (
        f"not valid YAML at {where}: {detail}; check the indentation, and quote values "
        "holding ': ' or ' #'"
    )


def _suggest(key: str, known: Collection[str]) -> str:
    """`; did you mean 'input'?` for a key close to a known one, else a pointer to the keys."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key (known: {', '.join(known)})"


def _validate(raw: Mapping[str, Any], origins: Mapping[str, str], source: str) -> Settings:
    problems: list[str] = []
    values: dict[str, Any] = {}
    # `hubs` is written inside `websub:` only.
    accepted = {f.name for f in dataclasses.fields(Settings)} - {"hubs"}
    accepted |= set(_DOCUMENTED_KEYS)
    for key in raw:
        if key not in accepted:
            problems.append(f"{key}: {_suggest(str(key), _DOCUMENTED_KEYS)}")

    for key in _PATH_KEYS:
        if key in raw:
            value = raw[key]
            if isinstance(value, str | Path) and str(value).strip():
                values[key] = Path(value)
            else:
                problems.append(f"{key}: must be a folder path, got {value!r}")

    if "base_url" in raw:
        base = raw["base_url"]
        parts = urlsplit(base) if isinstance(base, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                f"base_url: must be an absolute http(s) URL such as "
                f"https://feeds.example.org/, got {base!r}"
            )
        else:
            values["base_url"] = base if base.endswith("/") else base + "/"

    for key, minimum in (
        ("max_items", 1),
        ("max_file_bytes", 1),
        ("max_excerpt_chars", 100),
        ("workers", 0),
    ):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{key}: must be a whole number ≥ {minimum}, got {value!r}")
            else:
                values[key] = value

    if "patterns" in raw:
        value = raw["patterns"]
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(p, str) and p.strip() and "/" not in p for p in value)
        ):
            problems.append(
                f"patterns: must be a list of file name patterns like '*.txt', got {value!r}"
            )
        else:
            values["patterns"] = tuple(value)

    if "language" in raw:
        value = raw["language"]
        if not isinstance(value, str) or not value.strip():
            problems.append(f"language: must be a language tag such as 'en', got {value!r}")
        else:
            values["language"] = value.strip()

    if "lock_wait_seconds" in raw:
        value = raw["lock_wait_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            problems.append(f"lock_wait_seconds: must be a number of seconds ≥ 0, got {value!r}")
        else:
            values["lock_wait_seconds"] = float(value)

    if "follow_external_links" in raw:
        value = raw["follow_external_links"]
        if not isinstance(value, bool):
            problems.append(f"follow_external_links: must be true or false, got {value!r}")
        else:
            values["follow_external_links"] = value
    if "catalog" in raw and raw["catalog"] is not None:
        value = raw["catalog"]
        if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
            problems.append(
                "catalog: must be a PostgreSQL URL such as postgresql://user@db-host/feeds "
                f"(leave it out to keep the SQLite catalog in `state`), got {value!r}"
            )
        else:
            values["catalog"] = value
    if "node" in raw and raw["node"] is not None:
        value = raw["node"]
        if not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
            problems.append(
                "node: must be a name of letters, digits, '.', '_' or '-' (at most 63), "
                f"got {value!r}"
            )
        else:
            values["node"] = value

    if "embargo" in raw:
        value = raw["embargo"]
        if not isinstance(value, bool):
            problems.append(f"embargo: must be true or false, got {value!r}")
        else:
            values["embargo"] = value

    if "feeds" in raw:
        definitions, feed_problems = parse_feed_definitions(raw["feeds"])
        problems.extend(feed_problems)
        values["feeds"] = definitions
    _validate_builtins(raw, values, problems)

    _validate_formats(raw, values, problems)
    _validate_websub(raw, values, problems)
    _validate_logging(raw, values, problems)
    _validate_daemon(raw, values, problems)
    _validate_serve(raw, values, problems)
    _validate_titles(raw, values, problems)

    if settings_problem := _cross_check(values):
        problems.append(settings_problem)
    if problems:
        raise _config_error(problems, origins, source)
    return Settings(**values)


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


def _config_error(problems: list[str], origins: Mapping[str, str], source: str) -> ConfigError:
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


def _section(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a mapping, got {value!r}")
        return {}
    return value


def _validate_formats(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    if "formats" not in raw:
        return
    value = raw["formats"]
    if isinstance(value, str):
        value = [value]
    names = [f.value for f in ALL_FORMATS]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip().lower() in names for v in value)
    ):
        problems.append(
            f"formats: must be a non-empty list of {', '.join(names)} "
            f"(at least one stays on), got {value!r}"
        )
        return
    chosen = {v.strip().lower() for v in value}
    # Always in the one order, whatever order the file lists them: the bytes of the
    # indexes and the settings fingerprint must not depend on it.
    values["formats"] = tuple(f for f in ALL_FORMATS if f.value in chosen)


def _validate_websub(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = _section(raw, "websub", problems)
    for key in section:
        if key != "hubs":
            problems.append(f"websub.{key}: unknown key (known: hubs)")
    hubs = section.get("hubs")
    if hubs is None:
        return
    if isinstance(hubs, str):
        hubs = [hubs]
    if not isinstance(hubs, list):
        problems.append(f"websub.hubs: must be a list of hub URLs, got {hubs!r}")
        return
    good: list[str] = []
    for hub in hubs:
        parts = urlsplit(hub) if isinstance(hub, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or any(c.isspace() or c in "<>\"" for c in hub)
        ):
            problems.append(
                f"websub.hubs: each hub must be an absolute http(s) URL such as "
                f"https://pubsubhubbub.appspot.com/, got {hub!r}"
            )
        elif hub not in good:
            good.append(hub)
    values["hubs"] = tuple(good)


def _validate_logging(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = dict(_section(raw, "logging", problems))
    # Flat keys (`log_level`, as the CLI gives them) win over the section.
    for flat, inner in (("log_level", "level"), ("log_format", "format")):
        if flat in raw:
            section[inner] = raw[flat]
    for key in section:
        if key not in ("level", "format"):
            problems.append(f"logging.{key}: {_suggest(str(key), ('level', 'format'))}")
    if "level" in section:
        level = section["level"]
        if not isinstance(level, str) or level.upper() not in _LOG_LEVELS:
            problems.append(f"logging.level: must be one of {', '.join(_LOG_LEVELS)} (any case)")
        else:
            values["log_level"] = level.upper()
    if "format" in section:
        fmt = section["format"]
        fmt = fmt.lower() if isinstance(fmt, str) else fmt
        if fmt not in _LOG_FORMATS:
            problems.append(f"logging.format: must be one of {', '.join(_LOG_FORMATS)}")
        else:
            values["log_format"] = fmt


def _validate_daemon(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = dict(_section(raw, "daemon", problems))
    for key in ("poll", *_FLOAT_KEYS):
        if key in raw:
            section[key] = raw[key]
    for key, value in section.items():
        if key == "poll":
            if not isinstance(value, bool):
                problems.append(f"daemon.poll: must be true or false, got {value!r}")
            else:
                values["poll"] = value
        elif key in _FLOAT_KEYS:
            minimum = _FLOAT_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
                problems.append(f"daemon.{key}: must be a number of seconds ≥ {minimum}")
            else:
                values[key] = float(value)
        else:
            problems.append(f"daemon.{key}: {_suggest(str(key), ('poll', *_FLOAT_KEYS))}")


def _validate_serve(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = dict(_section(raw, "serve", problems))
    # Flat keys (`port`, as the CLI gives them) win over the section.
    for key in _SERVE_KEYS:
        if key in raw:
            section[key] = raw[key]
    for key, value in section.items():
        if key == "bind":
            if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
                problems.append(
                    f"serve.bind: must be an address to listen on such as 127.0.0.1 or "
                    f"0.0.0.0, got {value!r}"
                )
            else:
                values["bind"] = value
        elif key == "port":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                problems.append(
                    f"serve.port: must be a TCP port 1-65535 (0: any free port), got {value!r}"
                )
            else:
                values["port"] = value
        elif key == "max_age":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(
                    f"serve.max_age: must be a whole number of seconds ≥ 0, got {value!r}"
                )
            else:
                values["max_age"] = value
        elif key == "gzip_sidecars":
            if not isinstance(value, bool):
                problems.append(f"serve.gzip_sidecars: must be true or false, got {value!r}")
            else:
                values["gzip_sidecars"] = value
        else:
            problems.append(f"serve.{key}: {_suggest(str(key), _SERVE_KEYS)}")


def _validate_titles(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = _section(raw, "feed_titles", problems)
    known = {f.name for f in dataclasses.fields(FeedTitles)}
    titles: dict[str, str] = {}
    for key, value in section.items():
        if key not in known:
            problems.append(f"feed_titles.{key}: {_suggest(str(key), sorted(known))}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"feed_titles.{key}: must be non-empty text")
        else:
            try:
                value.format(name="x")
            except (KeyError, IndexError, ValueError):
                problems.append(
                    f"feed_titles.{key}: only {{name}} may appear in braces, got {value!r}"
                )
                continue
            titles[key] = value
    if titles:
        values["titles"] = FeedTitles(**titles)


def _validate_builtins(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = _section(raw, "builtin_feeds", problems)
    known = [f.name for f in dataclasses.fields(BuiltinFeeds)]
    switches: dict[str, bool] = {}
    for key, value in section.items():
        if key not in known:
            problems.append(f"builtin_feeds.{key}: {_suggest(str(key), known)}")
        elif not isinstance(value, bool):
            problems.append(f"builtin_feeds.{key}: must be true or false, got {value!r}")
        else:
            switches[key] = value
    if switches:
        values["builtin_feeds"] = BuiltinFeeds(**switches)


def check_input(settings: Settings) -> None:
    """Raise `ConfigError` unless the input folder is a folder (`aggregator check` too)."""
    if not settings.input.is_dir():
        raise ConfigError(
            "input",
            [
                f"input: the folder {settings.input} does not exist or is not a folder; "
                "set input (or --input) to the folder holding the article files"
            ],
        )


def check_folders(settings: Settings) -> None:
    """Raise `ConfigError` unless the input is a folder and the output and state can be.

    Before anything is changed: `catalog rebuild` calls it before it moves the old catalog.
    """
    check_input(settings)
    input_dir = settings.input.resolve()
    if settings.output.resolve() == input_dir:
        raise ConfigError("output", ["output: must not be the input folder itself"])
    # A file where a folder goes would fail every write, one warning per feed file.
    for key, folder in (("output", settings.output), ("state", settings.state)):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                key,
                [
                    f"{key}: {folder} is a file, not a folder; move the file away or set "
                    f"{key} (or --{key}) to a folder"
                ],
            )
