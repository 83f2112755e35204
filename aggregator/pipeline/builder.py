"""The one place that runs the stages in order.

    changed paths (a full scan, or the watcher's batch)
      | stat, and keep those whose size/mtime differ from the catalog's  (sources)
      | read + parse, in worker processes when there are many          (articles)
      | sync: winners per webUrl, permanent GUIDs, which feeds changed (catalog)
      | plan each changed feed from its newest items                   (plan)
      | render RSS 2.0, Atom 1.0 and JSON Feed 1.1 bytes               (render)
      | write atomically, skipping unchanged bytes                     (publish)
      | record the WebSub pings the new bytes owe                      (→ websub)
      | change events                                                  (→ notify)

A bad file is recorded and reported, never fatal: the other files and feeds go on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aggregator import __version__
from aggregator.catalog import (
    Catalog,
    DueItem,
    FeedRecord,
    FileChange,
    StoredArticle,
    format_date,
    parse_date,
)
from aggregator.config import Settings, check_folders
from aggregator.errors import AggregatorError, ArticleError, CatalogError
from aggregator.events import (
    ArticleReleased,
    BuildFinished,
    ChangeEvent,
    FeedUnchanged,
    FeedWritten,
    WriteFailed,
)
from aggregator.faults import crash_point
from aggregator.membership import FeedRules
from aggregator.model import ALL_FORMATS, Article, FeedKey, FeedKind, RenderedFile
from aggregator.output import (
    FeedListing,
    PlanSettings,
    PublishBatch,
    added_updated_removed,
    feed_name,
    feeds_to_render,
    gzip_bytes,
    plan_feed,
    publish_all,
    remove_stale_temps,
    renderer_digest,
    sidecar_of,
    summaries,
)
from aggregator.reading import FileStat, SourceFilter, scan_sources, stat_source

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from multiprocessing.context import BaseContext

LOGGER = logging.getLogger("aggregator.build")

_INDEXES = ("index.opml", "index.html")
_INDEX_RENDERER = "index_renderer"  # catalog meta: the fingerprint of the indexes' code

# Below these, starting worker processes costs more than it saves.
PARALLEL_FILES = 200
PARALLEL_FEEDS = 24
# Rendered entries the main process keeps between builds (about 20 kB each).
MAIN_PROCESS_ENTRIES = 2048
# Headlines of the all feed shown on index.html.
INDEX_HEADLINES = 10
# Parsed files are synced in batches of this many while the workers read the next ones.
SYNC_BATCH = 1000


class Progress(Protocol):
    """Told how far a stage has got (a progress bar on a terminal, nothing otherwise):
    the files parsed, or the feeds rendered and written."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What one build did."""

    events: tuple[ChangeEvent, ...]
    read: int
    published: int
    rejected: int
    written: int
    unchanged: int
    failed: int
    seconds: float
    # When the next embargoed article falls due or the next item ages out of a windowed
    # feed, after this build's cut-off (None: nothing is scheduled).
    next_due: datetime | None = None


# Lock descriptors held by this process, closed in every forked child (see `_close_in_child`).
_HELD_LOCKS: set[int] = set()


def _close_in_child() -> None:
    """A forked child (a worker) must never hold the build lock: flock belongs to the open
    file description, which a fork shares, so a worker outliving a killed build would keep
    every later build out. Closing the child's copy drops only its reference; unlocking
    would drop the parent's lock too."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_in_child)


def lock_holder(state: Path) -> str:
    """Who holds the lock on `state`, as a user would name it (from the PID it wrote)."""
    try:
        pid = int((state / "lock").read_text(encoding="ascii").split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return "another aggregator process"
    words = [w.decode(errors="replace") for w in command if w]
    if "run" in words:
        return f"the daemon (`aggregator run`, PID {pid})"
    if "build" in words:
        return f"a build (`aggregator build`, PID {pid})"
    return f"another aggregator process (PID {pid})"


class BuildLock:
    """One writer per state folder: an exclusive `flock` on the state folder itself.

    The folder, not a file in it: deleting a lock file would let a second writer in beside
    the first. A folder deleted or replaced as a whole is noticed by `check`, before each
    build. `<state>/lock` only says which process holds the lock, for the message a second
    one gets.
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = state / "lock"
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None

    def acquire(self, timeout: float = 30.0) -> None:
        """Take the lock, waiting up to `timeout` seconds for another process to finish.

        Says at once, on the log, who holds it and that it waits.
        """
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            # Opened close-on-exec (Python's default): a spawned process never inherits it.
            fd = os.open(self.state, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise CatalogError(
                str(self.state), f"cannot use the state folder: {_os_reason(exc)}"
            ) from exc
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise CatalogError(
                        str(self.state), f"cannot lock the state folder: {_os_reason(exc)}"
                    ) from exc
                holder = lock_holder(self.state)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise AggregatorError(_held_message(self.state, holder, timeout)) from exc
                if not said:
                    LOGGER.warning(
                        "%s holds the lock on %s; waiting up to %g s for it",
                        holder,
                        self.state,
                        timeout,
                    )
                    said = True
                time.sleep(0.05)
        status = os.fstat(fd)
        self._fd = fd
        self._inode = (status.st_dev, status.st_ino)
        _HELD_LOCKS.add(fd)
        try:
            # Only informative: a full disk must not stop a build that holds the lock.
            self.path.write_text(f"{os.getpid()}\n", encoding="ascii")
        except OSError as exc:
            LOGGER.debug("cannot record the lock holder in %s: %s", self.path, exc)

    def check(self) -> None:
        """Raise if the state folder was deleted or replaced since the lock was taken (the
        lock would then no longer keep another writer out)."""
        try:
            status = self.state.stat()
        except OSError:
            status = None
        if status is None or (status.st_dev, status.st_ino) != self._inode:
            raise CatalogError(
                str(self.state),
                "the state folder was deleted or replaced while this process held it; "
                "restart this process (it builds everything again from the files)",
            )

    def release(self) -> None:
        """Let another process build."""
        if self._fd is not None:
            _HELD_LOCKS.discard(self._fd)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def lock_held(state: Path) -> bool | None:
    """Whether some process holds the lock on `state` (None: there is no such folder).

    Only probed: a shared, non-blocking attempt released at once, so it never delays a
    build.
    """
    try:
        fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock, if it got one
    return False


def _held_message(state: Path, holder: str, waited: float) -> str:
    if holder.startswith("the daemon"):
        advice = (
            "it keeps the feeds current by itself, so a manual build is not needed; "
            "to build by hand anyway, stop it first"
        )
    else:
        advice = "try again when it has finished, or wait longer with --wait SECONDS"
    return f"{holder} holds the lock on {state} (waited {waited:g} s); {advice}"


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full; free some space and try again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror}; check the folder's permissions (or the mount is read-only)"
    return exc.strerror or str(exc)


_Read = tuple[str, StoredArticle | None, str | None, bool]


def _read_stored(root: str, rel: str, max_bytes: int, rules: FeedRules) -> _Read:
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
        article = read_article(Path(root) / rel, rel, max_bytes=max_bytes)
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
) -> list[tuple[str, tuple[Any, ...] | None, str | None, bool]]:
    """Worker: `_read_stored` for many files. Plain tuples cross the process boundary
    several times faster than pickled dataclasses."""
    results = []
    for rel, stored, error, withdrawn in (_read_stored(root, r, max_bytes, rules) for r in rels):
        results.append((rel, None if stored is None else astuple(stored), error, withdrawn))
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
            {},
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


def _ordered(
    a: datetime | None, b: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """(earlier, later); None is the end of time (no embargo: everything visible)."""
    if a is None:
        return b, None
    if b is None:
        return a, None
    return min(a, b), max(a, b)


def _remove_output(path: Path, why: str) -> bool:
    """Delete an output file the build no longer writes, and its gzip sidecar (first: a
    server must never find the sidecar without its file); True if the file was there.

    A file that cannot be removed is logged, not raised: the build goes on.
    """
    removed = False
    for target in (sidecar_of(path), path):
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            LOGGER.warning("cannot remove %s (%s): %s", target, why, exc)
            continue
        removed = removed or target == path
    return removed


def _released(item: DueItem) -> ArticleReleased:
    return ArticleReleased(item.path, item.title, item.url, item.feeds)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _forkserver() -> BaseContext:
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    # The server imports these once; each worker forks from it ready to work.
    context.set_forkserver_preload(["aggregator.pipeline.builder", "aggregator.output.render"])
    return context


def _context() -> BaseContext:
    """fork while this process has one thread (the CLI): workers start at once, with
    everything imported. forkserver once it has more (the daemon): forking a threaded
    process can copy a lock some other thread holds into the child."""
    import multiprocessing

    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return _forkserver()


def start_worker_server() -> None:
    """Start the forkserver now, for a long-lived threaded process (the daemon).

    Its start and imports (about 0.3 s) are then paid once at start-up, not by the first
    burst of files that needs workers.
    """
    from multiprocessing import forkserver

    _forkserver()
    forkserver.ensure_running()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _worker_start(owner: int) -> None:
    """Worker initializer: die with the build (or daemon) process `owner` that uses it.

    A worker blocked on its task queue never learns that a killed build is gone; it would
    live on holding the caller's output pipes. Two guards:
    - Linux kills the worker (SIGKILL) when its parent dies: that is the build itself for
      forked workers, the forkserver for the daemon's;
    - a thread waits on a pidfd of `owner` and ends the worker when it exits. Forkserver
      workers need it: each holds the server's "clients alive" pipe, so the server outlives
      a killed daemon as long as its workers do, and they it.
    """
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


class _Workers:
    """A process pool started on first use and shut down with the build."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pool: Executor | None = None

    @property
    def pool(self) -> Executor:
        if self._pool is None:
            # Imported on first use: a build with nothing to read never starts workers.
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.count,
                mp_context=_context(),
                initializer=_worker_start,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            # After a normal build nothing is pending; after an abandoned one (the daemon
            # stopping mid-parse) the queued chunks are dropped instead of parsed.
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class Builder:
    """Keeps the catalog open across builds (the daemon runs many; the CLI one)."""

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.settings = settings
        self.now = now
        check_folders(settings)
        input_dir = settings.input.resolve()
        self.filter = SourceFilter(
            input_dir,
            settings.patterns,
            excluded=(settings.output, settings.state),
            follow_external_links=settings.follow_external_links,
        )
        self.output = settings.output
        self.lock = BuildLock(settings.state)
        self.lock.acquire(settings.lock_wait_seconds)
        try:
            self.catalog = Catalog(
                settings.catalog_location, node=settings.node, rules=settings.feed_rules
            )
        except BaseException:
            self.lock.release()
            raise
        # Under the lock, so no other writer's temp files are live.
        removed = remove_stale_temps(self.output)
        if removed:
            LOGGER.info(
                "removed %d temp file(s) left in %s by an interrupted build", removed, self.output
            )
        self.plan_settings = PlanSettings(
            base_url=settings.base_url,
            titles=settings.titles,
            language=settings.language,
            max_items=settings.max_items,
            max_excerpt_chars=settings.max_excerpt_chars,
            custom=settings.feeds,
            formats=settings.formats,
            hubs=settings.hubs,
        )

    def close(self) -> None:
        """Close the catalog and let another process build."""
        self.catalog.close()
        self.lock.release()

    def __enter__(self) -> Builder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the stages ------------------------------------------------------------------

    def build(
        self,
        changed: Iterable[str] | None = None,
        progress: Progress | None = None,
        render_progress: Progress | None = None,
    ) -> BuildReport:
        """Bring the feeds up to date.

        `changed`: paths (relative to the input folder, or absolute) that may have changed;
        None scans the whole input folder. Either way only files whose size or mtime differ
        from what the catalog saw are read, and only feeds whose items changed are rendered.
        `progress` follows the reading, `render_progress` the rendering and writing (apart,
        so the daemon can stop in the first and never in the second).
        """
        started = time.perf_counter()
        self.lock.check()
        full_scan = changed is None
        # The one cut-off of this build: every feed, count and index agrees on what is
        # visible. Nothing else in the build asks the clock.
        now = self.now()
        embargo = self.settings.embargo
        self._apply_definitions()
        to_read, gone = self._find_changes(changed)
        crash_point("after-scan")
        workers = _Workers(self.settings.worker_count)
        try:
            sync = self.catalog.sync(
                self._changes(to_read, gone, workers, progress),
                # An article without a date is listed under its first publication, which
                # is this build's cut-off: a later clock reading would embargo it until
                # the next build.
                lambda: now,
                expected=len(to_read) + len(gone),
                cutoff=now if embargo else None,
            )
            crash_point("after-sync")
            events: list[ChangeEvent] = list(sync.events)
            events.extend(self._advance_cutoff(now, sync.changed_guids))
            synced = time.perf_counter()

            fingerprint = self._settings_fingerprint()
            settings_changed = self.catalog.meta("render_settings") != fingerprint
            dirty = self.catalog.pending_feeds()
            # Every feed that lists something was written once, or is pending since the
            # sync that gave it its first item.
            known = {r.key for r in self.catalog.feed_records()} | dirty
            missing = self._missing_outputs(known) if full_scan else []
            keys = feeds_to_render(dirty, known, missing, settings_changed=settings_changed)
            if settings_changed:
                self._remove_turned_off(known)
            written, unchanged, failed = self._render_and_publish(
                keys,
                sync.changed_guids,
                events,
                workers,
                now,
                progress=render_progress,
            )
        finally:
            workers.close()
        if settings_changed and not failed:
            self.catalog.set_meta("render_settings", fingerprint)

        published = self.catalog.published_count(now if embargo else None)
        next_due = self._next_due(now)
        seconds = time.perf_counter() - started
        LOGGER.debug(
            "build: %d files read and synced in %.3f s, %d feeds rendered in %.3f s",
            len(to_read),
            synced - started,
            len(keys),
            seconds - (synced - started),
        )
        events.append(
            BuildFinished(
                seconds=seconds,
                read=len(to_read),
                published=published,
                rejected=sync.rejected,
                written=written,
                unchanged=unchanged,
            )
        )
        return BuildReport(
            events=tuple(events),
            read=len(to_read),
            published=published,
            rejected=sync.rejected,
            written=written,
            unchanged=unchanged,
            failed=failed,
            seconds=seconds,
            next_due=next_due,
        )

    # --- what is visible when: embargo and time windows ------------------------------

    def _advance_cutoff(self, now: datetime, synced: set[str]) -> list[ArticleReleased]:
        """Mark the feeds whose visible items differ between the last build's cut-off and
        this one's: embargoed items that fell due, items that aged out of a window.

        Stored as pending with the new cut-off in one transaction, so a crash cannot lose a
        release. Returns a `released` event for each item that fell due (not for those
        this build's sync already reported).
        """
        catalog = self.catalog
        previous_text = catalog.meta("cutoff")
        previous = parse_date(previous_text) if previous_text else None
        embargo_before = catalog.meta("embargo") != "off"
        # Before the first build of this version every item was listed, whatever its date.
        visible_before = previous if embargo_before and previous is not None else None
        visible_now = now if self.settings.embargo else None
        dirty: set[FeedKey] = set()
        released: list[ArticleReleased] = []
        if visible_before != visible_now:
            low, high = _ordered(visible_before, visible_now)
            for item in catalog.falling_due(low, high):
                dirty.update(item.feeds)
                if high == visible_now and item.guid not in synced:
                    released.append(_released(item))
        for key, length in self.plan_settings.windows():
            if previous is None or catalog.lists_between(
                key, min(previous, now) - length, max(previous, now) - length
            ):
                dirty.add(key)
        with catalog.transaction():
            catalog.add_pending(dirty)
            catalog.set_meta("cutoff", format_date(now))
            catalog.set_meta("embargo", "on" if self.settings.embargo else "off")
        return released

    def _next_due(self, now: datetime) -> datetime | None:
        """When a feed next changes by the clock alone: the next embargoed date, or the
        next item to age out of a windowed feed."""
        candidates = []
        if self.settings.embargo:
            candidates.append(self.catalog.next_due(now))
        for key, length in self.plan_settings.windows():
            oldest = self.catalog.oldest_after(key, now - length)
            if oldest is not None:
                candidates.append(oldest + length)
        return min((c for c in candidates if c is not None), default=None)

    # --- the config's feeds -----------------------------------------------------------

    def _apply_definitions(self) -> list[FeedKey]:
        """Bring the catalog in line with the feeds the config defines; returns the feeds
        removed (their files are deleted).

        A fingerprint of each definition is stored: when one changes (or a feed comes or
        goes, or a built-in group is switched), every stored article's feeds are decided
        again from the catalog (no file is read) and only the feeds that gained or lost
        items, or whose definition changed, are rendered.
        """
        catalog = self.catalog
        rules = self.settings.feed_rules
        current = {
            "builtin": f"{rules.all},{rules.topics},{rules.providers}",
            **{str(d.key): d.membership_fingerprint() for d in self.settings.feeds},
        }
        stored_text = catalog.meta("feed_definitions")
        stored = json.loads(stored_text) if stored_text else {"builtin": "True,True,True"}
        if stored == current:
            return []
        catalog.reassign_feeds(rules)
        changed = {
            FeedKey.parse(name)
            for name, fingerprint in current.items()
            if name != "builtin" and stored.get(name) != fingerprint
        }
        switched_off = {
            kind
            for kind, on in (
                (FeedKind.ALL, rules.all),
                (FeedKind.TOPIC, rules.topics),
                (FeedKind.PROVIDER, rules.providers),
            )
            if not on
        }
        removed = [
            record.key
            for record in catalog.feed_records()
            if record.key.kind in switched_off
            or (record.key.kind is FeedKind.CUSTOM and str(record.key) not in current)
        ]
        removed += [
            key
            for key in catalog.pending_feeds()
            if key.kind in switched_off or (key.kind is FeedKind.CUSTOM and str(key) not in current)
        ]
        catalog.forget_feeds(removed)
        for key in removed:
            # A feed no longer defined is deleted, not left frozen: a reader polling it
            # gets a 404 instead of a feed that silently stopped.
            for fmt in ALL_FORMATS:
                _remove_output(self.output / key.path(fmt), "feed no longer defined")
        # A format dropped from a definition: its file goes too.
        self._remove_turned_off(definition.key for definition in self.settings.feeds)
        with catalog.transaction():
            catalog.add_pending(changed)
            catalog.set_meta("feed_definitions", json.dumps(current, sort_keys=True))
        if removed:
            LOGGER.info("feeds no longer defined, files deleted: %s", ", ".join(map(str, removed)))
        return removed

    def _paths_of(self, key: FeedKey) -> tuple[str, ...]:
        """The files a feed is written to (a feed of the config may choose its formats)."""
        return tuple(key.path(fmt) for fmt in self.plan_settings.formats_of(key))

    def _find_changes(self, changed: Iterable[str] | None) -> tuple[dict[str, FileStat], set[str]]:
        """(files to read with their stat, files gone) — by size and mtime against the catalog."""
        if changed is None:
            on_disk = scan_sources(self.filter)
            known = self.catalog.file_signatures()
            changed_paths = sorted(p for p, sig in on_disk.items() if known.get(p) != sig)
            to_read = {p: FileStat.parse(on_disk[p]) for p in changed_paths}
            return to_read, known.keys() - on_disk.keys()
        to_read, gone = {}, set()
        for path in sorted(set(changed)):
            rel = self.filter.relative(path)
            if rel is None or not self.filter.matches(rel):
                continue
            stat = stat_source(self.filter, rel)
            known_stat = self.catalog.file_stat(rel)
            if stat is None:
                if known_stat is not None:
                    gone.add(rel)
            elif stat != known_stat:
                to_read[rel] = stat
        return to_read, gone

    def _changes(
        self,
        to_read: dict[str, FileStat],
        gone: set[str],
        workers: _Workers,
        progress: Progress | None,
    ) -> Iterator[list[FileChange]]:
        """Batches of file changes, yielded as the files are parsed.

        The stat recorded is the one taken before reading, so a file changed meanwhile
        has a newer mtime than recorded and is read again next time.
        """
        if progress is not None:
            progress.start(len(to_read))
        # Deletions ride with the first files read: a move (old path gone, new path
        # read) that lands in one batch is one update that keeps its GUID.
        batch = [FileChange(path, None) for path in sorted(gone)]
        for rel, stored, error, withdrawn in self._parse(list(to_read), workers):
            stat: FileStat | None = to_read[rel]
            if error is not None and stat_source(self.filter, rel) is None:
                stat = None  # vanished while being read: it is a deletion
            batch.append(FileChange(rel, stat, stored, error, withdrawn=withdrawn))
            if len(batch) >= SYNC_BATCH:
                if progress is not None:
                    progress.advance(len(batch))
                yield batch
                crash_point("after-first-sync-batch")
                batch = []
        if batch:
            if progress is not None:
                progress.advance(len(batch))
            yield batch
        if progress is not None:
            progress.finish()

    def _parse(self, paths: list[str], workers: _Workers) -> Iterator[_Read]:
        """(path, stored article, error, withdrawn) for each file, in worker processes if many."""
        if not paths:
            return  # nothing to read: not even the parser is imported
        root = str(self.filter.root)
        max_bytes = self.settings.max_file_bytes
        rules = self.settings.feed_rules
        if len(paths) < PARALLEL_FILES or workers.count <= 1:
            for rel in paths:
                yield _read_stored(root, rel, max_bytes, rules)
            return
        size = max(16, min(256, len(paths) // (workers.count * 8)))
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        results = workers.pool.map(
            _read_chunk,
            [root] * len(chunks),
            chunks,
            [max_bytes] * len(chunks),
            [rules] * len(chunks),
        )
        for chunk in results:
            for rel, fields, error, withdrawn in chunk:
                yield rel, None if fields is None else StoredArticle(*fields), error, withdrawn

    def _settings_fingerprint(self) -> str:
        shaping = asdict(self.plan_settings)
        del shaping["custom"]  # each definition has its own fingerprint (`_apply_definitions`)
        data = json.dumps([__version__, shaping], sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()

    def _missing_outputs(self, known: Iterable[FeedKey]) -> list[FeedKey]:
        return [
            key
            for key in known
            if not all((self.output / path).is_file() for path in self._paths_of(key))
        ]

    def _remove_turned_off(self, known: Iterable[FeedKey]) -> None:
        """Delete the files of formats the settings no longer ask for.

        A file left behind would be served for ever and never updated: its readers would
        see a feed that silently stopped. Gone, they get a 404 and can move to another
        format (index.html lists only those written). Only the paths the build itself
        writes are touched.
        """
        for key in known:
            kept = self.plan_settings.formats_of(key)
            for fmt in ALL_FORMATS:
                if fmt in kept:
                    continue
                target = self.output / key.path(fmt)
                why = f"the {fmt.value} format is turned off"
                if _remove_output(target, why):
                    LOGGER.info("removed %s: %s", target, why)

    def _render(
        self, keys: list[FeedKey], workers: _Workers, now: datetime
    ) -> Iterator[RenderedFeed]:
        """Rendered feeds, as they are ready (from worker processes when many)."""
        if not keys:
            return  # nothing to render: feedgen is not even imported
        embargo = self.settings.embargo
        if len(keys) < PARALLEL_FEEDS or workers.count <= 1:
            from aggregator.output import limit_cache

            yield from render_feeds(
                self.catalog, keys, self.plan_settings, {}, now, embargo=embargo
            )
            # This process may live for weeks (the daemon): keep its share of the entry
            # cache small; workers, which die with the build, keep theirs whole.
            limit_cache(MAIN_PROCESS_ENTRIES)
            return
        # Small chunks balance the load: a few feeds (all, the big topics) are far larger.
        chunks = [[str(k) for k in keys[i : i + 8]] for i in range(0, len(keys), 8)]
        job = _RenderJob(
            self.catalog.location,
            self.settings.node,
            self.plan_settings,
            format_date(now),
            embargo,
            self.settings.gzip_sidecars,
        )
        results = workers.pool.map(_render_chunk, [job] * len(chunks), chunks)
        for chunk in results:
            for wire in chunk:
                yield _from_wire(wire)

    def _render_and_publish(
        self,
        keys: list[FeedKey],
        changed_guids: set[str],
        events: list[ChangeEvent],
        workers: _Workers,
        now: datetime,
        *,
        progress: Progress | None = None,
    ) -> tuple[int, int, int]:
        """Render the chosen feeds and the indexes; (written, unchanged, failed) feeds."""
        batch = PublishBatch(self.output, gzip=self.settings.gzip_sidecars)
        # What commit's results are matched with; the bytes (and sidecars) are not kept: once
        # staged they are in the temp files, and holding every feed's would raise peak memory.
        rendered: list[tuple[FeedRecord, tuple[str, ...], tuple[str, ...]]] = []
        if progress is not None:
            progress.start(len(keys))
        try:
            # Staged as they arrive, so writing overlaps the workers' rendering.
            for made in self._render(keys, workers, now):
                paths = self._paths_of(made.record.key)
                files = [f for f in made.files if f.path in paths]
                for file in files:
                    batch.stage(file)
                rendered.append((made.record, made.previous_guids, tuple(f.path for f in files)))
                if progress is not None:
                    progress.advance(1)
        except BaseException:
            batch.abandon()
            if progress is not None:
                progress.finish()
            raise
        # The pings are owed before the files are renamed: a crash after the rename but before
        # the feeds are recorded would re-render the same bytes next time, find nothing to
        # write and owe nothing. A ping for a rename that then failed only makes a hub fetch
        # the old bytes again.
        if self.settings.hubs:
            topics = [self.settings.base_url + path for path in batch.staged_paths]
            self.catalog.owe_pings(
                [(hub, topic) for topic in topics for hub in self.settings.hubs], self.now()
            )
        results = {r.path: r for r in batch.commit()}
        if progress is not None:
            progress.finish()
        written = unchanged = 0
        done: list[FeedRecord] = []
        failed: list[FeedKey] = []
        for record, previous_guids, written_to in rendered:
            pair = [results[path] for path in written_to]
            errors = [r.error for r in pair if r.error is not None]
            if errors:
                failed.append(record.key)
                events.extend(WriteFailed(error.path, error.reason) for error in errors)
                continue
            done.append(record)
            if any(r.written for r in pair):
                written += 1
                added, updated, removed = added_updated_removed(
                    previous_guids, record.guids, changed_guids
                )
                events.append(FeedWritten(record.key, added, updated, removed, len(record.guids)))
            else:
                unchanged += 1
                events.append(FeedUnchanged(record.key))
        # Feeds written mark the indexes pending in the same transaction; they stay pending
        # until both are written, so a crash between the two cannot leave one stale.
        self.catalog.finish_feeds(done, failed)
        crash_point("after-feeds-recorded")
        stale = (
            self.catalog.indexes_pending()
            or not all((self.output / name).is_file() for name in _INDEXES)
            or self.catalog.meta(_INDEX_RENDERER) != renderer_digest()
        )
        if stale and self._publish_indexes(events, now):
            self.catalog.finish_indexes()
        return written, unchanged, len(failed)

    def _publish_indexes(self, events: list[ChangeEvent], now: datetime) -> bool:
        """Write index.opml and index.html; whether both are now current."""
        from aggregator.output import render_indexes

        # Counted at this build's cut-off, as the feeds were: embargoed and aged-out
        # items are in no count.
        windows = {key: now - length for key, length in self.plan_settings.windows()}
        counts = self.catalog.membership_counts(
            now if self.settings.embargo else None, windows
        )
        feeds = [
            FeedListing(r.key, r.name, len(r.guids), counts.get(r.key, 0), r.updated)
            for r in self.catalog.feed_records()
        ]
        base = self.settings.base_url
        opml, html = render_indexes(
            summaries(feeds, self.plan_settings),
            title=self.settings.titles.site,
            home_url=base + "index.html",
            opml_url=base + "index.opml",
            headlines=self.catalog.newest(
                FeedKey.everything(),
                min(INDEX_HEADLINES, self.settings.max_items),
                until=now if self.settings.embargo else None,
            ),
        )
        ok = True
        for result in publish_all(self.output, [opml, html], gzip=self.settings.gzip_sidecars):
            if result.error is not None:
                ok = False
                events.append(WriteFailed(result.error.path, result.error.reason))
        if ok:
            self.catalog.set_meta(_INDEX_RENDERER, renderer_digest())
        return ok
