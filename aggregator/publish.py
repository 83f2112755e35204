"""Atomic writes of rendered files: never a half-written feed, never a needless write.

Each file goes to a hidden temp file in its own folder, is fsynced, then `os.replace`d over
the old one, so a reader sees the old bytes or the new bytes and nothing in between. A file
whose bytes would not change is not touched at all (its mtime stays, so HTTP caches and
readers' conditional requests keep working).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import PublishError
from aggregator.model import RenderedFile

# fsync waits on the disk and releases the GIL: a few threads overlap those waits.
_IO_THREADS = 8


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


def publish_file(root: Path, file: RenderedFile) -> bool:
    """Write one file atomically unless its bytes are already there. True if written."""
    target = safe_target(root, file.path)
    try:
        if target.read_bytes() == file.data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(str(target), exc.strerror or str(exc)) from exc
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise PublishError(str(target), exc.strerror or str(exc)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(file.data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes 0600 files; feeds are for a web server to read.
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise PublishError(str(target), exc.strerror or str(exc)) from exc
    return True


def publish_all(root: Path, files: Sequence[RenderedFile]) -> list[PublishResult]:
    """Publish many files; one failure does not stop the others. Results in input order."""

    def one(file: RenderedFile) -> PublishResult:
        try:
            return PublishResult(file.path, publish_file(root, file))
        except PublishError as exc:
            return PublishResult(file.path, False, exc)

    if len(files) <= 2:
        results = [one(f) for f in files]
    else:
        with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
            results = list(pool.map(one, files))
    _sync_folders(root, [r.path for r in results if r.written])
    return results


def _sync_folders(root: Path, written: Sequence[str]) -> None:
    """fsync the folders whose entries changed, so the renames survive a power cut."""
    folders = {safe_target(root, path).parent for path in written}
    for folder in folders:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
