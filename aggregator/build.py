"""The one place that runs the stages in order.

    changed paths (a full scan, or the watcher's batch)
      | stat, and keep those whose size/mtime differ from the catalog's  (sources)
      | read + parse, in worker processes when there are many          (articles)
      | sync: winners per webUrl, permanent GUIDs, which feeds changed (catalog)
      | plan each changed feed from its newest items                   (plan)
      | render RSS 2.0 and Atom 1.0 bytes                              (render)
      | write atomically, skipping unchanged bytes                     (publish)
      | change events                                                  (→ notify)

A bad file is recorded and reported, never fatal: the other files and feeds go on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from aggregator import __version__
from aggregator.articles import read_article
from aggregator.catalog import Catalog, FeedRecord, FileChange
from aggregator.config import Settings
from aggregator.errors import AggregatorError, ArticleError, ConfigError
from aggregator.model import (
    Article,
    BuildFinished,
    ChangeEvent,
    FeedKey,
    FeedUnchanged,
    FeedWritten,
    RenderedFile,
    WriteFailed,
)
from aggregator.plan import (
    PlanSettings,
    added_updated_removed,
    feed_name,
    feeds_to_render,
    plan_feed,
    summaries,
)
from aggregator.publish import publish_all
from aggregator.sources import SourceFilter, scan_sources, stat_source

_INDEXES = ("index.opml", "index.html")

# Below this many files, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 200


class Progress(Protocol):
    """Told how far parsing has got (a progress bar on a terminal, nothing otherwise)."""

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


class BuildLock:
    """One writer per state folder: an exclusive `flock` on `<state>/lock`."""

    def __init__(self, state: Path) -> None:
        self.path = state / "lock"
        self._handle: IO[str] | None = None

    def acquire(self, timeout: float = 30.0) -> None:
        """Take the lock, waiting up to `timeout` seconds for another process to finish."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+")
        except OSError as exc:
            raise ConfigError(
                "state", [f"state: cannot use the folder {self.path.parent}: {exc.strerror}"]
            ) from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    handle.close()
                    raise AggregatorError(
                        f"another aggregator process holds {self.path}; stop it, or wait for "
                        "its build to finish"
                    ) from exc
                time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Let another process build."""
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _read_one(root: str, rel: str, max_bytes: int) -> tuple[str, Article | None, str | None]:
    """Worker: one file → (path, article, error). Top level so worker processes can run it."""
    try:
        return rel, read_article(Path(root) / rel, rel, max_bytes=max_bytes), None
    except ArticleError as exc:
        return rel, None, str(exc)


def _read_chunk(
    root: str, rels: list[str], max_bytes: int
) -> list[tuple[str, Article | None, str | None]]:
    return [_read_one(root, rel, max_bytes) for rel in rels]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Builder:
    """Keeps the catalog open across builds (the daemon runs many; the CLI one)."""

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.settings = settings
        self.now = now
        input_dir = settings.input.resolve()
        if not input_dir.is_dir():
            raise ConfigError(
                "input", [f"input: the folder {settings.input} does not exist or is not a folder"]
            )
        if settings.output.resolve() == input_dir:
            raise ConfigError("output", ["output: must not be the input folder itself"])
        self.filter = SourceFilter(
            input_dir, settings.patterns, excluded=(settings.output, settings.state)
        )
        self.output = settings.output
        self.lock = BuildLock(settings.state)
        self.lock.acquire()
        try:
            self.catalog = Catalog(settings.catalog_path)
        except BaseException:
            self.lock.release()
            raise
        self.plan_settings = PlanSettings(
            base_url=settings.base_url,
            titles=settings.titles,
            language=settings.language,
            max_items=settings.max_items,
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
        self, changed: Iterable[str] | None = None, progress: Progress | None = None
    ) -> BuildReport:
        """Bring the feeds up to date.

        `changed`: paths (relative to the input folder, or absolute) that may have changed;
        None scans the whole input folder. Either way only files whose size or mtime differ
        from what the catalog saw are read, and only feeds whose items changed are rendered.
        """
        started = time.perf_counter()
        full_scan = changed is None
        to_read, gone = self._find_changes(changed)
        changes = list(self._read(to_read, progress))
        changes += [FileChange(path, None) for path in sorted(gone)]
        sync = self.catalog.sync(changes, self.now)
        events: list[ChangeEvent] = list(sync.events)

        fingerprint = self._settings_fingerprint()
        settings_changed = self.catalog.meta("render_settings") != fingerprint
        known = {r.key for r in self.catalog.feed_records()} | self.catalog.listed_feeds()
        missing = self._missing_outputs(known) if full_scan else []
        dirty = self.catalog.pending_feeds()
        keys = feeds_to_render(dirty, known, missing, settings_changed=settings_changed)

        written, unchanged, failed = self._render_and_publish(
            keys, sync.articles, sync.changed_guids, events
        )
        if settings_changed and not failed:
            self.catalog.set_meta("render_settings", fingerprint)

        _, _, published = self.catalog.counts()
        seconds = time.perf_counter() - started
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
        )

    def _find_changes(self, changed: Iterable[str] | None) -> tuple[list[str], set[str]]:
        """(files to read, files gone) — by size and mtime against the catalog."""
        if changed is None:
            on_disk = scan_sources(self.filter)
            known = self.catalog.file_stats()
            to_read = sorted(p for p, st in on_disk.items() if known.get(p) != st)
            return to_read, set(known) - set(on_disk)
        to_read, gone = [], set()
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
                to_read.append(rel)
        return to_read, gone

    def _read(self, paths: list[str], progress: Progress | None) -> Iterator[FileChange]:
        """Parse the files; a file that vanished meanwhile counts as deleted."""
        if progress is not None:
            progress.start(len(paths))
        root = str(self.filter.root)
        max_bytes = self.settings.max_file_bytes
        for rel, article, error in self._parse(root, paths, max_bytes, progress):
            stat = stat_source(self.filter, rel)
            if stat is None:
                yield FileChange(rel, None)
            else:
                yield FileChange(rel, stat, article, error)
        if progress is not None:
            progress.finish()

    def _parse(
        self, root: str, paths: list[str], max_bytes: int, progress: Progress | None
    ) -> Iterator[tuple[str, Article | None, str | None]]:
        workers = min(self.settings.worker_count, max(1, len(paths) // PARALLEL_THRESHOLD))
        if workers <= 1:
            for rel in paths:
                yield _read_one(root, rel, max_bytes)
                if progress is not None:
                    progress.advance(1)
            return
        # forkserver, not fork: the daemon has threads, and forking a threaded process
        # can copy a held lock into the child.
        context = multiprocessing.get_context("forkserver")
        size = max(16, min(256, len(paths) // (workers * 8)))
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for results in pool.map(
                _read_chunk, [root] * len(chunks), chunks, [max_bytes] * len(chunks)
            ):
                yield from results
                if progress is not None:
                    progress.advance(len(results))

    def _settings_fingerprint(self) -> str:
        data = json.dumps([__version__, asdict(self.plan_settings)], sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()

    def _missing_outputs(self, known: Iterable[FeedKey]) -> list[FeedKey]:
        return [
            key
            for key in known
            if not (self.output / key.rss_path).is_file()
            or not (self.output / key.atom_path).is_file()
        ]

    def _render_and_publish(
        self,
        keys: list[FeedKey],
        parsed: dict[str, Article],
        changed_guids: set[str],
        events: list[ChangeEvent],
    ) -> tuple[int, int, int]:
        """Render the chosen feeds and the indexes; (written, unchanged, failed) feeds."""
        # Imported here, not at the top: feedgen and lxml take longer to import than a
        # build with nothing to render takes to run.
        from aggregator.render import render_feed

        cache = dict(parsed)
        records: list[FeedRecord] = []
        files: list[RenderedFile] = []
        counts: list[tuple[int, int, int]] = []
        for key in keys:
            previous = self.catalog.feed_record(key)
            items = self.catalog.newest(key, self.settings.max_items, cache)
            if not items and previous is None:
                continue  # never listed anything: no feed to keep valid
            plan = plan_feed(
                key,
                items,
                self.plan_settings,
                previous_name=previous.name if previous else None,
                previous_updated=previous.updated if previous else None,
            )
            files.extend(render_feed(plan))
            guids = tuple(item.guid for item in items)
            counts.append(
                added_updated_removed(previous.guids if previous else (), guids, changed_guids)
            )
            name = feed_name(key, items, previous.name if previous else None)
            records.append(FeedRecord(key, name, plan.updated, guids))

        results = publish_all(self.output, files)
        by_path = {r.path: r for r in results}
        written = unchanged = 0
        done: list[FeedRecord] = []
        failed: list[FeedKey] = []
        for record, (added, updated, removed) in zip(records, counts, strict=True):
            pair = [by_path[record.key.rss_path], by_path[record.key.atom_path]]
            errors = [r.error for r in pair if r.error is not None]
            if errors:
                failed.append(record.key)
                events.extend(WriteFailed(str(e.path), e.reason) for e in errors)
                continue
            done.append(record)
            if any(r.written for r in pair):
                written += 1
                events.append(FeedWritten(record.key, added, updated, removed, len(record.guids)))
            else:
                unchanged += 1
                events.append(FeedUnchanged(record.key))
        self.catalog.finish_feeds(done, failed)
        if done or not all((self.output / name).is_file() for name in _INDEXES):
            self._publish_indexes(events)
        return written, unchanged, len(failed)

    def _publish_indexes(self, events: list[ChangeEvent]) -> None:
        from aggregator.indexes import render_indexes

        feeds = [(r.key, r.name, len(r.guids)) for r in self.catalog.feed_records()]
        base = self.settings.base_url
        opml, html = render_indexes(
            summaries(feeds, self.plan_settings),
            title=self.settings.titles.site,
            home_url=base + "index.html",
            opml_url=base + "index.opml",
        )
        for result in publish_all(self.output, [opml, html]):
            if result.error is not None:
                events.append(WriteFailed(result.error.path, result.error.reason))


@contextlib.contextmanager
def open_builder(settings: Settings) -> Iterator[Builder]:
    """A Builder that is closed (catalog and lock released) on the way out."""
    builder = Builder(settings)
    try:
        yield builder
    finally:
        builder.close()
