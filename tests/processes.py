"""`python -m aggregator ARGS` as a real process: its stderr lines gathered on a thread, a
log line waited for, a port read from its "listening" line, a stop by SIGTERM; whether a
process is stopped (SIGSTOP)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from waiting import TIMEOUT, wait_for


class Aggregator:
    """One `aggregator` command running in `cwd` (so no config/aggregator.yaml of ours is
    found unless given)."""

    def __init__(self, args: Sequence[str], cwd: Path, prefix: Sequence[str] = ()) -> None:
        """`prefix`: a command that runs it (`setpriv …`, to drop root's capabilities)."""
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "aggregator", *args],
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
        stream.close()

    def wait_line(self, *needles: str) -> str:
        """The first log line holding every one of `needles` (fails if the process ends first)."""

        def found() -> str | None:
            return next((x for x in self.lines if all(n in x for n in needles)), None)

        wait_for(lambda: found() or self.proc.poll() is not None, f"a log line with {needles}")
        line = found()
        assert line is not None, "\n".join(self.lines)
        return line

    def port_in(self, pattern: str) -> int:
        """The port a log line gives in `pattern`'s one group (a server started on port 0)."""
        ports: list[int] = []

        def listening() -> bool:
            for line in self.lines:
                if match := re.search(pattern, line):
                    ports.append(int(match.group(1)))
                    return True
            return self.proc.poll() is not None

        wait_for(listening, f"a log line matching {pattern}")
        assert ports, "\n".join(self.lines)
        return ports[0]

    def stop(self, timeout: float = TIMEOUT) -> int:
        """SIGTERM, then its exit code (killed if it is still there after `timeout`)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join()


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """SIGTERM (after a SIGCONT: a paused process must hear it), then its exit code; killed,
    and None, if it is still there after `timeout`. None for no process; the code it had
    for one that already ended."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def stopped(pid: int) -> bool:
    """Whether process `pid` is stopped (SIGSTOP): state T in /proc; False once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")
