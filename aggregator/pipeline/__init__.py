"""One build: the stages called in order, the worker processes, the state lock.

`read_stored` is the per-file boundary of a build (read, parse, stored form; never raises),
for any command that reads article files as a build does.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.pipeline.builder import Builder, BuildReport
    from aggregator.pipeline.lock import BuildLock, lock_held
    from aggregator.pipeline.rendering import Progress
    from aggregator.pipeline.targets import release_in_background
    from aggregator.pipeline.workers import (
        PARALLEL_FILES,
        leave_workers_behind,
        read_stored,
        start_worker_server,
    )

__all__ = [
    "PARALLEL_FILES",
    "BuildLock",
    "BuildReport",
    "Builder",
    "Progress",
    "leave_workers_behind",
    "lock_held",
    "read_stored",
    "release_in_background",
    "start_worker_server",
]

_HOME = {
    "BuildLock": "aggregator.pipeline.lock",
    "BuildReport": "aggregator.pipeline.builder",
    "Builder": "aggregator.pipeline.builder",
    "PARALLEL_FILES": "aggregator.pipeline.workers",
    "Progress": "aggregator.pipeline.rendering",
    "leave_workers_behind": "aggregator.pipeline.workers",
    "lock_held": "aggregator.pipeline.lock",
    "read_stored": "aggregator.pipeline.workers",
    "release_in_background": "aggregator.pipeline.targets",
    "start_worker_server": "aggregator.pipeline.workers",
}

__getattr__ = resolver(__name__, _HOME, globals())
