"""The files a request may reach: which path is safe, opened one folder at a time without
following any link, its gzip sidecar, its bytes and their ETags remembered per version.

Each request opens its path one folder at a time below the output folder with `O_NOFOLLOW`
and only regular, non-hidden files are served (temp files and a state folder inside the
output are hidden or refused). The file is opened first and its size and mtime taken from
that open file (`fstat`), so a feed replaced mid-request (publish's `os.replace`) is sent
whole: old bytes or new bytes, never a mix, and its ETag is of the bytes sent. Hashes are
kept per (inode, size, mtime, ctime), so a 304 costs an open and an `fstat`.

Whatever the config says (it refuses such overlaps, this is the second line): no folder on
the way to a file may be the state folder or the input folder (compared by device and
inode, so a link, a bind mount or a folder moved in after the start makes no difference),
and the names of the state's own files (the catalog, its WAL, the lock) are never served.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote

from aggregator.output import GZIP_SUFFIX, gzip_bytes
from aggregator.serve.conditional import entity_tag

INDEX = "index.html"

# ETags remembered (one short string each).
_ETAG_CACHE_SIZE = 4096

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not hang the server (it is then refused as not a file).
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


# The state folder's own files, never served under any folder: the lock, and the catalog with
# its -wal and -shm and a damaged one kept aside (no feed's file name has a dot in its slug).
_LOCK_NAME = "lock"
_CATALOG_NAME = "catalog.sqlite3"


def path_parts(raw_path: str, hidden: tuple[str, ...] = ()) -> list[str] | None:
    """The decoded path segments, or None when the path may not be served.

    Works on the raw (still percent-encoded) path, so an encoded `/` (`%2F`) is one
    segment holding a slash, refused, not a separator. `hidden` is a folder inside the
    served one (the state folder) whose paths are refused.
    """
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    if path == "/":
        return [INDEX]
    parts = []
    for raw in path[1:].split("/"):
        try:
            part = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        if not part or part.startswith(".") or any(c in part for c in "/\\\0"):
            return None
        if part == _LOCK_NAME or part.startswith(_CATALOG_NAME):
            return None
        parts.append(part)
    if hidden and tuple(parts[: len(hidden)]) == hidden:
        return None
    return parts


def folder_ids(folders: tuple[Path, ...]) -> frozenset[tuple[int, int]]:
    """The (device, inode) of each of `folders` that exists now (links followed)."""
    ids = set()
    for folder in folders:
        try:
            status = os.stat(folder)
        except OSError:
            continue
        ids.add((status.st_dev, status.st_ino))
    return frozenset(ids)


def open_folder(
    root: Path, parts: list[str], private: frozenset[tuple[int, int]] = frozenset()
) -> int | None:
    """A descriptor of the folder `parts` names below `root`, opened without following any
    link, or None if it cannot be, or if `root` or any folder on the way is one of `private`."""
    try:
        # The folder itself may be a link (/srv/feeds -> /data/feeds); nothing below it.
        fd = os.open(root, _OPEN_DIR & ~os.O_NOFOLLOW)
    except OSError:
        return None
    for part in (None, *parts):
        if part is not None:
            try:
                child = os.open(part, _OPEN_DIR, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = child
        if private:
            status = os.fstat(fd)
            if (status.st_dev, status.st_ino) in private:
                os.close(fd)
                return None
    return fd


def open_file(folder_fd: int, name: str) -> int | None:
    """`name` in the open folder, open without following a link (never blocking on a FIFO)."""
    try:
        return os.open(name, _OPEN_FILE, dir_fd=folder_fd)
    except OSError:
        return None


def open_sidecar(folder_fd: int, name: str, original: os.stat_result) -> int | None:
    """The gzip sidecar of `name`, open, if publish wrote it with this version of the file.

    Publish gives a sidecar the mtime of the file it was made from; one with another mtime
    belongs to another version (or was left behind) and is not used.
    """
    fd = open_file(folder_fd, name + GZIP_SUFFIX)
    if fd is None:
        return None
    status = os.fstat(fd)
    if stat.S_ISREG(status.st_mode) and status.st_mtime_ns == original.st_mtime_ns:
        return fd
    os.close(fd)
    return None


def read_body(fd: int, compress: bool) -> bytes:
    """The whole content of the open file `fd`, gzipped if `compress`."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    return gzip_bytes(data) if compress else data


class EtagCache:
    """The ETags of the files served, per version (device, inode, size, mtime, ctime)."""

    def __init__(self, size: int = _ETAG_CACHE_SIZE) -> None:
        self.size = size
        self._etags: dict[tuple[int, ...], str] = {}

    def etag(self, fd: int, status: os.stat_result, compress: bool) -> tuple[str, bytes | None]:
        """The ETag of the file open as `fd` (gzipped if `compress`), and its bytes if read."""
        key = (
            status.st_dev,
            status.st_ino,
            status.st_size,
            status.st_mtime_ns,
            status.st_ctime_ns,
            compress,
        )
        etag = self._etags.get(key)
        if etag is not None:
            return etag, None
        data = read_body(fd, compress)
        etag = entity_tag(data)
        if len(self._etags) >= self.size:
            # Oldest first: the entries of replaced versions are never asked for again.
            del self._etags[next(iter(self._etags))]
        self._etags[key] = etag
        return etag, data


def hidden_prefix(output: Path, state: Path) -> tuple[str, ...]:
    """The state folder's path inside the output folder, if it is there (never served)."""
    try:
        inside = state.resolve().relative_to(output.resolve())
    except ValueError:
        return ()
    return inside.parts
