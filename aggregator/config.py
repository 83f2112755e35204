"""Settings: defaults → YAML file → command-line overrides → validation (every problem at once)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from aggregator.errors import ConfigError

DEFAULT_CONFIG = Path("config/aggregator.yaml")


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
    titles: FeedTitles = field(default_factory=FeedTitles)
    log_level: str = "INFO"
    log_format: str = "text"
    # daemon
    debounce_seconds: float = 0.2
    debounce_max_seconds: float = 2.0
    reconcile_seconds: float = 300.0
    poll: bool = False
    poll_seconds: float = 1.0

    @property
    def catalog_path(self) -> Path:
        """The SQLite file that remembers articles between runs."""
        return self.state / "catalog.sqlite3"

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


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the YAML config (the default file only if it exists) and apply CLI overrides.

    Relative paths in the file are taken relative to the working directory, as the CLI's are.
    Raises `ConfigError` listing every problem found, each with its key.
    """
    source = "defaults"
    raw: dict[str, Any] = {}
    path = config_path
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    if path is not None:
        source = str(path)
        raw = _read_yaml(path)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    return _validate(raw, source)


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
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the file must be a mapping of keys to values"])
    return dict(data)


def _validate(raw: Mapping[str, Any], source: str) -> Settings:
    problems: list[str] = []
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(Settings)} | {"logging", "feed_titles", "daemon"}
    for key in raw:
        if key not in known:
            problems.append(f"{key}: unknown key (see config/aggregator.yaml for the keys)")

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

    _validate_logging(raw, values, problems)
    _validate_daemon(raw, values, problems)
    _validate_titles(raw, values, problems)

    if problems:
        raise ConfigError(source, problems)
    settings = Settings(**values)
    if settings.debounce_max_seconds < settings.debounce_seconds:
        raise ConfigError(
            source,
            ["daemon.debounce_max_seconds: must be at least daemon.debounce_seconds"],
        )
    return settings


def _section(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a mapping, got {value!r}")
        return {}
    return value


def _validate_logging(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = dict(_section(raw, "logging", problems))
    # Flat keys (`log_level`, as the CLI gives them) win over the section.
    for flat, inner in (("log_level", "level"), ("log_format", "format")):
        if flat in raw:
            section[inner] = raw[flat]
    for key in section:
        if key not in ("level", "format"):
            problems.append(f"logging.{key}: unknown key (known: level, format)")
    if "level" in section:
        level = section["level"]
        if not isinstance(level, str) or level.upper() not in _LOG_LEVELS:
            problems.append(f"logging.level: must be one of {', '.join(_LOG_LEVELS)}")
        else:
            values["log_level"] = level.upper()
    if "format" in section:
        fmt = section["format"]
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
            known = ", ".join(("poll", *_FLOAT_KEYS))
            problems.append(f"daemon.{key}: unknown key (known: {known})")


def _validate_titles(raw: Mapping[str, Any], values: dict[str, Any], problems: list[str]) -> None:
    section = _section(raw, "feed_titles", problems)
    known = {f.name for f in dataclasses.fields(FeedTitles)}
    titles: dict[str, str] = {}
    for key, value in section.items():
        if key not in known:
            problems.append(f"feed_titles.{key}: unknown key (known: {', '.join(sorted(known))})")
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
