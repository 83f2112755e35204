"""Thin commands over the library: arguments → settings → one call → one clear exit code.

Exit codes: 0 done; 1 the work failed (or, with --strict, a file was rejected); 2 the
configuration or the command line is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.config import Settings, load_settings
from aggregator.errors import AggregatorError, ConfigError

if TYPE_CHECKING:
    from aggregator.build import Builder
    from aggregator.model import ChangeEvent

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

LOGGER = logging.getLogger("aggregator")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config file (default: config/aggregator.yaml when it exists)",
    )
    parser.add_argument("--input", type=Path, help="folder of article files")
    parser.add_argument("--output", type=Path, help="folder the feeds are written to")
    parser.add_argument("--state", type=Path, help="folder of the catalog (default .aggregator)")
    parser.add_argument("--base-url", help="absolute URL the output folder is served at")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", choices=["text", "json"], help="plain text or JSON lines")


def build_parser() -> argparse.ArgumentParser:
    """The `aggregator` command line."""
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Turn a folder of article files into RSS 2.0 and Atom 1.0 feeds.",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="bring the feeds up to date with the article files, once",
        description="Read the article files that changed since the last build and rewrite "
        "the feeds whose items changed. Prints a summary.",
    )
    _common(build)
    build.add_argument(
        "--strict", action="store_true", help="exit 1 when any article file is rejected"
    )
    build.add_argument(
        "-v", "--verbose", action="store_true", help="log every article and feed change"
    )

    check = commands.add_parser(
        "check",
        help="validate article files without writing anything",
        description="Parse article files and report every one that would be rejected, "
        "with the reason. Exits 1 if any is rejected.",
    )
    _common(check)
    check.add_argument("paths", nargs="*", type=Path, help="files to check (default: the input)")

    run = commands.add_parser(
        "run",
        help="keep the feeds current as files change (a foreground daemon)",
        description="Build once, then watch the input folder and rebuild the feeds a change "
        "touches. Stops cleanly on SIGTERM or SIGINT.",
    )
    _common(run)
    run.add_argument(
        "--poll", action="store_true", default=None, help="poll the folder (network mounts)"
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "input": args.input,
        "output": args.output,
        "state": args.state,
        "base_url": args.base_url,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "poll": getattr(args, "poll", None),
    }
    return load_settings(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from aggregator.notify import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "build":
            return _build(settings, strict=args.strict, verbose=args.verbose)
        if args.command == "check":
            return _check(settings, args.paths)
        return _run(settings)
    except ConfigError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _build(settings: Settings, *, strict: bool, verbose: bool) -> int:
    from aggregator.build import Builder
    from aggregator.notify import Notifier, log_sink

    changes = logging.getLogger("aggregator.changes")
    # A cold build of 100,000 files would print 100,000 "added" lines: the summary says
    # it all unless asked; rejections are warnings and always shown.
    changes.setLevel(logging.DEBUG if verbose else logging.WARNING)
    with Builder(settings) as builder:
        report = builder.build(progress=_progress_bar())
        rejected_now = len(builder.catalog.rejected_files())
        # The new bytes are in place: tell the hubs now, once; a failure stays owed.
        pings = _send_pings(settings, builder)
    Notifier([log_sink(changes)]).publish(report.events)
    Notifier([log_sink(changes)]).publish(pings)
    print(
        f"{report.read} article files read, {report.published} published, "
        f"{report.rejected} rejected; feeds: {report.written} written, "
        f"{report.unchanged} unchanged"
        + (f", {report.failed} failed" if report.failed else "")
        + _pings_summary(pings)
        + f"; {report.seconds:.2f} s"
    )
    if report.failed:
        return EXIT_FAILED
    if strict and rejected_now:
        print(f"aggregator: --strict: {rejected_now} article file(s) rejected", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _pings_summary(pings: list[ChangeEvent]) -> str:
    from aggregator.model import HubPinged

    if not pings:
        return ""
    sent = sum(isinstance(p, HubPinged) for p in pings)
    return f"; WebSub: {sent} ping(s) sent, {len(pings) - sent} failed"


def _send_pings(settings: Settings, builder: Builder) -> list[ChangeEvent]:
    from aggregator.websub import send_owed

    return send_owed(builder.catalog, settings.hubs, builder.now)


def _check(settings: Settings, paths: list[Path]) -> int:
    from aggregator.articles import read_article
    from aggregator.errors import ArticleError
    from aggregator.sources import SourceFilter, scan_sources

    source_filter = SourceFilter(
        settings.input, settings.patterns, excluded=(settings.output, settings.state)
    )
    if paths:
        targets = [(str(p), p) for p in paths]
    else:
        if not settings.input.is_dir():
            raise ConfigError("input", [f"input: the folder {settings.input} does not exist"])
        targets = [(rel, source_filter.root / rel) for rel in sorted(scan_sources(source_filter))]
    rejected = published = 0
    for name, path in targets:
        try:
            article = read_article(path, name, max_bytes=settings.max_file_bytes)
        except ArticleError as exc:
            rejected += 1
            print(f"rejected {exc}")
            continue
        published += article.published
    print(f"{len(targets)} article files checked: {published} published, {rejected} rejected")
    return EXIT_FAILED if rejected else EXIT_OK


def _run(settings: Settings) -> int:
    from aggregator.daemon import run_daemon

    return run_daemon(settings)


class _TqdmProgress:
    """A progress bar on stderr, for builds that read many files."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int) -> None:
        if total >= 1000:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", desc="reading", leave=False)

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress_bar() -> _TqdmProgress | None:
    """A bar only on a terminal: piped output and logs stay clean."""
    return _TqdmProgress() if sys.stderr.isatty() else None
