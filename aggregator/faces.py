"""How a sub-package's `__init__.py` serves as its public face: a table of its public names
and the inner module each lives in, resolved on first use (PEP 562).

Nothing outside a sub-package imports its inner modules; they go through the face. Resolving
lazily keeps the face free: importing `aggregator.output` for `plan_feed` does not import
feedgen, so a build with nothing to do still never pays for feedgen, watchdog or the HTTP
client. Each face also imports its names under TYPE_CHECKING, for mypy and readers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def resolver(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], object]:
    """The module `__getattr__` of the face `package`: `homes` maps each public name to the
    inner module it lives in; a name once resolved is kept in the face's `namespace`."""

    def resolve(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home), name)
        namespace[name] = value
        return value

    return resolve
