"""The command line's flags, each declared once (`FLAGS`): its names, its argparse options,
and the setting it overrides. `program` makes the parser from them and its `COMMANDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.config import DEFAULT_CONFIGS, Settings

_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class Flag:
    """One command-line option: its names, argparse keywords, and the setting it overrides
    (None: it is not a setting, e.g. --strict)."""

    names: tuple[str, ...]
    options: dict[str, Any]
    setting: str | None = None


def _level(value: str) -> str:
    return value.upper()


def _lower(value: str) -> str:
    return value.lower()


FLAGS: dict[str, Flag] = {
    "config": Flag(
        ("-c", "--config"),
        {
            "type": Path,
            "metavar": "FILE",
            "help": "YAML config file (default: the first of "
            + ", ".join(str(p) for p in DEFAULT_CONFIGS)
            + " that exists, else built-in defaults); relative folders in it are taken from "
            "its folder, those of flags from the current folder",
        },
    ),
    "input": Flag(
        ("--input",),
        {
            "type": Path,
            "metavar": "DIR",
            "help": f"folder of article files (config key input; default {_DEFAULTS.input})",
        },
        setting="input",
    ),
    "output": Flag(
        ("--output",),
        {
            "type": Path,
            "metavar": "DIR",
            "help": "folder the feeds are written to "
            f"(config key output; default {_DEFAULTS.output})",
        },
        setting="output",
    ),
    "state": Flag(
        ("--state",),
        {
            "type": Path,
            "metavar": "DIR",
            "help": "folder of the catalog and the lock "
            f"(config key state; default {_DEFAULTS.state})",
        },
        setting="state",
    ),
    "base_url": Flag(
        ("--base-url",),
        {
            "metavar": "URL",
            "help": "absolute http(s) URL the output folder is served at "
            f"(config key base_url; default {_DEFAULTS.base_url})",
        },
        setting="base_url",
    ),
    "catalog": Flag(
        ("--catalog",),
        {
            "metavar": "URL",
            "help": "a PostgreSQL catalog shared by several nodes, postgresql://USER@HOST/DB "
            "(config key catalog; default: the SQLite file in the state folder)",
        },
        setting="catalog",
    ),
    "node": Flag(
        ("--node",),
        {
            "metavar": "NAME",
            "help": "this node's name in a shared catalog "
            "(config key node; default: the host name)",
        },
        setting="node",
    ),
    "log_level": Flag(
        ("--log-level",),
        {
            "type": _level,
            "choices": ["DEBUG", "INFO", "WARNING", "ERROR"],
            "metavar": "LEVEL",
            "help": "DEBUG, INFO, WARNING or ERROR, any case "
            f"(config key logging.level; default {_DEFAULTS.log_level})",
        },
        setting="log_level",
    ),
    "log_format": Flag(
        ("--log-format",),
        {
            "type": _lower,
            "choices": ["text", "json"],
            "help": "plain text lines, or one JSON object per line "
            f"(config key logging.format; default {_DEFAULTS.log_format})",
        },
        setting="log_format",
    ),
    "poll": Flag(
        ("--poll",),
        {
            "action": "store_true",
            "default": None,
            "help": "poll the folder instead of using inotify, for network mounts "
            "(config key daemon.poll; default off)",
        },
        setting="poll",
    ),
    "serve": Flag(
        ("--serve",),
        {
            "action": "store_true",
            "help": "also serve the output folder over HTTP in the same process, as "
            "`aggregator serve` does (default off)",
        },
    ),
    "bind": Flag(
        ("--bind",),
        {
            "metavar": "ADDR",
            "help": f"address to listen on (config key serve.bind; default {_DEFAULTS.bind})",
        },
        setting="bind",
    ),
    "port": Flag(
        ("--port",),
        {
            "type": int,
            "metavar": "N",
            "help": "TCP port, 0 for any free one "
            f"(config key serve.port; default {_DEFAULTS.port})",
        },
        setting="port",
    ),
    "access_log": Flag(
        ("--access-log",),
        {
            "action": "store_true",
            "default": None,
            "help": "log one line per HTTP request on the aggregator.access logger "
            "(config key serve.access_log; default off)",
        },
        setting="access_log",
    ),
    "metrics_port": Flag(
        ("--metrics-port",),
        {
            "type": int,
            "metavar": "N",
            "help": "serve Prometheus metrics at /metrics and a health check at /healthz on "
            "this TCP port (config key metrics.port; default: no metrics server)",
        },
        setting="metrics_port",
    ),
    "metrics_bind": Flag(
        ("--metrics-bind",),
        {
            "metavar": "ADDR",
            "help": "address the metrics server listens on "
            f"(config key metrics.bind; default {_DEFAULTS.metrics_bind})",
        },
        setting="metrics_bind",
    ),
    "json": Flag(
        ("--json",),
        {"action": "store_true", "help": "print JSON (schema in the README) instead of text"},
    ),
    "yes": Flag(
        ("--yes", "-y"),
        {"action": "store_true", "help": "do it without asking for a confirmation"},
    ),
    "wait": Flag(
        ("--wait",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "how long to wait for another aggregator process that holds the state "
            f"folder (config key lock_wait_seconds; default {_DEFAULTS.lock_wait_seconds:g})",
        },
        setting="lock_wait_seconds",
    ),
    "strict": Flag(
        ("--strict",),
        {
            "action": "store_true",
            "help": "exit 1 when any article file is rejected, naming each (default off)",
        },
    ),
    "verbose": Flag(
        ("-v", "--verbose"),
        {
            "action": "store_true",
            "help": "log every article and feed change, not just the summary (default off)",
        },
    ),
    "quiet": Flag(
        ("-q", "--quiet"),
        {
            "action": "store_true",
            "help": "print only warnings and errors: no summary or progress, and log at "
            "WARNING unless --log-level is given (default off)",
        },
    ),
}

# Flags also taken before the command (`aggregator -c site.yaml build`), by the commands
# that take them; after the command they win over the same flag given before it.
GLOBAL_FLAGS = ("config", "quiet", "log_level", "log_format")

# The flags that decide the settings: what `config` shows the effect of.
SETTINGS_FLAGS = (
    "config",
    "input",
    "output",
    "state",
    "catalog",
    "node",
    "base_url",
    "log_level",
    "log_format",
)
