"""The folders the settings name, checked before anything is changed: the input must be a
folder, and the output and the state must be able to be ones.

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
    input_dir = settings.input.resolve()
    if settings.output.resolve() == input_dir:
        raise ConfigError("output", ["output: must not be the input folder itself"])
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


def shown(folder: Path) -> str:
    """`folder` as messages name it: absolute, `..` folded away."""
    return os.path.abspath(folder)
