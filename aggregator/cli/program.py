"""The command line: every flag and command declared once, the parser made from them, and
`main` (arguments → settings → one command → one clear exit code).

Every flag is declared once in `FLAGS` (`flags`) and every command once in `COMMANDS`, naming
the flags it takes: the parser, `--help`, the shell completion scripts and the man page are all
made from them, so a new command or flag shows up everywhere by being added here. The
command bodies, and the exit codes they return, are in `commands`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator import __version__
from aggregator.cli import commands
from aggregator.cli.commands import EXIT_FAILED, EXIT_USAGE
from aggregator.cli.flags import FLAGS, GLOBAL_FLAGS, SETTINGS_FLAGS
from aggregator.config import LoadedConfig, load_config
from aggregator.errors import AggregatorError, ConfigError

LOGGER = logging.getLogger("aggregator")


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


DESCRIPTION = (
    "Turn a folder of article files into RSS 2.0, Atom 1.0 and JSON Feed 1.1 feeds, kept "
    "current by a daemon."
)


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` gives it (COLUMNS, else the
    terminal of stdout, else 80), without importing shutil (and its compression modules)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, as wide as argparse makes it. A parser makes one for
    each flag it is given, and argparse's own finds the width through shutil: an import a
    build otherwise never needs."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with "did you mean" for a mistyped command or choice, and the help
    formatter above (its subcommands' parsers are of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        import difflib  # only for a mistake: a build that parses need not load it

        known = [str(choice) for choice in choices]
        close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(
                action,
                f"unknown command {value!r}{hint} (commands: {', '.join(known)}; "
                "`aggregator help` describes them)",
            )
        raise argparse.ArgumentError(
            action, f"invalid choice: {value!r}{hint} (choose from {', '.join(known)})"
        )


def build_parser(commands: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """The `aggregator` command line, made from `commands` (default `COMMANDS`) and `FLAGS`."""
    parser = _Parser(
        prog="aggregator",
        description=DESCRIPTION,
        epilog="Run `aggregator help COMMAND` (or `aggregator COMMAND --help`) for the flags "
        "of a command. The global flags are taken before the command too.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"aggregator {__version__}")
    for name in GLOBAL_FLAGS:
        _add_flag(parser, name)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS if commands is None else commands:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description
        )
        for positional in command.positionals:
            sub.add_argument(positional.name, **positional.options)
        for name in command.flags:
            _add_flag(sub, name)
    return parser


def _add_flag(parser: argparse.ArgumentParser, name: str) -> None:
    # No default on either parser: a subcommand's default would overwrite the value given
    # before the command (argparse fills a subparser's defaults in over the namespace).
    # `_defaults` puts the flag's own default in afterwards.
    flag = FLAGS[name]
    options = {**flag.options, "default": argparse.SUPPRESS}
    parser.add_argument(*flag.names, dest=name, **options)


def _defaults(args: argparse.Namespace, command: Command) -> None:
    """Each flag of `command` not given before or after it: its default (None, or False)."""
    for name in command.flags:
        if not hasattr(args, name):
            options = FLAGS[name].options
            store_true = options.get("action") == "store_true"
            setattr(args, name, options.get("default", False if store_true else None))


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each subcommand, by name (for errors, completion and the man page)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    words = sys.argv[1:] if argv is None else argv
    # A command named first is the one argparse would choose (no option came before it
    # to take it as a value): the parser of that command alone parses the same, without
    # making the thirteen others (their flags, and argparse's three gettext look-ups for
    # each: about 2 ms of every run). `help` shows the others: it gets them all.
    first = _COMMANDS.get(words[0]) if words else None
    parser = build_parser(None if first is None or first.name == "help" else (first,))
    # Subparsers hand unknown flags back to the top-level parser, which would print its own
    # usage: the user needs the usage of the command they typed.
    args, unknown = parser.parse_known_args(argv)
    sub = subcommand_parsers(parser)[args.command]
    if unknown:
        sub.error(f"unrecognized arguments: {' '.join(unknown)}")
    command = _COMMANDS[args.command]
    for name in GLOBAL_FLAGS:
        if hasattr(args, name) and name not in command.flags:
            sub.error(f"{args.command} does not take {'/'.join(FLAGS[name].names)}")
    _defaults(args, command)
    if getattr(args, "quiet", False) and getattr(args, "verbose", False):
        sub.error("-q/--quiet and -v/--verbose cannot be given together")
    args.parser = parser
    return args


def _loaded(args: argparse.Namespace) -> LoadedConfig:
    command = _COMMANDS[args.command]
    overrides: dict[str, Any] = {}
    for name in command.flags:
        setting = FLAGS[name].setting
        if setting is not None:
            overrides[setting] = getattr(args, name)
    # Kept for a reload (`run` on SIGHUP): the same file and flags, read again.
    args.overrides = overrides
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
            level = settings.log_level
            if getattr(args, "quiet", False) and getattr(args, "log_level", None) is None:
                level = "WARNING" if level in ("DEBUG", "INFO") else level
            configure_logging(level, settings.log_format)
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


# Filled in below from COMMANDS: what `help` takes (its choices are the commands themselves).
_COMMAND_NAMES: list[str] = []

COMMANDS: tuple[Command, ...] = (
    Command(
        "build",
        "bring the feeds up to date with the article files, once",
        "Read the article files that changed since the last build and rewrite the feeds "
        "whose items changed. Prints a summary.",
        (*SETTINGS_FLAGS, "strict", "verbose", "quiet", "wait"),
        commands.build,
    ),
    Command(
        "check",
        "validate article files without writing anything",
        "Parse article files and report every one that would be rejected, with the reason. "
        "Exits 1 if any is rejected, or a folder cannot be listed.",
        ("config", "input", "quiet"),
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
        "Stops cleanly on SIGTERM or SIGINT; SIGHUP reloads the config file. Under systemd "
        "(Type=notify) it reports READY=1 after the first build and feeds the watchdog.",
        (*SETTINGS_FLAGS, "quiet", "poll", "wait", "serve", "bind", "port", "access_log",
         "metrics_port", "metrics_bind"),
        commands.run,
    ),
    Command(
        "serve",
        "serve the output folder over HTTP, for feed readers",
        "Serve the built feeds, index.opml and index.html over HTTP (ETag, conditional GET, "
        "gzip, Range) until SIGTERM or SIGINT. Reads the output folder only.",
        (
            "config",
            "output",
            "state",
            "base_url",
            "log_level",
            "log_format",
            "quiet",
            "bind",
            "port",
            "access_log",
        ),
        commands.serve,
    ),
    Command(
        "catalog",
        "check the catalog (the state), or rebuild it from the article files",
        "check: SQLite's integrity check, the schema and every row; exits 1 if anything is "
        "wrong. rebuild: make a new catalog keeping the GUIDs and feed records that can "
        "still be read, move the old one aside (catalog.sqlite3.damaged-TIME), then build "
        "everything from the article files.",
        (*SETTINGS_FLAGS, "quiet", "wait"),
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
        ("quiet",),
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
        (*SETTINGS_FLAGS, "poll"),
        commands.config,
    ),
    Command(
        "health",
        "exit 0 if a daemon holds the state folder's lock and the catalog opens",
        "A container or service health check: exits 0 when a running `aggregator run` "
        "holds the lock of the state folder and the catalog can be read, 1 otherwise.",
        ("config", "state", "catalog", "node", "quiet"),
        commands.health,
    ),
    Command(
        "status",
        "show the daemon, its last build, rejected files, scheduled items, pings owed",
        "Safe beside a running daemon (no lock; the catalog is only read): whether the "
        "daemon runs (PID, since when, node, leader), its last build, the rejected files "
        "and why, the next embargoed items, the WebSub pings owed per hub. Exits 0 if the "
        "daemon runs, 3 if not, 1 if the catalog cannot be read.",
        ("config", "state", "catalog", "node", "json"),
        commands.status,
    ),
    Command(
        "explain",
        "say why an article is or is not in each feed",
        "For an article file (a path inside the input, or absolute) or a webUrl: read or "
        "rejected and why, published, embargoed until when, the duplicate webUrl's winner, "
        "its GUID, each feed that lists it (position against max_items) and each feed that "
        "leaves it out, with the rule. Reads the catalog only; safe beside the daemon.",
        ("config", "input", "state", "catalog", "node", "json"),
        commands.explain,
        positionals=(
            Positional(
                "target",
                {"metavar": "FILE|URL", "help": "an article file, or an article's webUrl"},
            ),
        ),
    ),
    Command(
        "node",
        "list the nodes of a shared catalog, retire or forget a stopped one",
        "PostgreSQL catalogs only. list: every node the catalog knows (live or stopped, "
        "host, pid, since when, files, items, change-log mark and lag, the leader). retire "
        "NAME: a stopped node taken out on purpose: its files leave in one transaction "
        "that lists each item another node also has from that node's file (no gap in any "
        "feed), its items no other node has leave, its bookkeeping goes. forget NAME: the "
        "same for a lost node, after a confirmation (--yes skips it). A live node is "
        "refused (exit 2).",
        ("config", "state", "catalog", "json", "yes"),
        commands.node,
        positionals=(
            Positional(
                "action",
                {"choices": ["list", "retire", "forget"], "help": "list, retire or forget"},
            ),
            Positional(
                "name",
                {"nargs": "?", "metavar": "NAME", "help": "the node to retire or forget"},
            ),
        ),
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
        "help",
        "describe the commands, or one command and its flags",
        "Print the list of commands, or with COMMAND its usage and every flag it takes "
        "(the same as `aggregator COMMAND --help`).",
        (),
        commands.help,
        positionals=(
            Positional(
                "topic",
                {
                    "nargs": "?",
                    "choices": _COMMAND_NAMES,
                    "metavar": "COMMAND",
                    "help": "the command to describe (default: all of them, briefly)",
                },
            ),
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
_COMMAND_NAMES.extend(_COMMANDS)
