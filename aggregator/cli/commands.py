"""The bodies of the `aggregator` commands: each takes the parsed arguments (with the loaded
settings) and returns the exit code.

Exit codes: 0 done; 1 the work failed (a feed could not be written, or a folder of the input
could not be listed: a partial scan is not a success; with --strict, a file was rejected; or
`health` found the daemon down); 2 the configuration or the command line is wrong; 3
(`status`) the daemon is not running.

Declared apart from the flags and the parser (`program`), as the anchors keep command bodies
apart from the argument declarations. `completion` and `manpage` import the parser at call
time: `program` imports this module for its `COMMANDS` table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.config import LoadedConfig, Settings, effective_values, yaml_value
from aggregator.errors import AggregatorError, redact_url
from aggregator.words import counted

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from aggregator.catalog import OwedPing
    from aggregator.events import ChangeEvent, SourceUnreadable
    from aggregator.pipeline import Builder

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build(args: argparse.Namespace) -> int:
    from aggregator.delivery import Notifier, log_sink
    from aggregator.errors import BuildIncomplete
    from aggregator.events import ArticleRejected
    from aggregator.pipeline import Builder

    settings: Settings = args.loaded.settings
    changes = logging.getLogger("aggregator.changes")
    # A cold build of 100,000 files would print 100,000 "added" lines: the summary says
    # it all unless asked; rejections are warnings and always shown.
    changes.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    with Builder(settings) as builder:
        try:
            report = builder.build(
                progress=None if args.quiet else _progress_bar("reading", "file", 1000),
                render_progress=None if args.quiet else _progress_bar("rendering", "feed", 200),
            )
        except BuildIncomplete as exc:  # what the catalog took in is told, then the error
            Notifier([log_sink(changes)]).publish(exc.events)
            if not isinstance(exc.cause, AggregatorError):
                raise exc.cause from None  # a bug: its own traceback, as for any other
            raise
        rejected_now = builder.catalog.rejected_files()
        nothing_matched = not (
            report.read or report.published or rejected_now or report.unreadable
        ) and not builder.catalog.file_signatures()
        owed = _owed_pings(settings, builder)
    # The new bytes are in place and the lock is released (a hub never holds up the next
    # build or a daemon's start): tell the hubs now, once; a failure stays owed.
    pings = _send_pings(settings, owed, builder.now)
    Notifier([log_sink(changes)]).publish([*report.events, *pings])
    this_build = {e.source for e in report.events if isinstance(e, ArticleRejected)}
    earlier = [path for path, _ in rejected_now if path not in this_build]
    summary = (
        f"{counted(report.read, 'article file')} read, {report.published} published, "
        f"{report.rejected} rejected"
        + (f" ({len(earlier)} more still rejected from earlier builds)" if earlier else "")
        + f"; feeds: {report.written} written, {report.unchanged} unchanged"
        + (f", {report.failed} failed" if report.failed else "")
        + (f"; {counted(report.copied, 'file')} copied from the cluster" if report.copied else "")
        + _unreadable_summary(report.unreadable)
        + _pings_summary(pings)
        + f"; {report.seconds:.2f} s"
        + (
            f"; next scheduled change at {report.next_due.isoformat().replace('+00:00', 'Z')}"
            if report.next_due is not None
            else ""
        )
    )
    if not args.quiet:
        print(summary)
    if nothing_matched:
        _warn_nothing_matched(settings)
    if report.failed or report.unreadable:
        return EXIT_FAILED
    if args.strict and rejected_now:
        lines = "".join(f"\n  {path}: {reason}" for path, reason in rejected_now)
        print(
            f"aggregator: --strict: {counted(len(rejected_now), 'article file')} rejected "
            f"(fix or delete each):{lines}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _unreadable_summary(unreadable: Sequence[SourceUnreadable]) -> str:
    if not unreadable:
        return ""
    kept = sum(u.kept for u in unreadable)
    folders = ", ".join(u.path or "the input folder" for u in unreadable[:3])
    more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
    return (
        f"; INCOMPLETE: {len(unreadable)} folder(s) could not be listed ({folders}{more}), "
        f"their {kept} known article file(s) kept as they were"
    )


def _pings_summary(pings: list[ChangeEvent]) -> str:
    from aggregator.events import HubPinged

    if not pings:
        return ""
    sent = sum(isinstance(p, HubPinged) for p in pings)
    return f"; WebSub: {counted(sent, 'ping')} sent, {len(pings) - sent} failed"


def _owed_pings(settings: Settings, builder: Builder) -> list[OwedPing]:
    if not builder.catalog.owed_pings():
        return []  # the usual case: the HTTP client is not even imported
    from aggregator.delivery import owed_to

    return owed_to(builder.catalog, settings.hubs)


def _send_pings(
    settings: Settings, owed: list[OwedPing], now: Callable[[], datetime]
) -> list[ChangeEvent]:
    """Send the owed pings (without the lock), then take the lock again briefly to forget
    the ones that are over; if another build holds it now, they stay owed (a second ping
    of the same change is harmless)."""
    if not owed:
        return []
    from aggregator.delivery import send_pings

    events, done = send_pings(owed, now)
    if done:
        try:
            _forget_pings(settings, done)
        except AggregatorError as exc:
            logging.getLogger("aggregator.build").info(
                "the sent WebSub pings stay recorded as owed (%s): the next run sends them "
                "again (harmless)",
                exc,
            )
    return events


def _forget_pings(settings: Settings, done: list[int]) -> None:
    from aggregator.catalog import Catalog
    from aggregator.pipeline import BuildLock

    lock = BuildLock(settings.state)
    lock.acquire(min(settings.lock_wait_seconds, 5.0))
    try:
        catalog = Catalog(settings.catalog_location, node=settings.node, rules=settings.feed_rules)
        try:
            catalog.forget_pings(done)
        finally:
            catalog.close()
    finally:
        lock.release()


def _warn_nothing_matched(settings: Settings) -> None:
    print(
        f"aggregator: warning: no file in {settings.input} matches the patterns "
        f"{', '.join(settings.patterns)}: nothing to build (check `input` and `patterns` "
        "with `aggregator config`)",
        file=sys.stderr,
    )


def check(args: argparse.Namespace) -> int:
    from aggregator.config import check_input
    from aggregator.errors import ArticleError
    from aggregator.reading import SourceFilter, read_article, scan_tree

    settings: Settings = args.loaded.settings
    unreadable: list[tuple[str, str]] = []  # (folder, reason): not checked, not a pass
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
                scan = scan_tree(folder)
                unreadable += [(str(path / rel), why) for rel, why in scan.unreadable.items()]
                targets += [(str(path / rel), path / rel) for rel in sorted(scan.found)]
            else:
                targets.append((str(path), path))
    else:
        check_input(settings)
        scan = scan_tree(source_filter)
        unreadable += [(rel or str(settings.input), why) for rel, why in scan.unreadable.items()]
        targets = [(rel, source_filter.root / rel) for rel in sorted(scan.found)]
    rejected = published = 0
    for where, reason in unreadable:
        print(f"cannot list {where}: {reason}; its article files were not checked")
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
    if not args.quiet:
        print(
            f"{counted(len(targets), 'article file')} checked: {published} published, "
            f"{rejected} rejected"
        )
    if not targets and not unreadable:
        _warn_nothing_matched(settings)
    return EXIT_FAILED if rejected or unreadable else EXIT_OK


def catalog(args: argparse.Namespace) -> int:
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
            if not args.quiet:
                print(f"{path}: no catalog yet (the next build makes one)")
            return EXIT_OK
        problems = check_catalog(path)
        if not problems:
            if not args.quiet:
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
        f"new catalog {path}: {counted(salvage.identities, 'GUID')} and "
        f"{counted(salvage.feeds, 'feed record')} carried over; building everything from the "
        "article files"
    )
    args.strict = args.verbose = False
    return build(args)


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from aggregator.config import load_config
    from aggregator.daemon import run_daemon

    loaded: LoadedConfig = args.loaded
    settings = loaded.settings

    def reload() -> Settings:
        # SIGHUP: the file the daemon started with (not a default found since), the flags.
        return load_config(loaded.file, args.overrides).settings

    on_reload = []
    with ExitStack() as stack:
        observer = None
        if settings.metrics_port is not None:
            from aggregator.observe import MetricsServer, Observer

            observer = Observer(settings)
        # Listening first: a taken port fails at once, before the daemon takes the lock.
        # The servers run in threads of their own; the daemon's SIGTERM handling stops all.
        if args.serve:
            from aggregator.config import check_overlaps
            from aggregator.serve import FeedServer

            check_overlaps(settings)  # before the server hands out anything
            server = stack.enter_context(FeedServer(settings))
            on_reload.append(server.reconfigure)
            if observer is not None:
                observer.watch_server(server.recorder.statuses)
        if observer is not None:
            stack.enter_context(MetricsServer(settings, observer))
        return run_daemon(settings, observer, reload=reload, on_reload=on_reload)


def serve(args: argparse.Namespace) -> int:
    from aggregator.serve import serve

    return serve(args.loaded.settings)


def init(args: argparse.Namespace) -> int:
    import shlex

    from aggregator.cli.starter import create_starter

    folder: Path = args.folder
    result = create_starter(folder)
    if args.quiet:
        return EXIT_OK
    for path in result.written:
        print(f"wrote {path}")
    for path in result.kept:
        print(f"kept {path} (it exists; not overwritten)")
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(folder))} && "
    print("next:")
    print(f"  {go}aggregator build     # articles/ → feeds/ once")
    print("  aggregator run       # then keep feeds/ current as articles/ changes")
    return EXIT_OK


def config(args: argparse.Namespace) -> int:
    loaded: LoadedConfig = args.loaded
    values = effective_values(loaded.settings)
    # A database password is never printed (nor logged): the URL shows `***` instead.
    values = [(k, _redacted(v)) for k, v in values]
    shown = [(key, yaml_value(value), loaded.origin(key)) for key, value in values]
    width = max(len(f"{key}: {value}") for key, value, _ in shown)
    source = str(loaded.file) if loaded.file else "none (built-in defaults)"
    print(f"# config file: {source}; precedence: default < file < flag")
    if loaded.base is not None:
        print(
            f"# relative folders of the file, and the default ones, are taken from "
            f"{loaded.base}; those of flags from the current folder"
        )
    for key, value, origin in shown:
        print(f"{f'{key}: {value}':<{width}}  # {origin}")
    return EXIT_OK


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def health(args: argparse.Namespace) -> int:
    problem = _daemon_problem(args.loaded.settings)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
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


def help(args: argparse.Namespace) -> int:
    from aggregator.cli.program import subcommand_parsers

    parser: argparse.ArgumentParser = args.parser
    if args.topic is None:
        parser.print_help()
    else:
        subcommand_parsers(parser)[args.topic].print_help()
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    from aggregator.cli.inspection import status as show_status

    return show_status(args)


def explain(args: argparse.Namespace) -> int:
    from aggregator.cli.inspection import explain_command

    return explain_command(args)


def node(args: argparse.Namespace) -> int:
    from aggregator.cli.nodes import node_command

    return node_command(args)


def completion(args: argparse.Namespace) -> int:
    from aggregator.cli.completion import completion_script
    from aggregator.cli.program import build_parser, subcommand_parsers

    parser = build_parser()
    print(completion_script(args.shell, parser, subcommand_parsers(parser)), end="")
    return EXIT_OK


def manpage(args: argparse.Namespace) -> int:
    from aggregator.cli.manpage import manpage as roff
    from aggregator.cli.program import build_parser, subcommand_parsers

    parser = build_parser()
    print(roff(parser, subcommand_parsers(parser), version=__version__), end="")
    return EXIT_OK


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
