"""Capped doubling: the one retry schedule of the package (builds, pings, cluster threads)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Wait `first` seconds after the first failure, twice as long after each further one,
    never more than `cap`. A value, so a test or a setting can carry a faster one."""

    first: float
    cap: float

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1 for the first)."""
        if failures <= 1:
            return min(self.first, self.cap)
        # The exponent is capped so a long outage never overflows a float.
        return float(min(self.cap, self.first * 2 ** min(failures - 1, 64)))


@dataclass(slots=True)
class Backoff:
    """The failures in a row of one thing that is retried, and the wait they call for."""

    policy: BackoffPolicy
    failures: int = field(default=0)

    def failed(self) -> float:
        """Count one more failure; returns how long to wait before the next try."""
        self.failures += 1
        return self.policy.delay(self.failures)

    def next_delay(self) -> float:
        """The wait the next failure would call for, without counting it."""
        return self.policy.delay(self.failures + 1)

    def succeeded(self) -> None:
        self.failures = 0
