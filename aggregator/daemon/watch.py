"""The watchdog observer over the input folder: its events → changed article paths.

    inotify (or polling) events
      | keep the paths `SourceFilter` calls article files; a folder event asks for a full scan
      | Debouncer (debounce.py), which decides when a batch is ready
      | ChangeBatch → the daemon, which hands it to the one Builder

The roots themselves are watched too (`Watcher.check_roots`): inotify follows an inode, not a
path, so after a deploy swap (`mv in in.old; mv in.new in`) or a deleted and re-created input
folder it would go on watching the old one. The parents of the input and output folders are
watched for their names, the output folder for deleted feed files, and a guard thread checks
both roots' inodes (woken by those events, and every `guard_seconds` in case an event is
missed): a new input folder is watched at once (logged) and scanned in full; a deleted output
folder, or deleted feed files, make a full build that writes every missing file again.

This module decides which paths changed; it never reads an article and never builds (that
is `daemon/service.py` and the pipeline). It is the only importer of watchdog.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

if sys.platform == "linux":
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyFD

from aggregator.daemon.debounce import Debouncer
from aggregator.daemon.inotify import StopRace, inotify_limit_message
from aggregator.daemon.roots import identity, inside, log_root
from aggregator.reading import SourceFilter

LOGGER = logging.getLogger("aggregator.watch")

logging.getLogger("watchdog.observers.inotify").addFilter(StopRace())

# Only these reach the handler. Opening and reading a file (IN_OPEN, IN_CLOSE_NOWRITE) is
# left out on purpose: the builder reads articles, and each read would otherwise look like a
# change and start another build. FileModifiedEvent also asks the kernel for IN_ATTRIB, so
# `touch` is seen; FileClosedEvent (IN_CLOSE_WRITE) marks the end of a write.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]

_FILE_CHANGES = tuple(kind for kind in _EVENTS if not kind.is_directory)
_OUTPUT_LOSSES = [FileDeletedEvent, FileMovedEvent, DirDeletedEvent, DirMovedEvent]
# The events after which a path's writer is done with it.
_COMPLETE = (FileClosedEvent, FileMovedEvent, FileDeletedEvent)

# What is written in the output folder (not the temp files, whose names start with `.`, nor the
# gzip sidecars, which follow their file): one of these deleted is written again.
_OUTPUT_SUFFIXES = (".xml", ".json", ".opml", ".html")

# How often the guard checks the roots' inodes when no event woke it.
GUARD_SECONDS = 1.0

class ChangeHandler(FileSystemEventHandler):
    """Turns watchdog events into paths for the debouncer, ignoring exactly what a build
    ignores (hidden files, editor leftovers, other patterns, the output and state folders)."""

    def __init__(
        self,
        source_filter: SourceFilter,
        debouncer: Debouncer,
        roots: RootEvents | None = None,
    ) -> None:
        super().__init__()
        self.filter = source_filter
        self.debouncer = debouncer
        # The roots' own events, when the output folder or a root's parent lies inside the
        # input (its recursive watch sees them, and no second watch may take that inode).
        self.roots = roots

    def _relative(self, path: str | bytes) -> str | None:
        text = path.decode() if isinstance(path, bytes) else path
        return self.filter.relative(text) if text else None

    def _article(self, path: str | bytes) -> str | None:
        rel = self._relative(path)
        return rel if rel is not None and self.filter.matches(rel) else None

    def _folder(self, path: str | bytes) -> bool:
        """Whether a folder event concerns a folder that may hold articles."""
        rel = self._relative(path)
        return rel is not None and self.filter.dir_allowed(rel)

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Route one event; called on the observer's thread."""
        if self.roots is not None:
            self.roots.on_any_event(event)
        if event.is_directory:
            # Files in a created, moved or deleted folder may not get events of their own
            # (a folder moved out of the input gives one event for all of them): rescan.
            if isinstance(event, DirCreatedEvent | DirMovedEvent | DirDeletedEvent) and (
                self._folder(event.src_path) or self._folder(getattr(event, "dest_path", ""))
            ):
                LOGGER.debug("folder %s %s: full scan", event.event_type, event.src_path)
                self.debouncer.add(full_scan=True)
            return
        if not isinstance(event, _FILE_CHANGES):
            return  # opened or read (the builder itself reads articles): not a change
        # A move is a delete of the old path and an upsert of the new one; an editor's
        # temp file renamed over the article lands here too, and only the article matches.
        paths = [self._article(event.src_path)]
        if isinstance(event, FileMovedEvent):
            paths.append(self._article(event.dest_path))
        found = [p for p in paths if p is not None]
        if found:
            # Closed after writing, renamed into place or deleted: nothing more is coming
            # to the path, so after a quiet spell it is built at once (the leading edge).
            # A created or modified path may be mid-write: it waits for the quiet interval.
            # A new mode or mtime says neither (`touch`, or a copy's times set at its end).
            complete = None if isinstance(event, FileAttribEvent) else isinstance(event, _COMPLETE)
            self.debouncer.add(found, complete=complete)


class RootEvents(FileSystemEventHandler):
    """Events about the roots: in their parents (a root's name created, moved or deleted: the
    guard checks the inodes at once) and in the output folder (a feed file deleted or moved
    away: `on_output_lost`, which asks for the full build that writes it again)."""

    def __init__(
        self,
        roots: tuple[Path, ...],
        output: Path | None,
        *,
        wake: Callable[[], None],
        on_output_lost: Callable[[str], None],
    ) -> None:
        super().__init__()
        self._roots = {str(root) for root in roots}
        self._output = None if output is None else os.path.join(str(output), "")
        self._wake = wake
        self._on_output_lost = on_output_lost

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        if event.is_directory and (src in self._roots or dest in self._roots):
            self._wake()
        output = self._output
        if output is None or not src.startswith(output):
            return
        if not isinstance(event, FileDeletedEvent | FileMovedEvent | DirDeletedEvent):
            return
        if isinstance(event, FileMovedEvent) and dest.startswith(output):
            return  # a temp file renamed over its target: our own publishing
        name = os.path.basename(src)
        if event.is_directory or (not name.startswith(".") and name.endswith(_OUTPUT_SUFFIXES)):
            self._on_output_lost(src)


# --- inotify queue overflow ---------------------------------------------------------------
# When more events arrive than the kernel queues (fs.inotify.max_queued_events), it drops
# the rest and queues one IN_Q_OVERFLOW. watchdog 7.x hands that to each watch group's
# `on_queue_overflow` (which re-adds the recursive watches) and logs a warning, but emits
# nothing to event handlers: without the hook below, the lost files waited for the
# reconcile scan (300 s). The hook is the group's own overflow callback, not the log line:
# it does not depend on watchdog's wording, and it runs after the watches are back, so a
# file dropped after the scan starts is seen by the watcher again.

if sys.platform == "linux":

    @dataclass
    class _OverflowReportingGroup(InotifyWatchGroup):
        """watchdog's watch group, telling `on_overflow` when the kernel dropped events."""

        on_overflow: Callable[[], None] | None = None

        def on_queue_overflow(self) -> None:
            super().on_queue_overflow()
            if self.on_overflow is not None:
                self.on_overflow()

    class _OverflowReportingEmitter(InotifyEmitter):
        """watchdog's emitter, with a watch group that reports overflows."""

        def __init__(self, *args: Any, on_overflow: Callable[[], None], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._on_overflow = on_overflow

        def on_thread_start(self) -> None:
            # As InotifyEmitter.on_thread_start, with our group class.
            self._inotify = _OverflowReportingGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                on_overflow=self._on_overflow,
            )

    class _OverflowReportingObserver(InotifyObserver):
        """watchdog's inotify observer, whose emitters report queue overflows."""

        def __init__(self, on_overflow: Callable[[], None]) -> None:
            # As InotifyObserver.__init__, with our emitter class.
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(
                self,
                _OverflowReportingEmitter,
                inotify_fd=self._inotify_fd,
                on_overflow=on_overflow,
            )


def _inotify_observer(on_overflow: Callable[[], None]) -> BaseObserver:
    """An inotify observer that calls `on_overflow` when events were lost (Linux), or the
    platform's own observer elsewhere."""
    if sys.platform == "linux":
        return _OverflowReportingObserver(on_overflow)
    return Observer()


class Watcher:
    """The observer over the input folder: inotify, or polling when asked to (network
    mounts) or when the kernel refuses inotify watches. Also the roots' guard: the input
    and output folders are followed by their paths, not their inodes (`check_roots`)."""

    def __init__(
        self,
        source_filter: SourceFilter,
        debouncer: Debouncer,
        *,
        output: Path | None = None,
        poll: bool = False,
        poll_seconds: float = 1.0,
        guard_seconds: float = GUARD_SECONDS,
    ) -> None:
        self.filter = source_filter
        self.debouncer = debouncer
        self.output = None if output is None else output.resolve()
        self.overflows = 0
        self._overflow_logged: float | None = None
        self.poll = poll
        self.poll_seconds = poll_seconds
        self.guard_seconds = guard_seconds
        self.reattached = 0
        self._observer: BaseObserver | None = None
        # The inodes watched; the guard compares the paths' current ones with them.
        self._watched: dict[str, tuple[int, int] | None] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._guard: threading.Thread | None = None
        root = source_filter.root
        # The output folder inside the input: the input's recursive watch sees its events.
        output_inside = self.output is not None and inside(self.output, root)
        self.roots = RootEvents(
            (root,) if self.output is None else (root, self.output),
            self.output,
            wake=self._wake.set,
            on_output_lost=self._output_lost,
        )
        self.handler = ChangeHandler(
            source_filter, debouncer, self.roots if output_inside else None
        )
        # Watched apart (non-recursive: the roots' names in their parents; recursive: the
        # output), unless the input's own watch covers them.
        parents = {root.parent} | ({self.output.parent} if self.output is not None else set())
        self._extra: list[tuple[Path, bool]] = [
            (parent, False) for parent in sorted(parents) if not inside(parent, root)
        ]
        if self.output is not None and not output_inside:
            self._extra.append((self.output, True))

    @property
    def polling(self) -> bool:
        """Whether the folder is polled rather than watched with inotify."""
        return self.poll

    @property
    def mode(self) -> str:
        """`inotify` or `polling every N s`, for the log."""
        return f"polling every {self.poll_seconds:g} s" if self.poll else "inotify"

    def start(self) -> None:
        """Start watching; on an inotify limit, log how to raise it and poll instead."""
        # watchdog logs every raw inotify event at DEBUG: thousands of lines per burst that
        # would drown our own debug lines (which say what each batch holds).
        logging.getLogger("watchdog").setLevel(logging.INFO)
        # A folder created while watchdog walks the tree to add its watches (the first
        # build creates the output's topics/ and providers/) gets its watch added twice;
        # watchdog warns that it replaces the callback with the same one. Harmless, but with
        # warnings turned into errors (-W error) it would kill watchdog's reader thread.
        warnings.filterwarnings(
            "ignore", message="Callback with id .* already exists", category=RuntimeWarning
        )
        with self._lock:
            self._closed.clear()
            self._attach()
            if self._guard is None:
                self._guard = threading.Thread(
                    target=self._guard_loop, name="aggregator-roots", daemon=True
                )
                self._guard.start()

    def _attach(self) -> None:
        """A new observer over the roots as they are now (under the lock)."""
        if not self.poll:
            try:
                self._start(_inotify_observer(self._overflowed))
                return
            except OSError as exc:
                message = inotify_limit_message(exc)
                if message is None:
                    raise
                LOGGER.error(message)
                self.poll = True
        self._start(PollingObserver(timeout=self.poll_seconds))

    def _overflowed(self) -> None:
        """The kernel dropped events: only a full scan can tell what changed."""
        self.overflows += 1
        self.debouncer.add(full_scan=True)
        # A flood overflows the queue again and again: one warning a minute says it.
        now = time.monotonic()
        if self._overflow_logged is not None and now - self._overflow_logged < 60:
            LOGGER.debug("the inotify queue overflowed again: full scan")
            return
        self._overflow_logged = now
        LOGGER.warning(
            "the inotify queue overflowed (events were lost): full scan now. If this "
            "recurs, raise the queue with `sysctl fs.inotify.max_queued_events=65536` "
            "(and a file in /etc/sysctl.d/ to keep it)"
        )

    def _start(self, observer: BaseObserver) -> None:
        root = self.filter.root
        watched = {"input": identity(root), "output": identity(self.output)}
        try:
            # A missing input folder (gone between the two moves of a swap) is not watched
            # until it is back; the guard watches its parent for it.
            if watched["input"] is not None or not self._watched:
                observer.schedule(self.handler, str(root), recursive=True, event_filter=_EVENTS)
            for path, recursive in self._extra:
                if identity(path) is not None:
                    self._watch_extra(observer, path, recursive)
            observer.start()
        except BaseException:
            # The inotify observer runs a reader thread from its constructor on: stop it.
            _stop(observer)
            raise
        self._observer = observer
        self._watched = watched

    def check_roots(self) -> bool:
        """Whether a root was replaced, deleted or came back since it was watched; if so the
        observer is attached again to what is at the paths now (logged), and a full build is
        asked for when it can change anything: a new input folder is scanned, a lost output
        folder written again. (An output folder that appears, as the first build makes it,
        is only watched.)"""
        with self._lock:
            if self._observer is None or self._closed.is_set():
                return False
            before = dict(self._watched)
            # Again until the paths hold still: the second move of a swap may land while the
            # first is being handled, before the new observer watches the parent.
            for _ in range(3):
                now = {"input": identity(self.filter.root), "output": identity(self.output)}
                if now == self._watched:
                    break
                if self._output_appeared(now):
                    continue
                old, self._observer = self._observer, None
                if old is not None:
                    _stop(old)
                self._attach()  # records the identities it attached to
            after = dict(self._watched)
            if after == before:
                return False
            self.reattached += 1
        rebuild = False
        for name, path in (("input", self.filter.root), ("output", self.output)):
            was, now_is = before.get(name), after.get(name)
            if was == now_is:
                continue
            if name == "input" or was is not None:
                log_root(name, path, before=was, now=now_is)
            # The input folder gone: nothing to scan until it is back (a scan of a missing
            # input folder withdraws nothing anyway). An output folder lost: write it again.
            rebuild |= now_is is not None if name == "input" else was is not None
        if rebuild:
            self.debouncer.add(full_scan=True)
        return True

    def _output_appeared(self, now: dict[str, tuple[int, int] | None]) -> bool:
        """Whether the only change is an output folder where there was none (the first
        build made it): it is added to the running observer (the same inotify instance,
        whose events are not lost meanwhile), not a new one."""
        watched = self._watched
        if now["input"] != watched.get("input") or watched.get("output") is not None:
            return False
        observer = self._observer
        assert observer is not None
        for path, recursive in self._extra:
            if path == self.output and not self._watch_extra(observer, path, recursive):
                return False
        self._watched = now
        return True

    def _watch_extra(self, observer: BaseObserver, path: Path, recursive: bool) -> bool:
        """Watch a root's parent (its names) or the output folder (its losses alone: each feed
        written was 4 to 6 events to handle); False if refused (the guard checks anyway)."""
        try:
            kinds = _OUTPUT_LOSSES if path == self.output else None
            observer.schedule(self.roots, str(path), recursive=recursive, event_filter=kinds)
        except OSError as exc:
            LOGGER.debug("cannot watch %s (%s): the guard polls", path, exc)
            return False
        return True

    def _output_lost(self, path: str) -> None:
        LOGGER.info("%s was deleted from the output folder: full build, it is written again", path)
        self.debouncer.add(full_scan=True)

    def _guard_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.guard_seconds)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                self.check_roots()
            except Exception as exc:  # the guard must outlive a bad moment
                LOGGER.error("cannot watch the folders again (%s); retrying", exc)

    def revive(self) -> None:
        """Restart the observer, polling, if it died (the reconcile job asks)."""
        if self.alive():
            return
        LOGGER.error("the file watcher stopped (%s); restarting it, polling", self.mode)
        self.stop()
        self.poll = True
        self.start()

    def alive(self) -> bool:
        """Whether the observer and its emitter threads still run."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        if not all(emitter.is_alive() for emitter in observer.emitters):
            return False
        # watchdog's inotify reader thread; it dies if adding a watch for a new folder fails
        # (e.g. at the limit), after which no event would arrive.
        reader = getattr(observer, "_inotify_fd", None)
        return reader is None or bool(reader.is_alive())

    def stop(self) -> None:
        """Stop the guard and the observer, and wait for their threads."""
        self._closed.set()
        self._wake.set()
        guard, self._guard = self._guard, None
        if guard is not None and guard is not threading.current_thread():
            guard.join()
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            _stop(observer)


def _stop(observer: BaseObserver) -> None:
    observer.stop()
    if observer.is_alive():
        observer.join()
