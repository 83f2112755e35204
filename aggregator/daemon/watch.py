"""The watchdog observer over the input folder: its events → changed article paths.

    inotify (or polling) events
      | keep the paths `SourceFilter` calls article files; a folder event asks for a full scan
      | Debouncer (debounce.py), which decides when a batch is ready
      | ChangeBatch → the daemon, which hands it to the one Builder

This module decides which paths changed; it never reads an article and never builds (that
is `daemon/service.py` and the pipeline). It is the only importer of watchdog.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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
from aggregator.reading import SourceFilter

LOGGER = logging.getLogger("aggregator.watch")

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

# The kernel's two ways of refusing inotify: too many watches, too many instances.
_INOTIFY_LIMITS = {errno.ENOSPC: "max_user_watches", errno.EMFILE: "max_user_instances"}


class ChangeHandler(FileSystemEventHandler):
    """Turns watchdog events into paths for the debouncer, ignoring exactly what a build
    ignores (hidden files, editor leftovers, other patterns, the output and state folders)."""

    def __init__(self, source_filter: SourceFilter, debouncer: Debouncer) -> None:
        super().__init__()
        self.filter = source_filter
        self.debouncer = debouncer

    def _article(self, path: str | bytes) -> str | None:
        if not path:
            return None
        text = path.decode() if isinstance(path, bytes) else path
        rel = self.filter.relative(text)
        return rel if rel is not None and self.filter.matches(rel) else None

    def _folder(self, path: str | bytes) -> bool:
        """Whether a folder event concerns a folder that may hold articles."""
        if not path:
            return False
        text = path.decode() if isinstance(path, bytes) else path
        rel = self.filter.relative(text)
        return rel is not None and self.filter.dir_allowed(rel)

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Route one event; called on the observer's thread."""
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
            self.debouncer.add(found)


def inotify_limit_message(exc: OSError) -> str | None:
    """The explanation for an inotify limit error, or None if `exc` is not one."""
    setting = _INOTIFY_LIMITS.get(exc.errno or 0)
    if setting is None:
        return None
    value = 524288 if setting == "max_user_watches" else 1024
    return (
        f"the kernel refused an inotify watch ({exc.strerror or exc}); falling back to "
        f"polling. Raise the limit with `sysctl fs.inotify.{setting}={value}` and keep it "
        f"across reboots with a file in /etc/sysctl.d/ (e.g. "
        f"/etc/sysctl.d/90-inotify.conf containing `fs.inotify.{setting}={value}`)"
    )


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
    mounts) or when the kernel refuses inotify watches."""

    def __init__(
        self,
        source_filter: SourceFilter,
        debouncer: Debouncer,
        *,
        poll: bool = False,
        poll_seconds: float = 1.0,
    ) -> None:
        self.filter = source_filter
        self.debouncer = debouncer
        self.handler = ChangeHandler(source_filter, debouncer)
        self.overflows = 0
        self._overflow_logged: float | None = None
        self.poll = poll
        self.poll_seconds = poll_seconds
        self._observer: BaseObserver | None = None

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
        try:
            observer.schedule(
                self.handler, str(self.filter.root), recursive=True, event_filter=_EVENTS
            )
            observer.start()
        except BaseException:
            # The inotify observer runs a reader thread from its constructor on: stop it.
            _stop(observer)
            raise
        self._observer = observer

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
        """Stop the observer and wait for its threads."""
        observer, self._observer = self._observer, None
        if observer is not None:
            _stop(observer)


def _stop(observer: BaseObserver) -> None:
    observer.stop()
    if observer.is_alive():
        observer.join()
