"""The roots the daemon works on, the input and output folders, known by their inode as well as
their path: what tells that one was replaced (a deploy swap), deleted or came back, and what the
log says then. No watchdog here: `watch.py` owns the observer and acts on these."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

LOGGER = logging.getLogger("aggregator.watch")


def identity(path: Path | None) -> tuple[int, int] | None:
    """(device, inode) of the folder at `path`, or None if there is none."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or below it."""
    return path == folder or folder in path.parents


def log_root(
    name: str, path: Path | None, *, before: tuple[int, int] | None, now: tuple[int, int] | None
) -> None:
    """Say what became of a root (`name`: input or output) and what the daemon does about it."""
    if now is None:
        if name == "input":
            LOGGER.warning(
                "the input folder %s is gone (moved or deleted): its articles stay listed; "
                "watching for a folder at that path again",
                path,
            )
        else:
            LOGGER.warning("the output folder %s is gone: every feed is written again", path)
        return
    how = "is back" if before is None else "was replaced (a new folder at that path)"
    if name == "input":
        LOGGER.warning("the input folder %s %s: watching it now, full scan", path, how)
    else:
        LOGGER.warning("the output folder %s %s: every missing feed is written again", path, how)
