"""`aggregator ARGS` as a user runs it: a real process, in a folder of the test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m aggregator ARGS` in `cwd` (this checkout's package, not PYTHONPATH's);
    `env`: variables to set on top of the test's own."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
