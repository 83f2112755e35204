#!/usr/bin/env python3
"""Metrics cost: the drop-to-feed latency of ``aggregator run`` with and without
``--metrics-port`` (scraped every second, as Prometheus would at a short interval), in
alternating rounds of one run, so that both see the same machine and the same page cache.

    .venv/bin/python bench/metrics.py                 # 5,000 articles, 6 rounds of 40 drops
    .venv/bin/python bench/metrics.py --quick         # 1,000 articles, 4 rounds of 15 drops

Each round starts one daemon over the same catalog (filled by a cold build first), drops
`--drops` new articles one at a time and times each from just before the write until every
one of its feed files shows it (bench/daemon.py's latency phase, drops only), then stops it.
Rounds alternate: off, on, off, on, … Prints p50 and p95 for each side and the p95 ratio;
the goal is on <= 1.05 x off. Replaces the "Metrics cost" section of bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
import daemon as base  # bench/daemon.py: the corpus, the daemon, the polling

SECTION = "## Metrics cost"
GOAL = 1.05


class Scraper(threading.Thread):
    """GET /metrics every second until stopped; counts the scrapes."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/metrics")
            if conn.getresponse().read():
                self.scrapes += 1
            conn.close()


def one_round(
    folders: base.Folders, work: Path, targets: Sequence[base.Target], metrics: bool
) -> tuple[list[float], int]:
    extra = ["--metrics-port", "0"] if metrics else []
    log_path = work / "metrics-round.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            base.aggregator("run", folders, *extra),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
    scraper = None
    try:
        deadline = time.monotonic() + 120
        while "build finished" not in log_path.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise base.BenchError(f"the daemon did not start; see {log_path}")
            time.sleep(0.05)
        if metrics:
            match = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/", log_path.read_text())
            if match is None:
                raise base.BenchError(f"no metrics line; see {log_path}")
            scraper = Scraper(int(match.group(1)))
            scraper.start()
        times = []
        for target in targets:
            path = folders.input / target.name
            started = time.perf_counter()
            path.write_text(target.text, encoding="utf-8")
            done = base.wait_feeds(target.feeds, base._has(escape(target.url).encode()), 10)
            times.append(done - started)
            time.sleep(0.05)
            path.unlink()
            base.wait_feeds(target.feeds, base._lacks(escape(target.url).encode()), 10)
            time.sleep(0.05)
    finally:
        if scraper is not None:
            scraper.stopping.set()
        proc.terminate()
        proc.wait(timeout=15)
    return times, scraper.scrapes if scraper is not None else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5_000)
    parser.add_argument("--drops", type=int, default=40, help="drops per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds (half with metrics)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/aggregator-bench-metrics"))
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.drops, args.rounds = 1_000, 15, 4
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    corpus = base.generate(base.CORPUS, work / "corpus-base", args.count, 0)
    drops = base.generate(base.CORPUS, work / "corpus-drops", args.drops, 20_000)
    folders = base.Folders.fresh(work / "daemon")
    base.copy_all(corpus, folders.input)
    base.cold_build(folders, work)
    targets = [base.make_target(p, i, folders.output) for i, p in enumerate(drops)]
    sides: dict[bool, list[float]] = {False: [], True: []}
    scrapes = 0
    for index in range(args.rounds):
        metrics = index % 2 == 1
        times, scraped = one_round(folders, work, targets, metrics)
        sides[metrics] += times
        scrapes += scraped
        base.log(
            f"round {index + 1}/{args.rounds} (metrics {'on' if metrics else 'off'}): "
            f"p95 {base.percentile(times, 0.95) * 1000:.0f} ms"
        )
    rows = []
    for metrics in (False, True):
        values = sides[metrics]
        rows.append(
            f"| {'on, scraped every 1 s' if metrics else 'off'} | {len(values)} | "
            f"{base.percentile(values, 0.5) * 1000:.0f} ms | "
            f"{base.percentile(values, 0.95) * 1000:.0f} ms |"
        )
    ratio = base.percentile(sides[True], 0.95) / base.percentile(sides[False], 0.95)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    section = "\n".join(
        [
            f"{SECTION}\n",
            f"`bench/metrics.py --count {args.count} --drops {args.drops} --rounds "
            f"{args.rounds}`, {when}, {base.machine()}: drop → every feed file shows it, "
            f"rounds alternating off/on in one run ({scrapes} scrapes).\n",
            "| metrics | drops | p50 | p95 |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            "",
            f"p95 on / off: **{ratio:.3f}** (goal ≤ {GOAL}: {base._mark(ratio <= GOAL)}).",
        ]
    )
    print(section)
    if not args.no_readme:
        base.write_readme_section(SECTION, section + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
