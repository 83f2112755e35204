"""Process trees for benches: the CPU a process and all its descendants used, read from /proc,
and a way to stop a child's whole process group.

CPU of a tree = the sum, over every process of the tree alive at the moment of the reading,
of its utime + stime + cutime + cstime (``/proc/PID/stat`` fields 14-17, all threads). A
descendant that exited and was reaped is in its parent's cutime/cstime (the kernel adds a
reaped child's own and reaped children's time to its parent's), so it is counted once; one
that is alive is counted by its own line. The difference of two readings is the CPU the tree
used between them, including the processes that started or ended meanwhile. Two blind spots,
both negligible when the readings are taken while the tree is quiet (as the benches do): an
orphan reparented away from the tree (its time goes to init), and a child reaped while the
reading walks /proc (read after its parent: lost; before: counted twice).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Snapshot:
    """Every process's parent and its CPU ticks (own and reaped children's), at one moment."""

    parent: dict[int, int]
    ticks: dict[int, int]

    def tree(self, root: int) -> list[int]:
        """`root` and its descendants alive in this snapshot (empty if `root` is gone)."""
        if root not in self.ticks:
            return []
        children: dict[int, list[int]] = {}
        for pid, ppid in self.parent.items():
            children.setdefault(ppid, []).append(pid)
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found

    def cpu(self, roots: Iterable[int]) -> float:
        """CPU seconds of the trees under `roots` (each process counted once)."""
        pids = {pid for root in roots for pid in self.tree(root)}
        return sum(self.ticks[pid] for pid in pids) / TICKS


def snapshot() -> Snapshot:
    """Read /proc/*/stat once."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        # The command name, in parentheses, may hold spaces and parentheses: split after it.
        rest = text[text.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(rest[1])
        ticks[pid] = sum(int(field) for field in rest[11:15])
    return Snapshot(parent, ticks)


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, without reaping it: while it is an unreaped zombie its
    pid, and so its process group's id, cannot be reused, and `stop_group` stays safe."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def stop_group(proc: subprocess.Popen[bytes], grace: float = 20.0) -> int | None:
    """Stop a child started with ``start_new_session=True``: SIGTERM to it, SIGKILL to its
    whole process group if it is still there after `grace` seconds, and SIGKILL to whatever
    of the group is left once it has exited (helpers that outlived it), before it is reaped
    (see `exited`). Its exit code (negative: the signal that ended it)."""
    if proc.returncode is not None:
        return proc.returncode  # reaped elsewhere: its group id is no longer ours to signal
    if not exited(proc):
        # os.kill, not send_signal, which polls and so could reap it (see `exited`).
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while not exited(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP reached the bench: unwind through every `finally`."""


def _interrupt(signum: int, _frame: object) -> None:
    # Once: a second Ctrl-C must not cut the clean-up short (it is bounded: each child gets
    # its grace period, then SIGKILL).
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def catch_stop_signals() -> None:
    """Turn the first SIGINT, SIGTERM or SIGHUP into `Interrupted`, and ignore later ones."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _interrupt)


def sleep_until(when: float) -> None:
    """Sleep until `time.perf_counter()` reaches `when` (at once if it has)."""
    delay = when - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
