"""Crash points for the fault suite (tests/test_faults.py); nothing else uses them.

`AGGREGATOR_FAULT=<point>` in the environment makes the process kill itself with SIGKILL
when it reaches that point, so a test can crash a real build exactly between two steps
(e.g. between the renames of index.opml and index.html) and check that the next run
recovers. Unset (always, outside tests), a crash point costs one comparison with None.

Points: `after-scan`, `after-first-sync-batch` (the catalog transaction is open and workers
are still parsing), `after-sync` (committed, nothing rendered), `after-stage:NAME` (NAME's
temp file written, nothing renamed), `after-rename:NAME` (NAME renamed, the rest of its
batch not), `after-feeds-recorded` (feeds written and recorded, indexes not yet written).
NAME is a path relative to the output folder, e.g. `all.rss.xml` or `index.opml`.
"""

from __future__ import annotations

import os
import signal

_POINT = os.environ.get("AGGREGATOR_FAULT") or None


def crash_point(point: str) -> None:
    """SIGKILL this process if the fault suite asked for a crash at `point`."""
    if _POINT is not None and point == _POINT:
        os.kill(os.getpid(), signal.SIGKILL)
