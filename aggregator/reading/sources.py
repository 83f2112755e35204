"""Which files in the input folder are article files, and what their size and mtime are.

Both the full scan of a build and the watcher's event filter use `SourceFilter`, so a file
the daemon ignores is exactly a file a build ignores.

A folder that cannot be listed (no permission, a failing mount: EACCES, EIO, ENOTCONN, …), or
an input folder that is missing, is not an empty folder: the scan says so (`Scan.unreadable`),
and the build keeps what the catalog knew below it instead of withdrawing it. Only a path that
is gone (ENOENT, ENOTDIR) is a deletion.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator
from fnmatch import translate
from pathlib import Path
from typing import NamedTuple

# Editors and tools write these next to real files while saving (vim's `4913` probe,
# backups, swap and temp files); reading them would publish half-saved drafts.
_LEFTOVER = r"(?:.*~|.*\.sw[a-p]|.*\.tmp|4913|\.#.*|#.*#)\Z"


# What a path that no longer exists raises; any other OSError means it could not be looked at.
_GONE = (errno.ENOENT, errno.ENOTDIR)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class FileStat(NamedTuple):
    """What decides whether a file must be read again."""

    size: int
    mtime_ns: int

    @property
    def signature(self) -> Signature:
        """The same facts as a plain pair, which is what a scan and the catalog give (a
        scan makes 100,000 of them: a tuple costs less to make than a `FileStat`, or than
        the text of two numbers, and compares equal to the `FileStat`)."""
        return (self.size, self.mtime_ns)

    @classmethod
    def parse(cls, signature: Signature) -> FileStat:
        """Inverse of `signature`."""
        return cls(*signature)


Signature = tuple[int, int]
"""A file's size and mtime in nanoseconds (`FileStat.signature`)."""


class SourceFilter:
    """Decides whether a path below the input folder is an article file."""

    def __init__(
        self,
        root: Path,
        patterns: Iterable[str],
        excluded: Iterable[Path] = (),
        *,
        follow_external_links: bool = False,
    ) -> None:
        self.root = root.resolve()
        # Whether a symbolic link may lead outside the input folder. By default it may not:
        # anyone who can write in the input folder could otherwise publish any file this
        # process can read (a key, a password file).
        self.follow_external_links = follow_external_links
        self._root_prefix = os.path.join(str(self.root), "")
        # One regex per name: not hidden, not an editor leftover, and matching a pattern,
        # case-insensitively (`*.txt` takes `NOTE.TXT` too). A scan runs it 100,000 times.
        wanted = "|".join(translate(p) for p in patterns)
        self._name = re.compile(rf"(?!\.)(?!{_LEFTOVER})(?:{wanted})", re.IGNORECASE)
        self._excluded = tuple(
            rel for rel in (self._relative_dir(p) for p in excluded) if rel is not None
        )

    def _relative_dir(self, path: Path) -> str | None:
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            return None
        # The input folder itself as output would exclude everything; callers refuse that.
        return rel.as_posix() if rel.parts else None

    def dir_allowed(self, rel_dir: str) -> bool:
        """Whether a folder (relative, `/`-separated) may hold article files."""
        if not rel_dir or rel_dir == ".":
            return True
        parts = rel_dir.split("/")
        if any(part.startswith(".") for part in parts):
            return False
        return not any(rel_dir == ex or rel_dir.startswith(ex + "/") for ex in self._excluded)

    def name_matches(self, name: str) -> bool:
        """Whether a file name (no folder) is an article file's."""
        return self._name.match(name) is not None

    def matches(self, rel: str) -> bool:
        """Whether a file path (relative to the input folder, `/`-separated) is an article."""
        folder, _, name = rel.rpartition("/")
        return bool(name) and self.name_matches(name) and self.dir_allowed(folder)

    def link_allowed(self, path: str) -> bool:
        """Whether the file at `path` (absolute, below the root) may be read: it resolves
        to an allowed place inside the input folder, or links may lead anywhere."""
        if self.follow_external_links:
            return True
        real = os.path.realpath(path)
        if not real.startswith(self._root_prefix):
            return False
        folder = os.path.dirname(real[len(self._root_prefix) :])
        return self.dir_allowed(folder.replace(os.sep, "/"))

    def relative(self, path: Path | str) -> str | None:
        """The `/`-separated path relative to the input folder, or None if outside it."""
        path = Path(path)
        if not path.is_absolute():
            path = self.root / path
        try:
            rel = Path(os.path.normpath(path)).relative_to(self.root)
        except ValueError:
            return None
        return rel.as_posix() if rel.parts else None


class Scan(NamedTuple):
    """What a full scan found: every article file with its `FileStat.signature`, and the
    folders that could not be read (listed, or their files looked at), each with its reason;
    "" is the input folder itself."""

    found: dict[str, Signature]
    unreadable: dict[str, str]

    def covering(self, rel: str) -> str | None:
        """The deepest unreadable folder at or above file `rel`, or None: a file below one
        was not seen, and what the catalog knew of it stands."""
        unreadable = self.unreadable
        if not unreadable:
            return None
        folder = rel
        while folder:
            folder = folder.rpartition("/")[0]
            if folder in unreadable:
                return folder
        return None


def scan_sources(source_filter: SourceFilter) -> dict[str, Signature]:
    """Every article file below the input folder, with its `FileStat.signature` (what
    `scan_tree` found, without what it could not read)."""
    return scan_tree(source_filter).found


def scan_tree(source_filter: SourceFilter) -> Scan:
    """Every article file below the input folder, with its `FileStat.signature`, and what
    could not be read.

    Folder symlinks are not followed (no loops); file symlinks are, only to files inside
    the input folder unless `follow_external_links`. Files and folders that vanish during the
    scan are simply not listed; a folder that cannot be listed, or whose files cannot be
    looked at, is in `unreadable`.
    """
    found: dict[str, Signature] = {}
    unreadable: dict[str, str] = {}
    root = str(source_filter.root)
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        prefix = f"{rel_dir}/" if rel_dir else ""
        try:
            # Listed and looked at through the folder's descriptor: each file's stat then
            # resolves one name, not the whole path (a scan does 100,000 of them).
            fd = os.open(os.path.join(root, rel_dir), _DIR_FLAGS)
        except OSError as exc:
            # A sub-folder that vanished is gone; the input folder itself never is (a deploy
            # swap, an unmounted share): nothing below it is withdrawn.
            if rel_dir == "" or exc.errno not in _GONE:
                unreadable[rel_dir] = _reason(exc)
            continue
        try:
            with os.scandir(fd) as entries:
                _scan_entries(
                    entries,
                    fd,
                    prefix,
                    source_filter,
                    found=found,
                    pending=pending,
                    unreadable=unreadable,
                )
        except OSError as exc:  # the listing could not start (EIO, a dropped mount)
            unreadable[rel_dir] = _reason(exc)
        finally:
            os.close(fd)
    return Scan(found, unreadable)


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _scan_entries(
    entries: Iterator[os.DirEntry[str]],
    fd: int,
    prefix: str,
    source_filter: SourceFilter,
    *,
    found: dict[str, Signature],
    pending: list[str],
    unreadable: dict[str, str],
) -> None:
    """One folder's entries (listed from descriptor `fd`) into `found` and `pending`. A file
    that cannot be looked at, or the folder when its listing fails midway, goes to
    `unreadable` (what the catalog knew of it stands)."""
    match = source_filter._name.match
    folder = os.path.join(str(source_filter.root), prefix)
    stat_at = os.stat
    is_regular = stat.S_ISREG
    try:
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if source_filter.dir_allowed(prefix + name):
                        pending.append(prefix + name)
                    continue
                if match(name) is None:
                    continue
                if entry.is_symlink() and not source_filter.link_allowed(folder + name):
                    continue
                info = stat_at(name, dir_fd=fd)
            except OSError as exc:
                # Gone meanwhile: not listed. Otherwise the folder can be listed but not
                # searched (read without execute permission), or the mount fails: the
                # folder is unreadable (what it held and was not seen now stands).
                if exc.errno not in _GONE:
                    unreadable[prefix[:-1]] = _reason(exc)
                continue
            if is_regular(info.st_mode):
                found[prefix + name] = (info.st_size, info.st_mtime_ns)
    except OSError as exc:  # the listing itself failed midway (EIO, a dropped mount)
        unreadable[prefix[:-1]] = _reason(exc)


def stat_source(source_filter: SourceFilter, rel: str) -> FileStat | None:
    """The size and mtime of one article file, or None if it is gone, not a file, or a link
    (itself or a folder on its way) that leads where files may not be read from.

    Raises OSError when the file cannot be looked at (a folder on its way cannot be searched,
    a failing mount): that is not a deletion."""
    path = source_filter.root / rel
    if not source_filter.link_allowed(str(path)):
        return None
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno in _GONE:
            return None
        raise
    if not stat.S_ISREG(info.st_mode):
        return None
    return FileStat(info.st_size, info.st_mtime_ns)
