"""Crash and pause points for the fault suite (tests/test_faults.py, tests/test_nodes.py);
nothing else uses them.

`AGGREGATOR_FAULT=<point>` in the environment makes the process kill itself with SIGKILL
when it reaches that point, so a test can crash a real build exactly between two steps
(e.g. between the renames of index.opml and index.html) and check that the next run
recovers. `AGGREGATOR_FAULT=stop-at:<point>` makes it stop itself (SIGSTOP) there instead,
the first time only, as a paused VM or a debugger would; the test sends SIGCONT. Unset
(always, outside tests), a point costs one comparison with None.

Points: `after-scan`, `after-first-sync-batch` (the catalog transaction is open and workers
are still parsing, SQLite), `sync-locked` (the sync's transaction is open and, on
PostgreSQL, holds the cluster-wide write lock), `after-sync` (committed, nothing rendered),
`after-stage:NAME` (NAME's temp file written, nothing renamed), `after-rename:NAME` (NAME
renamed, the rest of its batch not), `after-feeds-recorded` (feeds written and recorded,
indexes not yet written; for the renderer of a shared catalog: inside its store's open
transaction), `after-render-stored` (the renderer's store committed and rung, its own copy
not made). NAME is a path relative to the output folder, e.g. `all.rss.xml` or
`index.opml`.
"""

from __future__ import annotations

import os
import signal

_POINT = os.environ.get("AGGREGATOR_FAULT") or None
_STOP = "stop-at:"
_stopped: set[str] = set()


def crash_point(point: str) -> None:
    """SIGKILL (or, once, SIGSTOP) this process if the fault suite asked for it at `point`."""
    if _POINT is None:
        return
    if point == _POINT:
        os.kill(os.getpid(), signal.SIGKILL)
    elif _STOP + point == _POINT and point not in _stopped:
        _stopped.add(point)
        os.kill(os.getpid(), signal.SIGSTOP)
