#!/usr/bin/env python3
"""Hostile peers: slow clients against `aggregator serve`, dead hubs against `aggregator build`.

Run from the repository root with the project's virtual environment::

    .venv/bin/python bench/hostile.py                       # both parts
    .venv/bin/python bench/hostile.py --slow 500 1000 2000  # slow-client counts
    .venv/bin/python bench/hostile.py --nofile 1024         # the server's descriptor limit

1. Slow clients. `aggregator serve` runs in a child process under `--nofile` descriptors
   (1,024 by default, the usual soft limit). For each count N, N slowloris connections
   (tests/slowclients.py: one byte of a never-ending request head per second each, and a new
   connection whenever the server closes one) run for `--settle` seconds; then a normal client
   makes `--requests` GETs of /all.rss.xml, each on a new connection, and the script reports
   the median and the slowest, the connections the server holds (its cap) and whether the
   server logged anything per connection.
2. Dead hubs. `aggregator build` on the seeds plus `--feeds` topic feeds (three pings each)
   with one hub that never answers (accepts, or leaves the SYN unanswered) and one that answers
   one byte per second; the wall time of the whole command, and the pings left owed.

Prints a Markdown table per part; figures go in bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from articlefiles import write_article  # noqa: E402
from slowclients import SlowClients, allow_descriptors, silent_hub, trickling_hub  # noqa: E402


def limited(descriptors: int, *command: str) -> list[str]:
    limit = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({descriptors}, {descriptors})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", limit, *command]


def site(root: Path, feeds: int = 0) -> Path:
    shutil.copytree(ROOT / "seeds", root / "in")
    for i in range(feeds):
        write_article(root / "in", f"p{i}.txt", f"https://p{i}.example.com/", topics=[f"T{i}"])
    return root


def build(root: Path, *hubs: str) -> subprocess.CompletedProcess[str]:
    config = root / "aggregator.yaml"
    listed = "".join(f"\n    - {h}" for h in hubs) if hubs else " []"
    config.write_text(
        f"input: {root / 'in'}\noutput: {root / 'out'}\nstate: {root / 'state'}\n"
        f"base_url: https://feeds.example.org/\nwebsub:\n  hubs:{listed}\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "build", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def get_once(port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/all.rss.xml")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    finally:
        connection.close()
    return time.perf_counter() - started


def slow_clients(counts: list[int], nofile: int, settle: float, requests: int) -> None:
    if not allow_descriptors(max(counts)):
        sys.exit(f"this process cannot open {max(counts)} sockets (hard descriptor limit)")
    with tempfile.TemporaryDirectory() as tmp:
        root = site(Path(tmp))
        if build(root).returncode != 0:
            sys.exit("the build failed")
        server = subprocess.Popen(
            limited(
                nofile,
                *(sys.executable, "-m", "aggregator", "serve", "--port", "0"),
                *("--output", str(root / "out")),
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []

        def read() -> None:
            assert server.stderr is not None
            for line in server.stderr:
                lines.append(line.rstrip("\n"))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while not any("serving" in x for x in lines):
                time.sleep(0.05)
            line = next(x for x in lines if "serving" in x)
            port = int(re.search(r":(\d+)/", line)[1])  # type: ignore[index]
            cap = re.search(r"at most (\d+) connections", line)
            print(f"\n## Slow clients (descriptor limit {nofile}, cap {cap and cap[1]})\n")
            print("| slow clients | reader GET median | slowest | under 1 s | log lines |")
            print("|---|---|---|---|---|")
            for count in counts:
                before = len(lines)
                with SlowClients(port, count, interval=1.0):
                    time.sleep(settle)
                    times = [get_once(port) for _ in range(requests)]
                under = sum(t < 1.0 for t in times)
                print(
                    f"| {count} | {statistics.median(times) * 1000:.1f} ms | "
                    f"{max(times) * 1000:.1f} ms | {under}/{requests} | {len(lines) - before} |",
                    flush=True,
                )
                time.sleep(11)  # the header deadline: the next count starts from a calm server
        finally:
            server.terminate()
            server.wait(30)


def dead_hubs(feeds: int) -> None:
    print(f"\n## A build with a dead hub (seeds + {feeds} topic feeds)\n")
    print("| hub | build wall time | pings owed after |")
    print("|---|---|---|")
    hubs = (("none (baseline)", None), ("never answers", silent_hub), ("1 byte/s", trickling_hub))
    for name, hub_of in hubs:
        with tempfile.TemporaryDirectory() as tmp, (hub_of or contextlib.nullcontext)() as hub:
            root = site(Path(tmp), feeds)
            started = time.perf_counter()
            done = build(root, *([hub] if hub else []))
            seconds = time.perf_counter() - started
            owed = re.search(r"WebSub: \d+ ping\(s\) sent, (\d+) failed", done.stdout)
            print(f"| {name} | {seconds:.1f} s | {owed and owed[1]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, nargs="+", default=[100, 500, 900, 2000])
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--feeds", type=int, default=240)
    parser.add_argument("--only", choices=["slow", "hubs"])
    args = parser.parse_args()
    if args.only != "hubs":
        slow_clients(args.slow, args.nofile, args.settle, args.requests)
    if args.only != "slow":
        dead_hubs(args.feeds)


if __name__ == "__main__":
    main()
