"""One build: the stages called in order, the worker processes, the state lock.

`read_stored` is the per-file boundary of a build (read, parse, stored form; never raises),
for any command that reads article files as a build does.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.pipeline.builder import Builder, BuildReport, Progress
    from aggregator.pipeline.lock import BuildLock, lock_held
    from aggregator.pipeline.workers import PARALLEL_FILES, read_stored, start_worker_server

__all__ = [
    "PARALLEL_FILES",
    "BuildLock",
    "BuildReport",
    "Builder",
    "Progress",
    "lock_held",
    "read_stored",
    "start_worker_server",
]

_HOME = {
    "BuildLock": "aggregator.pipeline.lock",
    "BuildReport": "aggregator.pipeline.builder",
    "Builder": "aggregator.pipeline.builder",
    "PARALLEL_FILES": "aggregator.pipeline.workers",
    "Progress": "aggregator.pipeline.builder",
    "lock_held": "aggregator.pipeline.lock",
    "read_stored": "aggregator.pipeline.workers",
    "start_worker_server": "aggregator.pipeline.workers",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
