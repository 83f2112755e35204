"""How a count is written in a message: `1 article file`, `2 article files`, `0 feeds`.

One helper for every summary line and log line of the package (the CLI's, the daemon's
logs), so that none says "1 article files read".
"""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, the noun's plural (`plural`, else noun + "s") unless it is 1."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
