"""The state lock: one writer per state folder (`BuildLock`), the probe that asks whether
some process holds it (`lock_held`), who holds it (`lock_holder`), and the fork hook that keeps
a worker from ever holding it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from pathlib import Path

from aggregator.errors import AggregatorError, CatalogError

# The build's logger: the lock's lines have always been the build's.
LOGGER = logging.getLogger("aggregator.build")


# Lock descriptors held by this process, closed in every forked child (see `_close_in_child`).
_HELD_LOCKS: set[int] = set()


def _close_in_child() -> None:
    """A forked child (a worker) must never hold the build lock: flock belongs to the open
    file description, which a fork shares, so a worker outliving a killed build would keep
    every later build out. Closing the child's copy drops only its reference; unlocking
    would drop the parent's lock too."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_in_child)


def lock_holder(state: Path) -> str:
    """Who holds the lock on `state`, as a user would name it (from the PID it wrote)."""
    try:
        pid = int((state / "lock").read_text(encoding="ascii").split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return "another aggregator process"
    words = [w.decode(errors="replace") for w in command if w]
    if "run" in words:
        return f"the daemon (`aggregator run`, PID {pid})"
    if "build" in words:
        return f"a build (`aggregator build`, PID {pid})"
    return f"another aggregator process (PID {pid})"


class BuildLock:
    """One writer per state folder: an exclusive `flock` on the state folder itself.

    The folder, not a file in it: deleting a lock file would let a second writer in beside
    the first. A folder deleted or replaced as a whole is noticed by `check`, before each
    build. `<state>/lock` only says which process holds the lock, for the message a second
    one gets.
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = state / "lock"
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None

    def acquire(self, timeout: float = 30.0) -> None:
        """Take the lock, waiting up to `timeout` seconds for another process to finish.

        Says at once, on the log, who holds it and that it waits.
        """
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            # Opened close-on-exec (Python's default): a spawned process never inherits it.
            fd = os.open(self.state, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise CatalogError(
                str(self.state), f"cannot use the state folder: {_os_reason(exc)}"
            ) from exc
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise CatalogError(
                        str(self.state), f"cannot lock the state folder: {_os_reason(exc)}"
                    ) from exc
                holder = lock_holder(self.state)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise AggregatorError(_held_message(self.state, holder, timeout)) from exc
                if not said:
                    LOGGER.warning(
                        "%s holds the lock on %s; waiting up to %g s for it",
                        holder,
                        self.state,
                        timeout,
                    )
                    said = True
                time.sleep(0.05)
        status = os.fstat(fd)
        self._fd = fd
        self._inode = (status.st_dev, status.st_ino)
        _HELD_LOCKS.add(fd)
        try:
            # Only informative: a full disk must not stop a build that holds the lock.
            self.path.write_text(f"{os.getpid()}\n", encoding="ascii")
        except OSError as exc:
            LOGGER.debug("cannot record the lock holder in %s: %s", self.path, exc)

    def check(self) -> None:
        """Raise if the state folder was deleted or replaced since the lock was taken (the
        lock would then no longer keep another writer out)."""
        try:
            status = self.state.stat()
        except OSError:
            status = None
        if status is None or (status.st_dev, status.st_ino) != self._inode:
            raise CatalogError(
                str(self.state),
                "the state folder was deleted or replaced while this process held it; "
                "restart this process (it builds everything again from the files)",
            )

    def release(self) -> None:
        """Let another process build."""
        if self._fd is not None:
            _HELD_LOCKS.discard(self._fd)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def lock_held(state: Path) -> bool | None:
    """Whether some process holds the lock on `state` (None: there is no such folder).

    Only probed: a shared, non-blocking attempt released at once, so it never delays a
    build.
    """
    try:
        fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock, if it got one
    return False


def _held_message(state: Path, holder: str, waited: float) -> str:
    if holder.startswith("the daemon"):
        advice = (
            "it keeps the feeds current by itself, so a manual build is not needed; "
            "to build by hand anyway, stop it first"
        )
    else:
        advice = "try again when it has finished, or wait longer with --wait SECONDS"
    return f"{holder} holds the lock on {state} (waited {waited:g} s); {advice}"


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full; free some space and try again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror}; check the folder's permissions (or the mount is read-only)"
    return exc.strerror or str(exc)
