"""`run_daemon`: the daemon's main thread. It waits for signals (SIGTERM and SIGINT stop,
SIGHUP reloads the config) and speaks to systemd: READY=1 once the first build is done,
RELOADING=1 … READY=1 around a reload, STOPPING=1, and WATCHDOG=1 while the daemon lives.

Signals: the handlers do nothing in Python; `signal.set_wakeup_fd` writes each signal's
number to a pipe this thread waits on, and the work (logging, stopping, reloading) happens
here, between two waits. A handler that took a lock (an Event's `set`, a log handler's) could
deadlock with the very code it interrupted, in the same thread: the daemon once hung for
good that way.

Watchdog: WATCHDOG=1 is sent from this loop, and only while `Liveness` shows that the build
in flight and the timers are moving: a hung build or scheduler stops the beats and systemd
restarts the daemon; a busy big first build keeps beating (and extends the start timeout).
"""

from __future__ import annotations

import logging
import os
import select
import signal
from collections.abc import Callable, Iterable
from types import FrameType

from aggregator.config import Settings
from aggregator.daemon.hooks import DaemonHooks
from aggregator.daemon.service import Daemon
from aggregator.daemon.systemd import SystemdNotifier
from aggregator.delivery import configure_logging, lifecycle
from aggregator.errors import ConfigError
from aggregator.pipeline import leave_workers_behind, release_in_background

LOGGER = logging.getLogger("aggregator.daemon")

_STOP = (signal.SIGTERM, signal.SIGINT)
_HANDLED = (*_STOP, signal.SIGHUP)
# How often the loop looks at the daemon when systemd asks for no watchdog.
_LOOK_SECONDS = 1.0


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the wakeup fd carries the signal to the loop)."""


class _SignalPipe:
    """The signals the loop handles, as bytes on a pipe (`signal.set_wakeup_fd`)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = {sig: signal.signal(sig, _ignore) for sig in _HANDLED}
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def wait(self, timeout: float) -> list[signal.Signals]:
        """The signals received, waiting at most `timeout` seconds for the first."""
        try:
            ready, _, _ = select.select([self._read], [], [], timeout)
        except InterruptedError:  # pragma: no cover (PEP 475 retries select)
            ready = [self._read]
        if not ready:
            return []
        try:
            data = os.read(self._read, 512)
        except BlockingIOError:
            return []
        return [signal.Signals(number) for number in data if number in _HANDLED]

    def close(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        os.close(self._read)
        os.close(self._write)


class _Foreground:
    """The main loop: signals in, systemd notifications out."""

    def __init__(
        self,
        daemon: Daemon,
        notifier: SystemdNotifier,
        reload: Callable[[], Settings] | None,
        on_reload: Iterable[Callable[[Settings], None]],
    ) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.reload_settings = reload
        self.on_reload = list(on_reload)
        self.ready = False
        self.quiet_reason: str | None = None  # why the last watchdog beat was withheld

    def loop(self, signals: _SignalPipe) -> signal.Signals | None:
        """Run until a stop signal (returned), or until this node must stop (None: on a shared
        catalog, another process took its name over while it was cut off)."""
        interval = self.notifier.watchdog_seconds or _LOOK_SECONDS
        while True:
            for received in signals.wait(min(interval, _LOOK_SECONDS)):
                if received in _STOP:
                    return received
                self.reload()
            self._look()
            if self.daemon.cluster.must_stop(self.daemon.catalog_in_use()) is not None:
                return None

    def _look(self) -> None:
        daemon, notifier = self.daemon, self.notifier
        if not self.ready and daemon.runner.builds > 0:
            self.ready = True
            notifier.ready(f"watching {daemon.settings.input}; feeds in {daemon.settings.output}")
        if notifier.watchdog_seconds is None:
            return
        # The limit is systemd's own (WATCHDOG_USEC, twice the beat interval).
        reason = daemon.liveness.stuck(2 * notifier.watchdog_seconds)
        if reason is None:
            notifier.watchdog()
            if not self.ready:  # a big first build that is moving: not a hung start
                notifier.extend_start(4 * notifier.watchdog_seconds)
            self.quiet_reason = None
        elif reason != self.quiet_reason:
            LOGGER.error("not feeding the systemd watchdog: %s", reason)
            self.quiet_reason = reason

    def reload(self) -> None:
        """SIGHUP: validate the config file again, then swap it in; a bad one is logged with
        every problem and the settings in use stay."""
        daemon, notifier = self.daemon, self.notifier
        LOGGER.info("SIGHUP received: reloading the config", extra=lifecycle("reloading"))
        notifier.reloading()
        try:
            if self.reload_settings is None:
                LOGGER.warning("SIGHUP: this daemon was started without a config to reload")
                return
            try:
                settings = self.reload_settings()
            except ConfigError as exc:
                LOGGER.error(
                    "%s; keeping the config in use (fix the file, then reload again)",
                    exc,
                    extra=lifecycle("reload-failed", problems=exc.problems),
                )
                return
            old = daemon.settings
            kept = daemon.reconfigure(settings)
            if (settings.log_level, settings.log_format) != (old.log_level, old.log_format):
                configure_logging(settings.log_level, settings.log_format)
            for hook in self.on_reload:
                hook(daemon.settings)
            if kept:
                LOGGER.warning(
                    "the config changes %s, which only a restart applies "
                    "(systemctl restart aggregator); the running values stay until then",
                    ", ".join(kept),
                    extra=lifecycle("restart-needed", settings=kept),
                )
            LOGGER.info("config reloaded", extra=lifecycle("reloaded"))
        finally:
            notifier.ready("config reloaded" if self.ready else "reloaded; first build running")


def run_daemon(
    settings: Settings,
    hooks: DaemonHooks | None = None,
    *,
    reload: Callable[[], Settings] | None = None,
    on_reload: Iterable[Callable[[Settings], None]] = (),
) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the exit code (0).

    `reload` reads and validates the config again (SIGHUP, `systemctl reload`); it raises
    `ConfigError`. `on_reload` hear the settings a reload put in place (the server of
    `run --serve`). `hooks` hear how builds go (the metrics).
    """
    notifier = SystemdNotifier.from_environment()
    signals = _SignalPipe()
    daemon = Daemon(settings, hooks=hooks)
    finished = True
    # A process of weeks, many builds: each one's renames should not wait for the old
    # versions' blocks to be freed (`publish`), nor should the next build.
    release_in_background(True)
    try:
        daemon.start()
        foreground = _Foreground(daemon, notifier, reload, on_reload)
        received = foreground.loop(signals)
        if received is not None:
            name = received.name
            LOGGER.info("%s received: stopping", name, extra=lifecycle("stopping", signal=name))
    finally:
        notifier.stopping()
        finished = daemon.stop()
        if finished:
            release_in_background(False)  # every old version freed before the exit
        signals.close()
        notifier.close()
    LOGGER.info("stopped", extra=lifecycle("stopped"))
    if not finished:
        # The build thread cannot be interrupted and the interpreter would wait for it at
        # exit: leave now. Its writes are atomic and its catalog transaction rolls back.
        logging.shutdown()
        leave_workers_behind()
        os._exit(0)
    if daemon.cluster.fatal is not None:
        raise daemon.cluster.fatal  # this node's name was taken over: the CLI says it, exit 2
    return 0
