"""The command line: every flag and command declared once, the parser made from them, and
`main` (arguments → settings → one command → one clear exit code).

Every flag is declared once in `FLAGS` and every command once in `COMMANDS`, naming the
flags it takes: the parser, `--help`, the shell completion scripts and the man page are all
made from them, so a new command or flag shows up everywhere by being added here. The
command bodies, and the exit codes they return, are in `commands`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator import __version__
from aggregator.cli import commands
from aggregator.cli.commands import EXIT_FAILED, EXIT_USAGE
from aggregator.config import DEFAULT_CONFIGS, LoadedConfig, Settings, load_config
from aggregator.errors import AggregatorError, ConfigError

LOGGER = logging.getLogger("aggregator")
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
        ("--config",),
        {
            "type": Path,
            "metavar": "FILE",
            "help": "YAML config file (default: the first of "
            + ", ".join(str(p) for p in DEFAULT_CONFIGS)
            + " that exists, else built-in defaults)",
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
}

# The flags that decide the settings: what `config` shows the effect of.
_SETTINGS_FLAGS = (
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


@dataclass(frozen=True, slots=True)
class Positional:
    """A positional argument of one command."""

    name: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: its help, the flags it takes, and what runs it."""

    name: str
    help: str
    description: str
    flags: tuple[str, ...]
    run: Callable[[argparse.Namespace], int]
    positionals: tuple[Positional, ...] = field(default=())
    needs_settings: bool = True


def build_parser() -> argparse.ArgumentParser:
    """The `aggregator` command line, made from `COMMANDS` and `FLAGS`."""
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Turn a folder of article files into RSS 2.0 and Atom 1.0 feeds.",
        epilog="Run `aggregator COMMAND --help` for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description
        )
        for positional in command.positionals:
            sub.add_argument(positional.name, **positional.options)
        for name in command.flags:
            flag = FLAGS[name]
            sub.add_argument(*flag.names, dest=name, **flag.options)
    return parser


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each subcommand, by name (for errors, completion and the man page)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    # Subparsers hand unknown flags back to the top-level parser, which would print its own
    # usage: the user needs the usage of the command they typed.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subcommand_parsers(parser)[args.command].error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    return args


def _loaded(args: argparse.Namespace) -> LoadedConfig:
    command = _COMMANDS[args.command]
    overrides: dict[str, Any] = {}
    for name in command.flags:
        setting = FLAGS[name].setting
        if setting is not None:
            overrides[setting] = getattr(args, name)
    return load_config(getattr(args, "config", None), overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parse(argv)
    command = _COMMANDS[args.command]
    try:
        if command.needs_settings:
            args.loaded = _loaded(args)
            from aggregator.delivery import configure_logging

            settings = args.loaded.settings
            configure_logging(settings.log_level, settings.log_format)
        return command.run(args)
    except ConfigError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Ctrl-C: say so (a bare exit looked like a crash); feed and catalog writes are
        # atomic, so what was written is whole and the next run finishes the rest.
        print(
            f"aggregator {args.command}: interrupted (Ctrl-C); nothing is half-written: "
            f"run `aggregator {args.command}` again to finish",
            file=sys.stderr,
        )
        return 130


COMMANDS: tuple[Command, ...] = (
    Command(
        "build",
        "bring the feeds up to date with the article files, once",
        "Read the article files that changed since the last build and rewrite the feeds "
        "whose items changed. Prints a summary.",
        (*_SETTINGS_FLAGS, "strict", "verbose", "wait"),
        commands.build,
    ),
    Command(
        "check",
        "validate article files without writing anything",
        "Parse article files and report every one that would be rejected, with the reason. "
        "Exits 1 if any is rejected, or a folder cannot be listed.",
        ("config", "input"),
        commands.check,
        positionals=(
            Positional(
                "paths",
                {
                    "nargs": "*",
                    "type": Path,
                    "metavar": "FILE",
                    "help": "files to check, or folders: their article files (default: every "
                    "article file of the input)",
                },
            ),
        ),
    ),
    Command(
        "run",
        "keep the feeds current as files change (a foreground daemon)",
        "Build once, then watch the input folder and rebuild the feeds a change touches. "
        "Stops cleanly on SIGTERM or SIGINT.",
        (*_SETTINGS_FLAGS, "poll", "wait", "serve", "bind", "port"),
        commands.run,
    ),
    Command(
        "serve",
        "serve the output folder over HTTP, for feed readers",
        "Serve the built feeds, index.opml and index.html over HTTP (ETag, conditional GET, "
        "gzip, Range) until SIGTERM or SIGINT. Reads the output folder only.",
        ("config", "output", "state", "base_url", "log_level", "log_format", "bind", "port"),
        commands.serve,
    ),
    Command(
        "catalog",
        "check the catalog (the state), or rebuild it from the article files",
        "check: SQLite's integrity check, the schema and every row; exits 1 if anything is "
        "wrong. rebuild: make a new catalog keeping the GUIDs and feed records that can "
        "still be read, move the old one aside (catalog.sqlite3.damaged-TIME), then build "
        "everything from the article files.",
        (*_SETTINGS_FLAGS, "wait"),
        commands.catalog,
        positionals=(
            Positional(
                "action",
                {"choices": ["check", "rebuild"], "help": "check, or rebuild"},
            ),
        ),
    ),
    Command(
        "init",
        "create a starter folder: a commented config, a sample article, an output folder",
        "Write DIR/aggregator.yaml (every key with its default), DIR/articles/ with one "
        "sample article and DIR/feeds/. Never overwrites an existing file.",
        (),
        commands.init,
        positionals=(
            Positional(
                "folder",
                {
                    "nargs": "?",
                    "type": Path,
                    "default": Path(),
                    "metavar": "DIR",
                    "help": "folder to set up (default: the current folder)",
                },
            ),
        ),
        needs_settings=False,
    ),
    Command(
        "config",
        "print the effective settings and where each came from",
        "Print every setting after merging the defaults, the config file and the flags, "
        "each with its origin: default, file:PATH or flag:--NAME.",
        (*_SETTINGS_FLAGS, "poll"),
        commands.config,
    ),
    Command(
        "health",
        "exit 0 if a daemon holds the state folder's lock and the catalog opens",
        "A container or service health check: exits 0 when a running `aggregator run` "
        "holds the lock of the state folder and the catalog can be read, 1 otherwise.",
        ("config", "state", "catalog", "node"),
        commands.health,
    ),
    Command(
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        "Print a completion script for the shell, made from this command line's parser. "
        "See the README for where to install it.",
        (),
        commands.completion,
        positionals=(
            Positional("shell", {"choices": ["bash", "zsh", "fish"], "help": "the shell"}),
        ),
        needs_settings=False,
    ),
    Command(
        "manpage",
        "print the man page (roff), made from this command line's parser",
        "Print aggregator(1) in roff; `aggregator manpage > aggregator.1`.",
        (),
        commands.manpage,
        needs_settings=False,
    ),
)
_COMMANDS = {command.name: command for command in COMMANDS}
