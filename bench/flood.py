#!/usr/bin/env python3
"""Flood benchmark: how soon the daemon publishes a flood that overflows inotify's queue.

Run it from the repository root with the project's virtual environment::

    .venv/bin/python bench/flood.py                  # 30,000 files, the kernel's queue as is
    .venv/bin/python bench/flood.py --queue 1024     # a smaller queue (root): more overflows

The case of issue 6: ``aggregator run`` is started over an empty input folder and, as soon
as it logs that it watches, three ``cp`` processes copy ``--count`` (30,000) article files
(``tests/corpus.py``, three batches) into it at once, during its first scan.
The kernel's inotify queue (``fs.inotify.max_queued_events``, 16,384 by default) overflows
and events are lost. The clock runs from the end of the copies until the daemon logs a
build whose published total includes every copied file; the reconcile scan is set to an
hour, so only the overflow's full scan can bring the lost files in (before it, they waited
for the 300 s reconcile).

Prints one Markdown table row; the figures are copied into bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GEN_CORPUS = REPO_ROOT / "tests" / "corpus.py"
BASE_URL = "https://feeds.example.org/"
QUEUE_KNOB = Path("/proc/sys/fs/inotify/max_queued_events")
_FINISHED_RE = re.compile(r"build finished in ([\d.]+) s: \d+ read, (\d+) published")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def batches(workdir: Path, count: int) -> list[Path]:
    """Three folders of tests/corpus.py files, a third of `count` each (reused when present)."""
    folders = []
    size = count // 3
    for n in range(3):
        dest = workdir / f"source{n}"
        marker = dest / ".corpus.json"
        wanted = {"count": size, "start": n * size}
        if not (marker.is_file() and json.loads(marker.read_text()) == wanted):
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            command = [sys.executable, str(GEN_CORPUS), str(dest), "--count", str(size)]
            subprocess.run([*command, "--quiet", "--start-index", str(n * size)], check=True)
            marker.write_text(json.dumps(wanted))
        folders.append(dest)
    return folders


def published(folders: list[Path]) -> int:
    return sum(
        "\npublished: true\n" in p.read_text(encoding="utf-8")
        for folder in folders
        for p in folder.glob("*.txt")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--queue", type=int, help="max_queued_events while the daemon starts")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/aggregator-bench-flood"))
    args = parser.parse_args()
    sources = batches(args.workdir, args.count)
    expected = published(sources)
    root = args.workdir / "run"
    shutil.rmtree(root, ignore_errors=True)
    (root / "in").mkdir(parents=True)
    logfile = root / "daemon.log"
    command = [sys.executable, "-m", "aggregator", "run", "--log-level", "DEBUG"]
    command += ["--input", str(root / "in"), "--output", str(root / "out")]
    command += ["--state", str(root / "state"), "--base-url", BASE_URL]
    previous = QUEUE_KNOB.read_text() if args.queue else None
    with logfile.open("w") as out:
        if args.queue:
            QUEUE_KNOB.write_text(str(args.queue))
        daemon = subprocess.Popen(command, cwd=root, stderr=out, stdout=subprocess.DEVNULL)
        try:
            while "watching" not in logfile.read_text():
                time.sleep(0.01)
            if previous is not None:
                QUEUE_KNOB.write_text(previous)
            log(f"daemon watching; copying {args.count} files with three cp at once")
            started = time.monotonic()
            copies = [
                subprocess.Popen(["sh", "-c", f'cp "{source}"/*.txt "{root / "in"}"/'])
                for source in sources
            ]
            for copy in copies:
                copy.wait()
            copied = time.monotonic()
            log(f"copied in {copied - started:.2f} s; waiting for {expected} published")
            while True:
                totals = [int(m[1]) for m in _FINISHED_RE.findall(logfile.read_text())]
                if totals and totals[-1] >= expected:
                    break
                if time.monotonic() - copied > 600:
                    raise SystemExit("not converged within 600 s")
                time.sleep(0.05)
            converged = time.monotonic()
        finally:
            if previous is not None:
                QUEUE_KNOB.write_text(previous)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    text = logfile.read_text()
    ours = text.count("inotify queue overflowed")
    theirs = text.count("Inotify queue overflowed; filesystem events were lost")
    queue = args.queue or int(QUEUE_KNOB.read_text())
    print(
        f"| {args.count:,} files, 3 parallel cp, max_queued_events {queue:,} | "
        f"{theirs} overflow(s) ({ours} logged by us) | copies {copied - started:.2f} s | "
        f"all {expected:,} published {converged - copied:.2f} s after the copies ended |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
