"""Thin commands over the library: arguments → settings → one call → one clear exit code.

Exit codes: 0 done; 1 the work failed (or, with --strict, a file was rejected; or `health`
found the daemon down); 2 the configuration or the command line is wrong.

Every flag is declared once in `FLAGS` and every command once in `COMMANDS`, naming the
flags it takes: the parser, `--help`, the shell completion scripts and the man page are all
made from them, so a new command or flag shows up everywhere by being added here.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.config import (
    DEFAULT_CONFIGS,
    LoadedConfig,
    Settings,
    effective_values,
    load_config,
    yaml_value,
)
from aggregator.errors import AggregatorError, ConfigError

if TYPE_CHECKING:
    from aggregator.events import ChangeEvent
    from aggregator.pipeline import Builder

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.description)
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


# --- commands ---------------------------------------------------------------------------


def _build(args: argparse.Namespace) -> int:
    from aggregator.delivery import Notifier, log_sink
    from aggregator.events import ArticleRejected
    from aggregator.pipeline import Builder

    settings: Settings = args.loaded.settings
    changes = logging.getLogger("aggregator.changes")
    # A cold build of 100,000 files would print 100,000 "added" lines: the summary says
    # it all unless asked; rejections are warnings and always shown.
    changes.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    with Builder(settings) as builder:
        report = builder.build(
            progress=_progress_bar("reading", "file", 1000),
            render_progress=_progress_bar("rendering", "feed", 200),
        )
        rejected_now = builder.catalog.rejected_files()
        nothing_matched = report.read == 0 and report.published == 0 and not rejected_now
        if nothing_matched:
            nothing_matched = not builder.catalog.file_signatures()
        # The new bytes are in place: tell the hubs now, once; a failure stays owed.
        pings = _send_pings(settings, builder)
    Notifier([log_sink(changes)]).publish(report.events)
    Notifier([log_sink(changes)]).publish(pings)
    this_build = {e.source for e in report.events if isinstance(e, ArticleRejected)}
    earlier = [path for path, _ in rejected_now if path not in this_build]
    print(
        f"{report.read} article files read, {report.published} published, "
        f"{report.rejected} rejected"
        + (f" ({len(earlier)} more still rejected from earlier builds)" if earlier else "")
        + f"; feeds: {report.written} written, {report.unchanged} unchanged"
        + (f", {report.failed} failed" if report.failed else "")
        + _pings_summary(pings)
        + f"; {report.seconds:.2f} s"
        + (
            f"; next scheduled change at {report.next_due.isoformat().replace('+00:00', 'Z')}"
            if report.next_due is not None
            else ""
        )
    )
    if nothing_matched:
        _warn_nothing_matched(settings)
    if report.failed:
        return EXIT_FAILED
    if args.strict and rejected_now:
        lines = "".join(f"\n  {path}: {reason}" for path, reason in rejected_now)
        print(
            f"aggregator: --strict: {len(rejected_now)} article file(s) rejected "
            f"(fix or delete each):{lines}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _pings_summary(pings: list[ChangeEvent]) -> str:
    from aggregator.events import HubPinged

    if not pings:
        return ""
    sent = sum(isinstance(p, HubPinged) for p in pings)
    return f"; WebSub: {sent} ping(s) sent, {len(pings) - sent} failed"


def _send_pings(settings: Settings, builder: Builder) -> list[ChangeEvent]:
    if not builder.catalog.owed_pings():
        return []  # the usual case: the HTTP client is not even imported
    from aggregator.delivery import send_owed

    return send_owed(builder.catalog, settings.hubs, builder.now)


def _warn_nothing_matched(settings: Settings) -> None:
    print(
        f"aggregator: warning: no file in {settings.input} matches the patterns "
        f"{', '.join(settings.patterns)}: nothing to build (check `input` and `patterns` "
        "with `aggregator config`)",
        file=sys.stderr,
    )


def _check(args: argparse.Namespace) -> int:
    from aggregator.config import check_input
    from aggregator.errors import ArticleError
    from aggregator.reading import SourceFilter, read_article, scan_sources

    settings: Settings = args.loaded.settings
    paths: list[Path] = args.paths
    source_filter = SourceFilter(
        settings.input,
        settings.patterns,
        excluded=(settings.output, settings.state),
        follow_external_links=settings.follow_external_links,
    )
    if paths:
        targets = []
        for path in paths:
            if path.is_dir():  # its article files, as a build would find them there
                folder = SourceFilter(
                    path,
                    settings.patterns,
                    excluded=(settings.output, settings.state),
                    follow_external_links=settings.follow_external_links,
                )
                found = sorted(scan_sources(folder))
                targets += [(str(path / rel), path / rel) for rel in found]
            else:
                targets.append((str(path), path))
    else:
        check_input(settings)
        targets = [(rel, source_filter.root / rel) for rel in sorted(scan_sources(source_filter))]
    rejected = published = 0
    for name, path in targets:
        if not path.exists() and not path.is_symlink():
            rejected += 1
            print(f"rejected {name}: no such file (check the path)")
            continue
        try:
            article = read_article(path, name, max_bytes=settings.max_file_bytes)
        except ArticleError as exc:
            rejected += 1
            print(f"rejected {exc}")
            continue
        published += article.published
    print(f"{len(targets)} article files checked: {published} published, {rejected} rejected")
    if not targets:
        _warn_nothing_matched(settings)
    return EXIT_FAILED if rejected else EXIT_OK


def _catalog(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from aggregator.catalog import check_catalog, rebuild_catalog
    from aggregator.config import check_folders
    from aggregator.pipeline import BuildLock

    settings: Settings = args.loaded.settings
    path = settings.catalog_path
    if settings.catalog is not None:
        print(
            f"aggregator: `catalog {args.action}` works on the SQLite catalog; a PostgreSQL "
            "catalog is checked and backed up with PostgreSQL's own tools (pg_amcheck, "
            "pg_dump), see docs/scale-out.md",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.action == "check":
        if not path.exists():
            print(f"{path}: no catalog yet (the next build makes one)")
            return EXIT_OK
        problems = check_catalog(path)
        if not problems:
            print(f"{path}: ok")
            return EXIT_OK
        for problem in problems:
            print(f"{path}: {problem}")
        print(
            "aggregator: the catalog is damaged; `aggregator catalog rebuild` makes a new one "
            "from the article files (keeping the GUIDs it can still read)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    # A wrong --input must fail here, before the old catalog is moved aside.
    check_folders(settings)
    lock = BuildLock(settings.state)
    lock.acquire(settings.lock_wait_seconds)
    try:
        salvage = rebuild_catalog(path, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    finally:
        lock.release()
    if salvage.moved_to is not None:
        print(f"the old catalog is now {salvage.moved_to} (delete it once all is well)")
    for problem in salvage.problems:
        print(f"could not carry over everything: {problem}")
    print(
        f"new catalog {path}: {salvage.identities} GUID(s) and {salvage.feeds} feed "
        "record(s) carried over; building everything from the article files"
    )
    args.strict = args.verbose = False
    return _build(args)


def _run(args: argparse.Namespace) -> int:
    from aggregator.daemon import run_daemon

    settings = args.loaded.settings
    if not args.serve:
        return run_daemon(settings)
    from aggregator.serve import FeedServer

    # Listening first: a taken port fails at once, before the daemon takes the lock. The
    # server runs in its own thread; the daemon's SIGTERM handling stops both.
    with FeedServer(settings):
        return run_daemon(settings)


def _serve(args: argparse.Namespace) -> int:
    from aggregator.serve import serve

    return serve(args.loaded.settings)


def _init(args: argparse.Namespace) -> int:
    from aggregator.cli.starter import create_starter

    folder: Path = args.folder
    result = create_starter(folder)
    for path in result.written:
        print(f"wrote {path}")
    for path in result.kept:
        print(f"kept {path} (it exists; not overwritten)")
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(folder))} && "
    print("next:")
    print(f"  {go}aggregator build     # articles/ → feeds/ once")
    print("  aggregator run       # then keep feeds/ current as articles/ changes")
    return EXIT_OK


def _config(args: argparse.Namespace) -> int:
    loaded: LoadedConfig = args.loaded
    values = effective_values(loaded.settings)
    shown = [(key, yaml_value(value), loaded.origin(key)) for key, value in values]
    width = max(len(f"{key}: {value}") for key, value, _ in shown)
    source = str(loaded.file) if loaded.file else "none (built-in defaults)"
    print(f"# config file: {source}; precedence: default < file < flag")
    for key, value, origin in shown:
        print(f"{f'{key}: {value}':<{width}}  # {origin}")
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    problem = _daemon_problem(args.loaded.settings)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return EXIT_FAILED
    print("healthy")
    return EXIT_OK


def _daemon_problem(settings: Settings) -> str | None:
    """Why the daemon of this state folder is not healthy, or None if it is.

    Healthy: some process holds the lock (the daemon holds it for its whole life) and the
    catalog opens and answers a query. The lock is only probed: a shared, non-blocking
    attempt that is released at once, so a health check never delays a build.
    """
    from aggregator.catalog import Catalog
    from aggregator.pipeline import lock_held

    held = lock_held(settings.state)
    if held is None:
        return f"no state folder {settings.state}: no daemon has run on it"
    if not held:
        return f"no process holds the lock on {settings.state}: the daemon is not running"
    if settings.catalog is None and not settings.catalog_path.is_file():
        return f"no catalog at {settings.catalog_path} yet"
    try:
        catalog = Catalog(settings.catalog_location, readonly=True, node=settings.node)
        try:
            catalog.published_count()
        finally:
            catalog.close()
    except AggregatorError as exc:
        return str(exc)
    return None


def _completion(args: argparse.Namespace) -> int:
    from aggregator.cli.completion import completion_script

    parser = build_parser()
    print(completion_script(args.shell, parser, subcommand_parsers(parser)), end="")
    return EXIT_OK


def _manpage(args: argparse.Namespace) -> int:
    from aggregator.cli.manpage import manpage

    parser = build_parser()
    print(manpage(parser, subcommand_parsers(parser), version=__version__), end="")
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command(
        "build",
        "bring the feeds up to date with the article files, once",
        "Read the article files that changed since the last build and rewrite the feeds "
        "whose items changed. Prints a summary.",
        (*_SETTINGS_FLAGS, "strict", "verbose", "wait"),
        _build,
    ),
    Command(
        "check",
        "validate article files without writing anything",
        "Parse article files and report every one that would be rejected, with the reason. "
        "Exits 1 if any is rejected.",
        ("config", "input"),
        _check,
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
        _run,
    ),
    Command(
        "serve",
        "serve the output folder over HTTP, for feed readers",
        "Serve the built feeds, index.opml and index.html over HTTP (ETag, conditional GET, "
        "gzip, Range) until SIGTERM or SIGINT. Reads the output folder only.",
        ("config", "output", "state", "base_url", "log_level", "log_format", "bind", "port"),
        _serve,
    ),
    Command(
        "catalog",
        "check the catalog (the state), or rebuild it from the article files",
        "check: SQLite's integrity check, the schema and every row; exits 1 if anything is "
        "wrong. rebuild: make a new catalog keeping the GUIDs and feed records that can "
        "still be read, move the old one aside (catalog.sqlite3.damaged-TIME), then build "
        "everything from the article files.",
        (*_SETTINGS_FLAGS, "wait"),
        _catalog,
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
        _init,
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
        _config,
    ),
    Command(
        "health",
        "exit 0 if a daemon holds the state folder's lock and the catalog opens",
        "A container or service health check: exits 0 when a running `aggregator run` "
        "holds the lock of the state folder and the catalog can be read, 1 otherwise.",
        ("config", "state", "catalog", "node"),
        _health,
    ),
    Command(
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        "Print a completion script for the shell, made from this command line's parser. "
        "See the README for where to install it.",
        (),
        _completion,
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
        _manpage,
        needs_settings=False,
    ),
)
_COMMANDS = {command.name: command for command in COMMANDS}


class _TqdmProgress:
    """A progress bar on stderr for one stage of a build, when it has much to do."""

    def __init__(self, stage: str, unit: str, minimum: int) -> None:
        self.stage = stage
        self.unit = unit
        self.minimum = minimum
        self._bar: Any = None

    def start(self, total: int) -> None:
        if total >= self.minimum:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=self.unit, desc=self.stage, leave=False)

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress_bar(stage: str, unit: str, minimum: int) -> _TqdmProgress | None:
    """A bar only on a terminal: piped output and logs stay clean."""
    return _TqdmProgress(stage, unit, minimum) if sys.stderr.isatty() else None
