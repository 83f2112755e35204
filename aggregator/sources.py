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
_LEFTOVER = re.compile(r"(?:.*~|.*\.sw[a-p]|.*\.tmp|4913|\.#.*|#.*#)\Z", re.IGNORECASE)


class FileStat(NamedTuple):
    """What decides whether a file must be read again.

    A named tuple, not a dataclass: a build with nothing to do compares tens of thousands
    of them, and tuples are made and compared in C.
    """

    size: int
    mtime_ns: int


class SourceFilter:
    """Decides whether a path below the input folder is an article file."""

    def __init__(self, root: Path, patterns: Iterable[str], excluded: Iterable[Path] = ()) -> None:
        self.root = root.resolve()
        # Patterns match the file name, case-insensitively: `*.txt` takes `NOTE.TXT` too.
        self._pattern = re.compile("|".join(translate(p.lower()) for p in patterns))
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

    def matches(self, rel: str) -> bool:
        """Whether a file path (relative to the input folder, `/`-separated) is an article."""
        folder, _, name = rel.rpartition("/")
        if not name or name.startswith(".") or _LEFTOVER.match(name):
            return False
        if not self._pattern.match(name.lower()):
            return False
        return self.dir_allowed(folder)

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


def scan_sources(source_filter: SourceFilter) -> dict[str, FileStat]:
    """Every article file below the input folder, with its size and mtime.

    Folder symlinks are not followed (no loops); file symlinks are. Files that vanish
    during the scan are simply not listed.
    """
    found: dict[str, FileStat] = {}
    root = source_filter.root
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            entries = os.scandir(root / rel_dir if rel_dir else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if source_filter.dir_allowed(rel):
                            pending.append(rel)
                        continue
                    if not source_filter.matches(rel):
                        continue
                    st = entry.stat()
                except OSError:
                    continue
                if entry.is_file():
                    found[rel] = FileStat(st.st_size, st.st_mtime_ns)
    return found


def stat_source(source_filter: SourceFilter, rel: str) -> FileStat | None:
    """The size and mtime of one article file, or None if it is gone or not a file."""
    try:
        info = (source_filter.root / rel).stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return FileStat(info.st_size, info.st_mtime_ns)
