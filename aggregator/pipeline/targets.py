"""Where a build's rendered files go: the output folder (one machine), or the cluster's
rendered set in the catalog (the renderer of a shared catalog, whose files every node then
copies into its own folder, `pipeline.sharing`).

Both answer the same four questions the build asks: is this file there, remove it, stage
files and commit them (which of them have new bytes), publish a few at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aggregator.catalog import Catalog, FeedRecord, digest
from aggregator.events import ChangeEvent, FeedUnchanged, FeedWritten, WriteFailed
from aggregator.model import FeedKey, RenderedFile
from aggregator.output import (
    PublishBatch,
    PublishResult,
    added_updated_removed,
    gzip_bytes,
    publish_all,
    release_in_background,
    sidecar_of,
)

# The build's logger: these lines have always been the build's.
LOGGER = logging.getLogger("aggregator.build")

# A feed staged for publishing: its record, the GUIDs it listed before, the paths it is
# written to.
Staged = tuple[FeedRecord, tuple[str, ...], tuple[str, ...]]

# For the daemon (`pipeline`'s face): the old versions a commit replaces freed on a thread.
__all__ = ["release_in_background"]


class Batch(Protocol):
    """Files staged, then committed together (`PublishBatch`'s shape)."""

    def stage(self, file: RenderedFile) -> None: ...

    @property
    def staged_paths(self) -> list[str]: ...

    def commit(self) -> list[PublishResult]: ...

    def abandon(self) -> None: ...


class Target(Protocol):
    """Where rendered files go."""

    def exists(self, path: str) -> bool: ...

    def present(self, paths: set[str]) -> set[str]: ...

    def remove(self, path: str, why: str) -> bool: ...

    def batch(self) -> Batch: ...

    def publish(self, files: Iterable[RenderedFile]) -> list[PublishResult]: ...

    def flush(self) -> None: ...


class DiskTarget:
    """The output folder itself: atomic writes, gzip sidecars, mtimes (`output.publish`)."""

    def __init__(self, root: Path, *, gzip: bool) -> None:
        self.root = root
        self.gzip = gzip

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()

    def present(self, paths: set[str]) -> set[str]:
        return files_in(self.root, paths)

    def remove(self, path: str, why: str) -> bool:
        return remove_output(self.root / path, why)

    def batch(self) -> PublishBatch:
        return PublishBatch(self.root, gzip=self.gzip)

    def publish(self, files: Iterable[RenderedFile]) -> list[PublishResult]:
        return publish_all(self.root, files, gzip=self.gzip)

    def flush(self) -> None:
        """Nothing: the files are in place once committed."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A version of the rendered set this build stored: its new files and its removals.
    Kept for this node's own copy, which then needs not fetch back the bytes it sent."""

    version: int
    files: dict[str, RenderedFile]
    removed: set[str]


class StoreTarget:
    """The cluster's rendered set: what is committed here is kept until `flush` stores it
    as one version (fenced by `epoch`), inside the transaction that records the render.
    The versions it stored stay in `stored` (valid once their transaction commits).

    With `gzip`, a file stored without its sidecar's bytes (the index pages: the workers
    gzip only the feeds) gets them here, once, with `gzip_bytes`, as every node's publish
    would otherwise make them again at each copy (three nodes gzipped the pages three
    times: a fifth of a follower's CPU per drop)."""

    def __init__(self, catalog: Catalog, epoch: int, node: str, *, gzip: bool = True) -> None:
        self.catalog = catalog
        self.epoch = epoch
        self.node = node
        self.gzip = gzip
        self._known: dict[str, bytes] | None = None
        self.files: dict[str, RenderedFile] = {}
        self.removed: set[str] = set()
        self.stored: list[StoredVersion] = []

    def _digests(self) -> dict[str, bytes]:
        if self._known is None:
            self._known = self.catalog.stored_digests()
        return self._known

    def exists(self, path: str) -> bool:
        return path in self.files or (path in self._digests() and path not in self.removed)

    def present(self, paths: set[str]) -> set[str]:
        return {path for path in paths if self.exists(path)}

    def remove(self, path: str, why: str) -> bool:
        there = self.exists(path)
        if there:
            self.files.pop(path, None)
            self.removed.add(path)
        return there

    def accept(self, file: RenderedFile) -> bool:
        """Keep `file` for the store if its bytes are new to the set; whether they are."""
        if self._digests().get(file.path) == digest(file.data) and file.path not in self.removed:
            self.files.pop(file.path, None)
            return False
        if self.gzip and file.gzipped is None:
            file = RenderedFile(file.path, file.data, gzip_bytes(file.data))
        self.files[file.path] = file
        self.removed.discard(file.path)
        return True

    def batch(self) -> StoreBatch:
        return StoreBatch(self)

    def publish(self, files: Iterable[RenderedFile]) -> list[PublishResult]:
        return [PublishResult(f.path, self.accept(f)) for f in files]

    def flush(self) -> None:
        """Store what was committed and removed as one new version (nothing: no version)."""
        if not self.files and not self.removed:
            return
        version = self.catalog.store_rendered(self.files, self.removed, self.epoch, self.node)
        LOGGER.debug(
            "render: %d files stored, %d removed, as version %d of the rendered set (epoch %d)",
            len(self.files),
            len(self.removed),
            version,
            self.epoch,
        )
        known = self._digests()
        for path, file in self.files.items():
            known[path] = digest(file.data)
        for path in self.removed:
            known.pop(path, None)
        self.stored.append(StoredVersion(version, self.files, self.removed))
        self.files = {}
        self.removed = set()


class StoreBatch:
    """`PublishBatch`'s shape over a `StoreTarget`: a file is written if its bytes are new."""

    def __init__(self, target: StoreTarget) -> None:
        self.target = target
        self._results: list[PublishResult] = []

    def stage(self, file: RenderedFile) -> None:
        self._results.append(PublishResult(file.path, self.target.accept(file)))

    @property
    def staged_paths(self) -> list[str]:
        return [r.path for r in self._results if r.written]

    def commit(self) -> list[PublishResult]:
        results, self._results = self._results, []
        return results

    def abandon(self) -> None:
        for result in self._results:
            self.target.files.pop(result.path, None)
        self._results = []


def remove_output(path: Path, why: str) -> bool:
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


def outcomes(
    rendered: list[Staged],
    results: dict[str, PublishResult],
    changed_guids: set[str],
    events: list[ChangeEvent],
) -> tuple[list[FeedRecord], list[FeedKey], int, int]:
    """(feeds written or unchanged, feeds that failed, written count, unchanged count) once
    the batch is committed; each feed's event is appended to `events`."""
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
    return done, failed, written, unchanged


def files_in(output: Path, paths: set[str]) -> set[str]:
    """Which of `paths` (relative, `/`-separated) are files in `output` (a link to a file
    is one): each folder they are in listed once, instead of a stat per path (a full scan
    asks this of every feed, two thousand files for a thousand feeds)."""
    by_folder: dict[str, set[str]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        by_folder.setdefault(folder, set()).add(name)
    present: set[str] = set()
    for folder, names in by_folder.items():
        prefix = f"{folder}/" if folder else ""
        try:
            with os.scandir(output / folder if folder else output) as entries:
                for entry in entries:
                    if entry.name in names and entry.is_file():
                        present.add(prefix + entry.name)
        except OSError:
            continue  # a folder not there (or not listable): its files are missing
    return present


def take_stored(target: Target) -> list[StoredVersion]:
    """The versions of the rendered set `target` stored (none: it is the output folder),
    handed over once: a daemon's leader must not hold a cold build's bytes until its next
    build."""
    if not isinstance(target, StoreTarget):
        return []
    stored, target.stored = target.stored, []
    return stored
