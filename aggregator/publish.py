"""Atomic writes of rendered files: never a half-written feed, never a needless write.

Each file goes to a hidden temp file in its own folder, is fsynced, then `os.replace`d over
the old one, so a reader sees the old bytes or the new bytes and nothing in between. A file
whose bytes would not change is not touched at all (its mtime stays, so HTTP caches and
readers' conditional requests keep working).

A `PublishBatch` stages many files (temp files, fsynced in a background thread while the
caller renders the next ones) and renames them all at the end; one fsync often commits the
filesystem journal for many files at once (measured here: 674 feeds fsynced in 0.16 s
staged together, 0.27 s one after another).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import PublishError
from aggregator.model import RenderedFile


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What happened to one file: written, unchanged, or failed (with why)."""

    path: str
    written: bool
    error: PublishError | None = None


def safe_target(root: Path, relative: str) -> Path:
    """The file `relative` names inside `root`; refuses any path that would leave it."""
    parts = relative.split("/")
    if (
        not relative
        or relative.startswith("/")
        or "\\" in relative
        or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
    ):
        raise PublishError(relative, "refused: the path would leave the output folder")
    return root / Path(*parts)


def _error(target: Path, exc: OSError) -> PublishError:
    return PublishError(str(target), exc.strerror or str(exc))


@dataclass(frozen=True, slots=True)
class _Staged:
    path: str
    target: Path
    temp: str
    synced: Future[None]


class PublishBatch:
    """Files staged as temp files, then made visible together by `commit`.

    One failure (full disk, unwritable folder) fails only its own file: the others are
    published, and the failed one keeps its previous bytes.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._staged: list[_Staged] = []
        self._results: list[PublishResult] = []
        # fsyncs run in a thread while the caller stages (renders) the next files.
        self._syncer: ThreadPoolExecutor | None = None

    def stage(self, file: RenderedFile) -> None:
        """Write `file` to a temp file beside its target, unless the target has its bytes."""
        try:
            target = safe_target(self.root, file.path)
        except PublishError as exc:
            self._results.append(PublishResult(file.path, False, exc))
            return
        try:
            if target.read_bytes() == file.data:
                self._results.append(PublishResult(file.path, False))
                return
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._results.append(PublishResult(file.path, False, _error(target, exc)))
            return
        temp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                view = memoryview(file.data)
                while view:
                    view = view[os.write(fd, view) :]
                # mkstemp makes 0600 files; feeds are for a web server to read.
                os.fchmod(fd, 0o644)
            finally:
                # Closed now, reopened to fsync: thousands of feeds must not need
                # thousands of open descriptors.
                os.close(fd)
        except OSError as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            self._results.append(PublishResult(file.path, False, _error(target, exc)))
            return
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix="aggregator-fsync")
        self._staged.append(_Staged(file.path, target, temp, self._syncer.submit(_fsync, temp)))

    @property
    def staged_paths(self) -> list[str]:
        """The files `commit` will rename: those whose bytes differ from their target's."""
        return [staged.path for staged in self._staged]

    def commit(self) -> list[PublishResult]:
        """fsync every staged file, rename each over its target, fsync the folders."""
        renamed: list[Path] = []
        for staged in self._staged:
            try:
                staged.synced.result()
                os.replace(staged.temp, staged.target)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(staged.temp)
                self._results.append(PublishResult(staged.path, False, _error(staged.target, exc)))
                continue
            renamed.append(staged.target)
            self._results.append(PublishResult(staged.path, True))
        self._staged = []
        self._stop_syncer()
        _sync_folders({target.parent for target in renamed})
        results, self._results = self._results, []
        return results

    def _stop_syncer(self) -> None:
        if self._syncer is not None:
            self._syncer.shutdown(wait=True)
            self._syncer = None

    def abandon(self) -> None:
        """Drop everything staged: the targets keep their bytes, no temp file stays."""
        self._stop_syncer()
        for staged in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(staged.temp)
        self._staged = []
        self._results = []


def publish_all(root: Path, files: Iterable[RenderedFile]) -> list[PublishResult]:
    """Publish files atomically; one failure does not stop the others."""
    batch = PublishBatch(root)
    try:
        for file in files:
            batch.stage(file)
    except BaseException:
        batch.abandon()
        raise
    return batch.commit()


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folders(folders: Iterable[Path]) -> None:
    """fsync the folders whose entries changed, so the renames survive a power cut."""
    for folder in folders:
        with contextlib.suppress(OSError):
            _fsync(folder)
