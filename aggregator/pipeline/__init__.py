"""One build: the stages called in order, the worker processes, the state lock.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.pipeline.builder import (
        PARALLEL_FILES,
        Builder,
        BuildLock,
        BuildReport,
        Progress,
        lock_held,
        start_worker_server,
    )

__all__ = [
    "PARALLEL_FILES",
    "BuildLock",
    "BuildReport",
    "Builder",
    "Progress",
    "lock_held",
    "start_worker_server",
]

_HOME = {
    "BuildLock": "aggregator.pipeline.builder",
    "BuildReport": "aggregator.pipeline.builder",
    "Builder": "aggregator.pipeline.builder",
    "PARALLEL_FILES": "aggregator.pipeline.builder",
    "Progress": "aggregator.pipeline.builder",
    "lock_held": "aggregator.pipeline.builder",
    "start_worker_server": "aggregator.pipeline.builder",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
