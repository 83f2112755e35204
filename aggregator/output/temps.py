"""The temp files publishing writes (hidden, beside their targets, of one name shape), their
clean-up after a kill, and the rename over a target that frees its old version later.

Replacing a file frees its old version's blocks, and that, not the rename, is what takes the
time (measured on ext4 mounted with `discard`: 2-3 ms a file, the rename itself 0.1 ms). In
the daemon (`release_in_background`), `commit` first gives each old version a second, hidden
name (a hard link shaped like a temp file), so the rename frees nothing, and a thread unlinks
those names once the batch is committed: the new bytes are visible that much sooner, and the
next build need not wait either. A name left by a kill is a temp file to `remove_stale_temps`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import threading
from pathlib import Path

# The temp files `publish.PublishBatch.stage` makes: `.` + the target's name + mkstemp's eight
# random characters + `.tmp`. Only names of this exact shape are ever cleaned up, so a
# file someone else put in the output folder is never touched.
TEMP_NAME = re.compile(r"\.[^/]+\.(?:xml|opml|html|json)(?:\.gz)?\.[a-z0-9_]{8}\.tmp\Z")
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"


# mkstemp's alphabet: the names `TEMP_NAME` matches.
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


# As mkstemp's names: a seeded generator, seeded again in a forked child (which would
# otherwise draw its parent's names: harmless with O_EXCL, but every one a retry).
_RANDOM = random.Random()
os.register_at_fork(after_in_child=_RANDOM.seed)


def temp_name(target: Path) -> str:
    """A new hidden name beside `target`, of the shape `TEMP_NAME` matches."""
    token = "".join(_RANDOM.choices(_TEMP_CHARS, k=8))
    return os.path.join(target.parent, f"{_TEMP_PREFIX}{target.name}.{token}{_TEMP_SUFFIX}")


def write_temp(target: Path, data: bytes, mtime_ns: int) -> str:
    """`data` in a new hidden temp file beside `target`, mode 0644, mtime `mtime_ns`.

    mkstemp's contract (a new file, never an existing name, mode 0600 until chmodded), made
    here: `tempfile` costs more Python per file than the open itself, and a burst makes
    thousands."""
    for _ in range(100):
        temp = temp_name(target)
        try:
            fd = os.open(temp, _CREATE, 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"no free temp name beside {target}")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # Feeds are for a web server to read (and the umask must not decide).
        os.fchmod(fd, 0o644)
        # Set before the rename, which keeps it: the file never shows another mtime.
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    # Closed now, reopened to fsync: thousands of feeds must not need thousands of open
    # descriptors.
    os.close(fd)
    return temp


def replace(temp: str, target: Path, kept: list[str] | None) -> None:
    """Rename `temp` over `target`; with `kept` (a list: `release_in_background` is on), the
    old version first gets a second name, appended to `kept`, so the rename frees nothing."""
    if kept is not None:
        second = temp_name(target)
        try:
            os.link(target, second, follow_symlinks=False)
        except OSError:
            pass  # no old version, or no hard links here: the rename frees it, as ever
        else:
            kept.append(second)
    os.replace(temp, target)


class _Releaser:
    """Unlinks, on one thread, the second names `commit` gave the old versions it replaced
    (off: `keeping` answers None, and nothing is kept)."""

    def __init__(self) -> None:
        self._on = False
        self._queue: list[str] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Off, nothing queued, no thread (a forked child's state)."""
        self._on = False
        self._queue = []
        self._changed = threading.Condition()
        self._thread = None

    def keeping(self) -> list[str] | None:
        return [] if self._on else None

    def turn(self, on: bool) -> None:
        with self._changed:
            self._on = on
            if on and self._thread is None:
                # A daemon thread, so an exit is not held up by its wait for work; the exit
                # waits for its unlinks instead (`atexit` below).
                self._thread = threading.Thread(
                    target=self._run, name="aggregator-release", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()
            # Off: what is queued is unlinked before this returns.
            while not on and (self._queue or self._thread is not None):
                self._changed.wait()

    def release(self, paths: list[str] | None) -> None:
        if not paths:
            return
        with self._changed:
            self._queue.extend(paths)
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue and self._on:
                    self._changed.wait()
                paths, self._queue = self._queue, []
                if not paths:  # off, and nothing left
                    self._thread = None
                    self._changed.notify_all()
                    return
            for path in paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            # The queue is empty before the unlinks are done: `turn(False)` waits on the
            # thread's end, which comes only after them.


RELEASER = _Releaser()
atexit.register(RELEASER.turn, False)
# A forked child has no such thread (and may hold a copy of its lock): it starts off.
os.register_at_fork(after_in_child=RELEASER.reset)


def release_in_background(on: bool) -> None:
    """In a long-lived process (the daemon): the old versions a commit replaces are freed on
    a thread after it, not by its renames (see the module's docstring). Turned off, it waits
    until every old version queued is freed; call that before the build lock is released."""
    RELEASER.turn(on)


def remove_stale_temps(root: Path) -> int:
    """Delete the temp files a killed build left in the output tree; how many were removed.

    Call it only while holding the build lock: another writer's temp files are live.
    """
    removed = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue  # vanished, or not ours to delete: the next build tries again
    return removed
