"""The folders the settings name, checked before anything is changed: the input must be a
folder, and the output and the state must be able to be ones, and none of the three may
expose another: no state or input that a server of the output would hand out.

Messages name each folder by its absolute path: a relative one is relative to the config
file's folder or to the current folder, and the user must not have to guess which.
"""

from __future__ import annotations

import os
from pathlib import Path

from aggregator.config.settings import Settings
from aggregator.errors import ConfigError


def check_input(settings: Settings) -> None:
    """Raise `ConfigError` unless the input folder is a folder (`aggregator check` too)."""
    if not settings.input.is_dir():
        raise ConfigError(
            "input",
            [
                f"input: the folder {shown(settings.input)} does not exist or is not a folder; "
                "set input (or --input) to the folder holding the article files"
            ],
        )


def check_folders(settings: Settings) -> None:
    """Raise `ConfigError` unless the input is a folder and the output and state can be.

    Before anything is changed: `catalog rebuild` calls it before it moves the old catalog.
    """
    check_input(settings)
    check_overlaps(settings)
    # A file where a folder goes would fail every write, one warning per feed file.
    for key, folder in (("output", settings.output), ("state", settings.state)):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                key,
                [
                    f"{key}: {shown(folder)} is a file, not a folder; move the file away or set "
                    f"{key} (or --{key}) to a folder"
                ],
            )


def _is_within(inner: Path, outer: Path) -> bool:
    """Whether `inner` is `outer` or below it, by any way of reading the paths.

    Each path is taken both as written (made absolute) and resolved (links followed): a link
    inside the output to the input (`out/articles -> ../in`) is the input inside the output
    for a web server that follows links. Folders that exist are also compared by device
    and inode, up from `inner`, which catches a second path to one folder (a bind mount).
    """
    inners = {Path(os.path.abspath(inner)), inner.resolve()}
    outers = {Path(os.path.abspath(outer)), outer.resolve()}
    if any(b == a or b in a.parents for a in inners for b in outers):
        return True
    targets = set()
    for folder in outers:
        try:
            status = os.stat(folder)
        except OSError:
            continue
        targets.add((status.st_dev, status.st_ino))
    for start in inners:
        for folder in (start, *start.parents):
            try:
                status = os.stat(folder)
            except OSError:
                continue
            if (status.st_dev, status.st_ino) in targets:
                return True
    return False


# (inner, outer, why it is refused): each way one folder could hand out another's files.
# What is allowed, and why: the output or the state inside the input (the scan and the
# watcher skip both, and nothing serves the input); the output or the input inside the
# state (nothing serves the state, and the state's own files are not in them).
_REFUSED = (
    (
        "state",
        "output",
        "the server (or any web server on the output) would hand out the catalog, every "
        "unpublished article's title, URL and excerpt with it",
    ),
    (
        "input",
        "output",
        "the server (or any web server on the output) would hand out the raw article files, "
        "the unpublished ones and their `secured:` field with them",
    ),
    (
        "output",
        "input",
        "",  # only the two being one folder: the scan would take the feeds for articles
    ),
    (
        "state",
        "input",
        "",  # only the two being one folder: the catalog and lock would sit among the articles
    ),
)


def check_overlaps(settings: Settings) -> None:
    """Raise `ConfigError` when the input, output and state folders overlap in a way that
    could publish a private file (`build`, `run`, `serve`, `catalog rebuild`, before anything)."""
    folders = {"input": settings.input, "output": settings.output, "state": settings.state}
    problems: list[str] = []
    said: set[frozenset[str]] = set()  # input = output is one problem, not two
    for inner, outer, why in _REFUSED:
        a, b = folders[inner], folders[outer]
        if not _is_within(a, b) or frozenset((inner, outer)) in said:
            continue
        same = _is_within(b, a)
        if not why and not same:
            continue
        said.add(frozenset((inner, outer)))
        relation = "is the same folder as" if same else "is inside"
        reason = why or "one folder cannot be both"
        problems.append(
            f"{inner}: {a} {relation} the {outer} folder {b}: {reason}; set {inner} (or --{inner}) "
            f"and {outer} (or --{outer}) to separate folders"
        )
    if problems:
        raise ConfigError("input, output and state", problems)
def shown(folder: Path) -> str:
    """`folder` as messages name it: absolute, `..` folded away."""
    return os.path.abspath(folder)
