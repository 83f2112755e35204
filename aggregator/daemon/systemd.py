"""The systemd notification protocol (sd_notify): READY, RELOADING, STOPPING, STATUS and
WATCHDOG datagrams to the socket systemd names in $NOTIFY_SOCKET.

The protocol is one AF_UNIX datagram of `KEY=value` lines per message, to a path or (a
leading `@`) an abstract-namespace address: a few lines here rather than a dependency on
libsystemd. Outside systemd (no $NOTIFY_SOCKET) every call does nothing. A message that
cannot be sent is logged once at debug and never fails the daemon: the service manager is
an observer, not a part the feeds depend on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

LOGGER = logging.getLogger("aggregator.daemon")

# What sd_notify(unset_environment=1) removes, so the worker processes and the forkserver
# (which inherit the environment) never speak for the daemon.
_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(value: str) -> str | None:
    """The socket address of $NOTIFY_SOCKET: a path, or `@name` in the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and other forms this daemon is never given


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as RELOADING=1 carries it (systemd ≥ 253)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier:
    """Sends the daemon's state to systemd; `watchdog_seconds` is how often to beat."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        # systemd asks for a beat at least every WATCHDOG_USEC; half of it leaves room.
        self.watchdog_seconds = watchdog_usec / 2_000_000 if watchdog_usec else None
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> SystemdNotifier:
        """The notifier systemd's environment asks for (none outside systemd)."""
        env = os.environ if environ is None else environ
        address = _address(env.get("NOTIFY_SOCKET", ""))
        watchdog: int | None = None
        try:
            watchdog = int(env.get("WATCHDOG_USEC", "")) or None
        except ValueError:
            watchdog = None
        owner = env.get("WATCHDOG_PID", "")
        if owner and owner != str(os.getpid()):
            watchdog = None  # the watchdog is some other process's
        if unset:
            for name in _VARIABLES:
                env.pop(name, None)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one message (`KEY=value` lines); False if not under systemd or it failed."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError as exc:
            if not self._failed:
                LOGGER.debug("cannot notify systemd at %r: %s", self.address, exc)
                self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def extend_start(self, seconds: float) -> bool:
        """Ask for `seconds` more before systemd gives up on the start (a big first build
        that is still progressing)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
