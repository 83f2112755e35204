"""The `aggregator` command: flags, commands, completion and the man page.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.cli.program import build_parser, main, subcommand_parsers
    from aggregator.cli.starter import repository_config_text

__all__ = [
    "build_parser",
    "main",
    "repository_config_text",
    "subcommand_parsers",
]

_HOME = {
    "build_parser": "aggregator.cli.program",
    "main": "aggregator.cli.program",
    "repository_config_text": "aggregator.cli.starter",
    "subcommand_parsers": "aggregator.cli.program",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
