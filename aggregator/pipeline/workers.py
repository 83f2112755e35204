"""Everything that runs in another process: the worker pool, how its processes start (fork,
or forkserver in a threaded process) and die with their owner (prctl, pidfd), the per-file
failure boundary `read_stored`, and the read and render chunks with the plain tuples they
send back.

Whether a stage is worth the pool is decided here too (`PARALLEL_FILES`, `PARALLEL_FEEDS`):
below those counts `Workers` does the work in this process, and never starts the pool.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.catalog import (
    Catalog,
    FeedRecord,
    StoredArticle,
    StoredFields,
    format_date,
    parse_date,
)
from aggregator.errors import ArticleError
from aggregator.membership import FeedRules
from aggregator.model import Article, FeedKey, FeedKind, RenderedFile
from aggregator.output import PlanSettings, feed_name, gzip_bytes, plan_feed

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from multiprocessing.context import BaseContext

# The build's logger: what its workers log has always been the build's.
LOGGER = logging.getLogger("aggregator.build")

# Below these, starting worker processes costs more than it saves.
PARALLEL_FILES = 200
PARALLEL_FEEDS = 24
# Rendered entries the main process keeps between builds (about 20 kB each).
MAIN_PROCESS_ENTRIES = 2048
# What the forkserver imports once, so each worker forks from it ready to work: the module of
# the chunk functions, and the renderer they import lazily. A name that is no module fails
# silently, as a slower start (tests/test_build.py imports each).
FORKSERVER_PRELOAD = ("aggregator.pipeline.workers", "aggregator.output.render")


_Read = tuple[str, StoredArticle | None, str | None, bool]


def read_stored(root: str, rel: str, max_bytes: int, rules: FeedRules) -> _Read:
    """One file → (path, its stored form, error, withdrawn): the boundary of one file's work.

    Whatever goes wrong while the file is read, parsed, converted to an `Article` or put in
    the form the catalog stores, comes back as a plain reason (the event that reports it
    names the file), never as an exception: one file is the unit of failure. Both results
    can always be stored (valid UTF-8: a lone surrogate from a YAML escape makes the stored
    form fail here, not the catalog's transaction). `withdrawn`: the rejected file says
    it is not published (see `ArticleError.withdrawn`). In a worker for big builds, so the
    main process only inserts what it gets.
    """
    from aggregator.reading import read_article

    try:
        article = read_article(os.path.join(root, rel), rel, max_bytes=max_bytes)
        # Encodes the JSON as UTF-8 (for its fingerprint): what SQLite cannot store fails here.
        return rel, StoredArticle.of(article, rules=rules), None, False
    except ArticleError as exc:
        # The reason alone: the event that reports it names the file already.
        return rel, None, storable_text(exc.detail), exc.withdrawn
    except Exception as exc:  # anything else, at this one boundary (not KeyboardInterrupt)
        LOGGER.debug("unexpected error storing %r", rel, exc_info=True)
        reason = storable_text(f"{type(exc).__name__}: {exc}")[:200]
        return rel, None, f"cannot be stored as an article ({reason}); check it", False


def storable_text(text: str) -> str:
    """`text` as valid UTF-8: lone surrogates (undecodable file names, YAML escapes) are
    written as `\\udcff`, so that SQLite, JSON and log lines can all carry it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _read_chunk(
    root: str, rels: list[str], max_bytes: int, rules: FeedRules
) -> list[tuple[str, StoredFields | None, str | None, bool]]:
    """Worker: `read_stored` for many files. Plain tuples cross the process boundary
    several times faster than pickled dataclasses."""
    results = []
    for rel, stored, error, withdrawn in (read_stored(root, r, max_bytes, rules) for r in rels):
        results.append((rel, None if stored is None else stored.fields(), error, withdrawn))
    return results


@dataclass(frozen=True, slots=True)
class RenderedFeed:
    """One feed rendered (in this process or a worker), not yet published."""

    record: FeedRecord  # what the catalog remembers once the files are written
    previous_guids: tuple[str, ...]
    files: tuple[RenderedFile, ...]  # one per format, in the settings' order


def render_feeds(
    catalog: Catalog,
    keys: Sequence[FeedKey],
    settings: PlanSettings,
    cache: dict[str, Article],
    now: datetime,
    *,
    embargo: bool = True,
) -> list[RenderedFeed]:
    """Plan and render feeds from the catalog's items visible at `now` (the build's
    cut-off: no later item when `embargo`, and none older than a feed's window)."""
    # Imported here, not at the top: feedgen and lxml take longer to import than a
    # build with nothing to render takes to run.
    from aggregator.output import render_feed

    rendered = []
    for key in keys:
        previous = catalog.feed_record(key)
        items = catalog.newest(
            key,
            settings.limit(key),
            cache,
            until=now if embargo else None,
            since=settings.window_start(key, now),
        )
        if not items and previous is None and key.kind is not FeedKind.CUSTOM:
            # Never listed anything: no feed to keep valid. A feed of the config exists
            # from its definition on, so readers can subscribe before its first item.
            continue
        previous_name = previous.name if previous else None
        plan = plan_feed(
            key,
            items,
            settings,
            previous_name=previous_name,
            previous_updated=previous.updated if previous else None,
        )
        rendered.append(
            RenderedFeed(
                record=FeedRecord(
                    key,
                    feed_name(key, items, previous_name),
                    plan.updated,
                    tuple(item.guid for item in items),
                ),
                previous_guids=previous.guids if previous else (),
                files=render_feed(plan),
            )
        )
    return rendered


_Wire = tuple[
    str, str, str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, bytes, bytes | None], ...]
]


@dataclass(frozen=True, slots=True)
class _RenderJob:
    """What every render worker of one build needs besides its feeds."""

    location: str  # the catalog to open
    node: str  # this node's name in it
    settings: PlanSettings
    now: str  # the build's cut-off
    embargo: bool
    gzip: bool  # compress the sidecars too


# The articles this worker decoded for the build `_ARTICLES_OF` (its job), by path: the
# chunks of one build read the same committed catalog, and the same article object in every
# feed lets the shared entries match it at once (an equal copy is compared field by field).
_ARTICLES: dict[str, Article] = {}
_ARTICLES_OF: list[_RenderJob] = []


def _articles_for(job: _RenderJob) -> dict[str, Article]:
    if [job] != _ARTICLES_OF:
        _ARTICLES.clear()
        _ARTICLES_OF[:] = [job]
    return _ARTICLES


def _render_chunk(job: _RenderJob, keys: list[str]) -> list[_Wire]:
    """Worker: render some feeds from a read-only view of the committed catalog.

    With `job.gzip`, each file's sidecar is compressed here too: the workers compress in
    parallel what the main process would otherwise compress alone, one file after another.
    """
    view = Catalog(job.location, readonly=True, node=job.node)
    try:
        rendered = render_feeds(
            view,
            [FeedKey.parse(k) for k in keys],
            job.settings,
            _articles_for(job),
            parse_date(job.now),
            embargo=job.embargo,
        )
    finally:
        view.close()
    # Plain tuples: cheap to send back across the process boundary.
    return [
        (
            str(r.record.key),
            r.record.name,
            format_date(r.record.updated),
            r.record.guids,
            r.previous_guids,
            tuple((f.path, f.data, gzip_bytes(f.data) if job.gzip else None) for f in r.files),
        )
        for r in rendered
    ]


def _from_wire(wire: _Wire) -> RenderedFeed:
    key, name, updated, guids, previous, files = wire
    return RenderedFeed(
        FeedRecord(FeedKey.parse(key), name, parse_date(updated), guids),
        previous,
        tuple(RenderedFile(path, data, gzipped) for path, data, gzipped in files),
    )


def _import_preload() -> None:
    """Import what the forkserver preloads, in this process, before it forks workers.

    Forked workers then start with the renderer (feedgen, lxml: ~45 ms of CPU) imported
    once here instead of once in each of them. A build that needs workers to read nearly
    always renders too, and this process imports the renderer for the feeds it renders
    itself anyway.
    """
    import importlib

    for name in FORKSERVER_PRELOAD:
        importlib.import_module(name)


def _forkserver() -> BaseContext:
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return context


def _context() -> BaseContext:
    """fork while this process has one thread (the CLI): workers start at once, with
    everything imported. forkserver once it has more (the daemon): forking a threaded
    process can copy a lock some other thread holds into the child."""
    import multiprocessing

    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return _forkserver()


# The signals a terminal (Ctrl-C: SIGINT) or a service manager (SIGTERM to every process of
# the unit) sends to the whole group: the daemon's to handle, never its helpers'.
_GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_worker_server() -> None:
    """Start the forkserver now, for a long-lived threaded process (the daemon).

    Its start and imports (about 0.3 s) are then paid once at start-up, not by the first
    burst of files that needs workers. It starts with SIGINT and SIGTERM ignored (an ignored
    signal stays ignored across fork and exec; a blocked one does not: the spawn resets the
    mask): a stop signal sent to the whole process group must reach the daemon only; the
    forkserver killed by one would take the build's workers with it (a `BrokenProcessPool`).
    It ends when the daemon does (its "alive" pipe closes).

    Here the two are blocked while ignored, so one sent meanwhile is not lost: still
    pending when the daemon's handlers are back, it reaches them.
    """
    from multiprocessing import forkserver

    _forkserver()
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
    try:
        pending = signal.sigpending() & _GROUP_SIGNALS  # setting SIG_IGN drops those
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _GROUP_SIGNALS}
        try:
            forkserver.ensure_running()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        for sig in pending:
            os.kill(os.getpid(), sig)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _worker_start(owner: int, log_formats: list[logging.Formatter | None], log_level: int) -> None:
    """Worker initializer: log as the owner does, leave the group's stop signals to the
    owner, and die with the build (or daemon) process `owner` that uses it.

    Logging: as the owner's handlers (stderr, its text or JSON format), so nothing a worker
    logs is a raw line in a JSON log. Signals: see `_owner_signals_only`.

    A worker blocked on its task queue never learns that a killed build is gone; it would
    live on holding the caller's output pipes. Two guards:
    - Linux kills the worker (SIGKILL) when its parent dies: that is the build itself for
      forked workers, the forkserver for the daemon's;
    - a thread waits on a pidfd of `owner` and ends the worker when it exits. Forkserver
      workers need it: each holds the server's "clients alive" pipe, so the server outlives
      a killed daemon as long as its workers do, and they it.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for formatter in log_formats:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(log_level)
    logging.captureWarnings(True)
    _owner_signals_only(owner)
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        owner_fd = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(1)  # gone before we started
    except (AttributeError, OSError):
        return  # no pidfd (not Linux 5.3+): the parent-death signal is all there is

    def exit_with_owner() -> None:
        import select

        select.select([owner_fd], [], [])
        os._exit(1)

    threading.Thread(target=exit_with_owner, name="aggregator-owner", daemon=True).start()


def _owner_signals_only(owner: int) -> None:
    """Ignore SIGINT, and every SIGTERM but the owner's.

    A SIGINT or SIGTERM sent to the process group (Ctrl-C, `kill -- -PGID`, a service
    manager signalling every process) is for the owner, which stops the build and the pool
    in order; a worker killed by it would print a traceback and break the pool. But the pool
    itself ends its workers with SIGTERM when it breaks (a worker killed by the OOM killer):
    that one, from the owner, must still work, or the pool would wait for them for ever. So
    SIGTERM is blocked and a thread takes each one (`sigwaitinfo`), exiting on the owner's.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Blocked, never ignored (the forkserver's SIG_IGN would drop the owner's too).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def take_sigterm() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == owner:
                os._exit(1)

    threading.Thread(target=take_sigterm, name="aggregator-sigterm", daemon=True).start()


def _log_formats() -> list[logging.Formatter | None]:
    """The formatters of the owner's stderr handlers, for its workers (a handler has a lock
    and cannot be pickled; the others, such as pytest's capture, stay in the owner)."""
    return [
        handler.formatter
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
    ]


def leave_workers_behind() -> None:
    """Ready this process to leave with `os._exit` while a build's workers still run (the
    daemon's abandoned stop): unlink the pools' semaphores now, as multiprocessing's exit
    handler would have. Otherwise the resource tracker, finding them at its own exit, warns
    on the shared stderr: a bare line in a JSON log. (The workers die with their owner.)"""
    import multiprocessing.util

    # The semaphores' finalizers have priority 0; the exit handler's joins, which would
    # wait for the busy workers, are not run.
    multiprocessing.util._run_finalizers(0)  # type: ignore[attr-defined]  # not in typeshed


class Workers:
    """A process pool started on first use and shut down with the build."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pool: Executor | None = None

    @property
    def pool(self) -> Executor:
        if self._pool is None:
            # Imported on first use: a build with nothing to read never starts workers.
            from concurrent.futures import ProcessPoolExecutor

            context = _context()
            if context.get_start_method() == "fork":
                _import_preload()
            self._pool = ProcessPoolExecutor(
                max_workers=self.count,
                mp_context=context,
                initializer=_worker_start,
                initargs=(os.getpid(), _log_formats(), logging.getLogger().level),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            # After a normal build nothing is pending; after an abandoned one (the daemon
            # stopping mid-parse) the queued chunks are dropped instead of parsed.
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def read(
        self, root: str, paths: list[str], max_bytes: int, rules: FeedRules
    ) -> Iterator[_Read]:
        """(path, stored article, error, withdrawn) for each file, in worker processes if many."""
        if not paths:
            return  # nothing to read: not even the parser is imported
        if len(paths) < PARALLEL_FILES or self.count <= 1:
            for rel in paths:
                yield read_stored(root, rel, max_bytes, rules)
            return
        size = max(16, min(256, len(paths) // (self.count * 8)))
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        results = self.pool.map(
            _read_chunk,
            [root] * len(chunks),
            chunks,
            [max_bytes] * len(chunks),
            [rules] * len(chunks),
        )
        for chunk in results:
            for rel, fields, error, withdrawn in chunk:
                yield rel, None if fields is None else StoredArticle(*fields), error, withdrawn

    def render(
        self,
        catalog: Catalog,
        keys: list[FeedKey],
        settings: PlanSettings,
        now: datetime,
        *,
        node: str,
        embargo: bool,
        gzip: bool,
    ) -> Iterator[RenderedFeed]:
        """Rendered feeds, as they are ready (from worker processes when many); `node`: this
        node's name in the catalog, for the workers' read-only views of it."""
        if not keys:
            return  # nothing to render: feedgen is not even imported
        if len(keys) < PARALLEL_FEEDS or self.count <= 1:
            from aggregator.output import limit_cache

            yield from render_feeds(catalog, keys, settings, {}, now, embargo=embargo)
            # This process may live for weeks (the daemon): keep its share of the entry
            # cache small; workers, which die with the build, keep theirs whole.
            limit_cache(MAIN_PROCESS_ENTRIES)
            return
        # Small chunks balance the load: a few feeds (all, the big topics) are far larger.
        chunks = [[str(k) for k in keys[i : i + 8]] for i in range(0, len(keys), 8)]
        job = _RenderJob(catalog.location, node, settings, format_date(now), embargo, gzip)
        results = self.pool.map(_render_chunk, [job] * len(chunks), chunks)
        for chunk in results:
            for wire in chunk:
                yield _from_wire(wire)
