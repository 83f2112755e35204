"""What to tell an operator when the kernel refuses inotify (which limit, and how to raise it
for good), and which of watchdog's inotify log lines are noise. Pure (no watchdog import), so
the watcher and its tests share one wording."""

from __future__ import annotations

import errno
import logging

# The kernel's two ways of refusing inotify: too many watches, too many instances.
_INOTIFY_LIMITS = {errno.ENOSPC: "max_user_watches", errno.EMFILE: "max_user_instances"}


def inotify_limit_message(exc: OSError) -> str | None:
    """The explanation for an inotify limit error, or None if `exc` is not one."""
    setting = _INOTIFY_LIMITS.get(exc.errno or 0)
    if setting is None:
        return None
    value = 524288 if setting == "max_user_watches" else 1024
    return (
        f"the kernel refused an inotify watch ({exc.strerror or exc}); falling back to "
        f"polling. Raise the limit with `sysctl fs.inotify.{setting}={value}` and keep it "
        f"across reboots with a file in /etc/sysctl.d/ (e.g. "
        f"/etc/sysctl.d/90-inotify.conf containing `fs.inotify.{setting}={value}`)"
    )


class StopRace(logging.Filter):
    """Drops watchdog's "queue_events() called when the thread is inactive": it logs that at
    ERROR when an emitter is stopped while it is reading events, which every stop of ours may
    meet (the roots' re-attach, the daemon's stop). Nothing is lost by it; the line would only
    put an error into a clean stop's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()
