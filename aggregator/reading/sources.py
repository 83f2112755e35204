"""Which files in the input folder are article files, and what their size and mtime are.

Both the full scan of a build and the watcher's event filter use `SourceFilter`, so a file
the daemon ignores is exactly a file a build ignores.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from fnmatch import translate
from pathlib import Path
from typing import NamedTuple

# Editors and tools write these next to real files while saving (vim's `4913` probe,
# backups, swap and temp files); reading them would publish half-saved drafts.
_LEFTOVER = r"(?:.*~|.*\.sw[a-p]|.*\.tmp|4913|\.#.*|#.*#)\Z"


class FileStat(NamedTuple):
    """What decides whether a file must be read again."""

    size: int
    mtime_ns: int

    @property
    def signature(self) -> str:
        """The same facts as one string: a scan compares 100,000 of them, and strings
        are built and compared in C where tuples of ints are built in Python."""
        return f"{self.size}:{self.mtime_ns}"

    @classmethod
    def parse(cls, signature: str) -> FileStat:
        """Inverse of `signature`."""
        size, _, mtime = signature.partition(":")
        return cls(int(size), int(mtime))


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


def scan_sources(source_filter: SourceFilter) -> dict[str, str]:
    """Every article file below the input folder, with its `FileStat.signature`.

    Folder symlinks are not followed (no loops); file symlinks are, only to files inside
    the input folder unless `follow_external_links`. Files that vanish during the scan are
    simply not listed.
    """
    found: dict[str, str] = {}
    root = source_filter.root
    name_matches = source_filter.name_matches
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        prefix = f"{rel_dir}/" if rel_dir else ""
        try:
            entries = os.scandir(root / rel_dir if rel_dir else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if source_filter.dir_allowed(prefix + name):
                            pending.append(prefix + name)
                        continue
                    if not name_matches(name):
                        continue
                    if entry.is_symlink() and not source_filter.link_allowed(entry.path):
                        continue
                    info = entry.stat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[prefix + name] = f"{info.st_size}:{info.st_mtime_ns}"
    return found


def stat_source(source_filter: SourceFilter, rel: str) -> FileStat | None:
    """The size and mtime of one article file, or None if it is gone, not a file, or a link
    (itself or a folder on its way) that leads where files may not be read from."""
    path = source_filter.root / rel
    if not source_filter.link_allowed(str(path)):
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return FileStat(info.st_size, info.st_mtime_ns)
