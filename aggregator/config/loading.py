"""Reading the configuration: the YAML file (the default one only if it exists), the
command-line overrides on top, where each value came from, and the effective values shown.

Folders written in a config file, and the default folders when a file is read, are relative
to the file's folder (as in Hugo and Pelican): `aggregator build --config site/aggregator.yaml`
builds the same folders from anywhere. Folders given as flags are relative to the current
folder, as a shell user expects.

The merged keys are checked by `validate`; this module owns the YAML text of the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.config.settings import (
    DEFAULT_CONFIGS,
    DOCUMENTED_KEYS,
    BuiltinFeeds,
    FeedTitles,
    Settings,
)
from aggregator.config.validate import NULL_IS_UNSET, SECTION_OF, SECTIONS, validate
from aggregator.reading import parse_fast

if TYPE_CHECKING:
    import yaml
from aggregator.errors import ConfigError

DEFAULT = "default"

# The settings that are folders: relative ones in a file are taken from the file's folder.
FOLDER_KEYS = ("input", "output", "state")


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
    # The folder relative paths of the file (and the default folders) are taken from: the
    # file's own folder, absolute; None without a file (the current folder).
    base: Path | None
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

    Relative folders in the file, and the default folders when a file is read, are taken
    relative to the file's folder; those of `overrides` (the flags) to the current folder.
    Raises `ConfigError` listing every problem found, each with its key and, for a value
    given on the command line, its flag.
    """
    path = config_path if config_path is not None else default_config_file()
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    base: Path | None = None
    if path is not None:
        raw = _read_yaml(path)
        origins.update(_dotted_keys(raw, file_origin(path)))
        base = path.parent.resolve()
        for key in FOLDER_KEYS:
            if key in raw and isinstance(raw[key], str) and raw[key].strip():
                raw[key] = str(beside(base, raw[key]))
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
            origins[SECTION_OF.get(key, key)] = flag_origin(key)
    settings = validate(raw, origins, str(path) if path is not None else "defaults")
    if base is not None:
        # The defaults too, when a file is read: init's layout beside the file.
        settings = dataclasses.replace(
            settings,
            input=settings.input if "input" in origins else beside(base, settings.input),
            output=settings.output if "output" in origins else beside(base, settings.output),
            state=settings.state if "state" in origins else beside(base, settings.state),
        )
    return LoadedConfig(settings, path, base, origins)


def beside(base: Path, folder: str | Path) -> Path:
    """`folder` (`~` expanded) taken relative to `base`, `..` and `.` folded away as the
    path is written (as `cd` does), so that messages show a plain absolute path."""
    return Path(os.path.normpath(base / Path(folder).expanduser()))


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """`load_config(...).settings`: the validated settings alone."""
    return load_config(config_path, overrides).settings


def _dotted_keys(raw: Mapping[str, Any], origin: str) -> dict[str, str]:
    """Every key of the file, sections flattened (`logging.level`), mapped to `origin`.

    A key whose null means "the default" (`node: null`: the host name) and that is written
    null keeps the default's origin: the value in effect did not come from the file.
    """
    keys: dict[str, str] = {}
    for name, value in raw.items():
        key = str(name)
        if key in SECTIONS and isinstance(value, dict):
            keys.update(
                {
                    f"{key}.{inner}": origin
                    for inner, inner_value in value.items()
                    if not (inner_value is None and f"{key}.{inner}" in NULL_IS_UNSET)
                }
            )
        elif not (value is None and key in NULL_IS_UNSET):
            keys[SECTION_OF.get(key, key)] = origin
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
            values.append((SECTION_OF.get(f.name, f.name), [str(v) for v in value]))
        else:
            values.append((SECTION_OF.get(f.name, f.name), value))
    order = {key: i for i, key in enumerate(DOCUMENTED_KEYS)}
    return sorted(values, key=lambda kv: order.get(kv[0].split(".")[0], len(order)))


def yaml_value(value: object) -> str:
    """`value` as YAML on one line, as it would be written in the config file."""
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text: {exc.reason}"]) from exc
    data = _parse_simple(text)
    if data is not None:
        return data
    # Imported here: PyYAML costs a build that reads a simple config more than its scan.
    import yaml

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


# A `key: [a, b]` or `key: {a: b, c: d}` line whose items are plain words (or none): the flow
# collections a simple config writes on one line; and a `key: null` line.
_FLOW_LINE = re.compile(r"( *)([A-Za-z_][A-Za-z0-9_.-]*): +([\[{])(.*)([\]}]) *")
_NULL_LINE = re.compile(r"( *[A-Za-z_][A-Za-z0-9_.-]*:) +(?:null|Null|NULL|~) *")
_KEY_LINE = re.compile(r"( *)(- )?[A-Za-z_][A-Za-z0-9_.-]*:(?: .*)?")
_WORD = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_FLOW_SEQUENCE = re.compile(rf" *{_WORD}(?: *, *{_WORD})* *")
_FLOW_MAPPING = re.compile(rf" *{_WORD}: +{_WORD}(?: *, *{_WORD}: +{_WORD})* *")


def _parse_simple(text: str) -> dict[str, Any] | None:
    """The mapping PyYAML's `safe_load` reads from a simple config, without PyYAML; None
    when unsure (PyYAML reads it then).

    The reader is the article front matter's (`parse_fast`, which declines anything it is
    not sure PyYAML reads the same), with each one-line flow collection of plain words
    written first as the block collection it stands for (the words are scalars of the same
    kind in either form, so the value is the same), `key: null` as `key:` (None either way),
    and `key: []` or `key: {}` as `key:`, its None then replaced by the empty collection
    (only under keys of mappings, where the key path says which value it is)."""
    lines: list[str] = []
    empties: list[tuple[list[str], object]] = []
    parents: list[tuple[int, str | None]] = []  # (column, key) of the lines around, None: `-`
    for line in text.split("\n"):
        keyed = _KEY_LINE.fullmatch(line)
        if keyed is not None:
            column = len(keyed.group(1))
            while parents and parents[-1][0] >= column:
                parents.pop()
            name = None if keyed.group(2) else line.split(":", 1)[0].strip()
            parents.append((column, name))
        null = _NULL_LINE.fullmatch(line)
        if null is not None:
            lines.append(null.group(1))
            continue
        match = _FLOW_LINE.fullmatch(line)
        if match is None:
            lines.append(line)
            continue
        indent, key, opening, inner, closing = match.groups()
        if opening + closing not in ("[]", "{}"):
            return None
        lines.append(f"{indent}{key}:")
        if not inner.strip():
            names = [name for _, name in parents]
            if None in names:
                return None  # inside a sequence: no key path to the value
            empties.append(([n for n in names if n is not None], [] if opening == "[" else {}))
            continue
        pattern = _FLOW_SEQUENCE if opening == "[" else _FLOW_MAPPING
        if pattern.fullmatch(inner) is None:
            return None
        dash = "- " if opening == "[" else ""
        lines += [f"{indent}  {dash}{item.strip()}" for item in inner.split(",")]
    data = parse_fast("\n".join(lines))
    if data is None:
        return None
    for path, empty in empties:
        holder: Any = data
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or holder.get(path[-1], "") is not None:
            return None  # not where the line said: let PyYAML read it
        holder[path[-1]] = empty
    return dict(data)
