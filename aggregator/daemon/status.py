"""The daemon's status record: a small JSON file in the state folder (`status.json`), written
atomically by the daemon when it starts, after each build and when it stops, and read by
`aggregator status` without any lock. Whether the daemon that wrote it still runs is told by
its PID and that process's start time (a PID reused by another process is not ours).

The record holds only what the catalog does not: the process, and how the last build went.
It never holds a secret (the catalog is named as `Catalog.where`, without a password).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__

if TYPE_CHECKING:
    from aggregator.config import Settings
    from aggregator.pipeline import BuildReport

LOGGER = logging.getLogger("aggregator.daemon")

STATUS_FILE = "status.json"
STATUS_VERSION = 1  # the record's own schema; a reader ignores keys it does not know


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def process_start(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (field 22 of /proc/PID/stat);
    None if no such process. With the PID it names one process for the machine's uptime."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


class StatusRecord:
    """The daemon's side: the record, rewritten whole (temp file + rename) at each change.

    A failure to write it is logged at DEBUG and otherwise ignored: the record is for people
    asking, and must never stop the daemon (a full disk is reported by the build itself).
    """

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state / STATUS_FILE
        self.node = settings.node if settings.catalog is not None else None  # a cluster's
        self._data: dict[str, Any] = {}

    def started(self, catalog: str) -> None:
        """The daemon holds the lock and starts its first build."""
        pid = os.getpid()
        self._data = {
            "version": STATUS_VERSION,
            "aggregator": __version__,
            "pid": pid,
            "process_start": process_start(pid),
            "started": _now(),
            "stopped": None,
            "node": self.node,
            "catalog": catalog,
            "builds": 0,
            "failed_builds": 0,
            "last_build": None,
            "next_due": None,
            "updated": _now(),
        }
        self._write()

    def built(self, report: BuildReport) -> None:
        """A build finished (some feeds may have failed to write: `result` says so)."""
        if not self._data:
            return
        self._data["builds"] += 1
        self._data["last_build"] = {
            "finished": _now(),
            "seconds": round(report.seconds, 3),
            "result": "failed feeds" if report.failed else "ok",
            "error": None,
            "read": report.read,
            "published": report.published,
            "rejected": report.rejected,
            "written": report.written,
            "unchanged": report.unchanged,
            "failed": report.failed,
        }
        due = report.next_due
        self._data["next_due"] = None if due is None else due.isoformat().replace("+00:00", "Z")
        self._write()

    def failed(self, exc: BaseException) -> None:
        """A build failed as a whole (it is retried; the feeds stay as they were)."""
        if not self._data:
            return
        self._data["failed_builds"] += 1
        self._data["last_build"] = {
            "finished": _now(),
            "seconds": None,
            "result": "failed",
            "error": str(exc) or type(exc).__name__,
        }
        self._write()

    def stopped(self) -> None:
        """The daemon stopped cleanly."""
        if not self._data:
            return
        self._data["stopped"] = _now()
        self._write()

    def _write(self) -> None:
        self._data["updated"] = _now()
        temp = self.path.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(self._data, indent=1) + "\n", encoding="utf-8")
            # No fsync: after a power cut a torn record reads as "unreadable", which the
            # next start rewrites; a build must not wait on the disk for it.
            os.replace(temp, self.path)
        except OSError as exc:
            LOGGER.debug("cannot write the status record %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                temp.unlink()


@dataclass(frozen=True, slots=True)
class DaemonState:
    """What the record in a state folder says of its daemon: `running` (the PID it names is
    alive and is the same process), and the record itself (None: none, or unreadable)."""

    running: bool
    record: dict[str, Any] | None
    problem: str | None = None  # why the record could not be read


def alive(pid: int, started: int | None) -> bool:
    """Whether `pid` is the process that wrote a record (same start time), not a reuse."""
    now = process_start(pid)
    return now is not None and (started is None or now == started)


def daemon_state(state: Path) -> DaemonState:
    """Read `state/status.json` (never locks, never writes) and tell whether its daemon runs."""
    path = state / STATUS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DaemonState(False, None)
    except (OSError, ValueError) as exc:
        return DaemonState(False, None, f"{path}: unreadable ({exc}); the daemon rewrites it")
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return DaemonState(False, None, f"{path}: not a status record; the daemon rewrites it")
    start = record.get("process_start")
    running = record.get("stopped") is None and alive(
        record["pid"], start if isinstance(start, int) else None
    )
    return DaemonState(running, record)
