"""Helpers of the tests that run the daemon: poll until a condition holds (never a fixed
sleep), and a sink that records every change event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from aggregator.events import BuildFinished, ChangeEvent

# The one bound on every wait of the tests (a condition, a build, a process, a socket). Only a
# failing test ever waits this long, so it is set for the slowest case that passes: the fault
# suite's killed and restarted builds on a loaded two-core CI runner.
TIMEOUT = 60.0


def wait_for(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll until `predicate()` is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Recorder:
    """A sink that keeps every event (called on the daemon's threads, read on the test's)."""

    def __init__(self) -> None:
        self._events: list[ChangeEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: ChangeEvent) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[ChangeEvent]:
        with self._lock:
            return list(self._events)

    def of(self, kind: type[Any], since: int = 0) -> list[Any]:
        """The events of `kind`, from the `since`-th event on."""
        return [e for e in self.events[since:] if isinstance(e, kind)]

    @property
    def builds(self) -> int:
        return len(self.of(BuildFinished))
