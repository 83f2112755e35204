"""The `aggregator` command: flags, commands, completion and the man page.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

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

__getattr__ = resolver(__name__, _HOME, globals())
