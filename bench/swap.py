#!/usr/bin/env python3
"""Swap benchmark: how soon a drop is published after the input folder is swapped under
``aggregator run``, compared with a normal drop measured in the same run.

Run it from the repository root with the project's virtual environment::

    .venv/bin/python bench/swap.py                  # 5,000 articles, 10 rounds
    .venv/bin/python bench/swap.py --quick          # 1,000 articles, 3 rounds

One daemon (``python -m aggregator run``, default settings: debounce 0.2 s, ceiling 2 s,
reconcile every 300 s) over ``--count`` articles of ``tests/corpus.py``, built cold first.
Each round, alternately:

- **normal drop**: a new article (dated newest, so it enters the ``all`` feed) is written into
  the input folder; the clock runs from just before the write until ``all.atom.xml`` on disk
  lists its URL (polled every 2 ms);
- **swap drop**: a copy of the input folder (``shutil.copytree``: mtimes kept, as ``rsync -a``
  or ``cp -a`` keep them) is made beside it with one new article, then the deploy swap
  ``mv in in.old; mv in.new in`` (two renames); the clock runs from just before the first
  rename until ``all.atom.xml`` lists the new article. The copy is made before the clock
  starts: the deploy's own copying is not the daemon's time.

Before the roots were watched (issue 15), the swap drop waited for the reconcile: up to 300 s,
and after the swap every later drop too, until a restart. Prints a Markdown table and writes
``bench/results/swap-<date>.json`` (not in git).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT / "tests" / "corpus.py"
BASE_URL = "https://feeds.example.org/"
TIMEOUT = 120.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def article(index: int) -> tuple[str, str]:
    """(url, file text) of a new article dated newer than any of the corpus."""
    url = f"https://swap.example.com/{index}"
    date = dt.datetime(2025, 6, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=index)
    text = (
        "---\n"
        f'title: "Swap bench {index}"\n'
        'excerpt: "A drop."\n'
        f"webUrl: {url}\n"
        "type: article\n"
        "published: true\n"
        f"publishedDateTime: {date:%Y-%m-%dT%H:%M:%SZ}\n"
        "provider: {name: Bench, domain: bench.example.com}\n"
        "topics: [Bench]\n"
        "---\n"
    )
    return url, text


def wait_listed(feed: Path, url: str) -> float:
    """Poll the feed file until it lists `url`; the time it did."""
    needle = url.encode()
    deadline = time.perf_counter() + TIMEOUT
    while True:
        try:
            if needle in feed.read_bytes():
                return time.perf_counter()
        except FileNotFoundError:
            pass
        if time.perf_counter() > deadline:
            raise SystemExit(f"bench: {url} not in {feed} after {TIMEOUT:g} s")
        time.sleep(0.002)


def folder_flags(root: Path) -> list[str]:
    return [
        *("--input", str(root / "in"), "--output", str(root / "out")),
        *("--state", str(root / "state"), "--base-url", BASE_URL),
    ]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="articles (default 5,000)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each (default 10)")
    parser.add_argument("--quick", action="store_true", help="1,000 articles, 3 rounds")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/aggregator-bench-swap"))
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.rounds = 1000, 3
    root: Path = args.workdir
    if root.exists():
        shutil.rmtree(root)
    (root / "in").mkdir(parents=True)
    log(f"corpus: {args.count} articles")
    subprocess.run(
        [sys.executable, str(CORPUS), str(root / "in"), "--count", str(args.count), "--quiet"],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(
        [sys.executable, "-m", "aggregator", "build", *folder_flags(root)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    log("cold build done; starting the daemon")
    daemon_log = (root / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", *folder_flags(root)],
        cwd=root,
        env=env,
        stderr=daemon_log,
        stdout=subprocess.DEVNULL,
    )
    feed = root / "out" / "all.atom.xml"
    normal: list[float] = []
    swapped: list[float] = []
    try:
        url, text = article(0)
        started = time.perf_counter()
        (root / "in" / "warm-up.txt").write_text(text, encoding="utf-8")
        wait_listed(feed, url)  # the daemon's first scan is done and it sees drops
        for index in range(1, args.rounds + 1):
            url, text = article(2 * index)
            started = time.perf_counter()
            (root / "in" / f"drop-{index}.txt").write_text(text, encoding="utf-8")
            normal.append(wait_listed(feed, url) - started)
            url, text = article(2 * index + 1)
            new, old = root / "in.new", root / "in.old"
            shutil.copytree(root / "in", new)
            (new / f"swap-{index}.txt").write_text(text, encoding="utf-8")
            started = time.perf_counter()
            os.rename(root / "in", old)
            os.rename(new, root / "in")
            swapped.append(wait_listed(feed, url) - started)
            shutil.rmtree(old)
            log(f"round {index}: normal {normal[-1]:.3f} s, after a swap {swapped[-1]:.3f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        daemon_log.close()
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "count": args.count,
        "rounds": args.rounds,
        "normal": normal,
        "swap": swapped,
    }
    results = REPO_ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"swap-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result))
    n50, s50 = statistics.median(normal), statistics.median(swapped)
    n95, s95 = percentile(normal, 0.95), percentile(swapped, 0.95)
    print(f"{args.count:,} articles, {args.rounds} rounds, {result['machine']}\n")
    print("| drop | p50 | p95 | max |")
    print("| --- | --- | --- | --- |")
    print(f"| normal | {n50:.3f} s | {n95:.3f} s | {max(normal):.3f} s |")
    print(f"| after an input-folder swap | {s50:.3f} s | {s95:.3f} s | {max(swapped):.3f} s |")
    print(f"\nratio swap / normal: p50 {s50 / n50:.2f}x, p95 {s95 / n95:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
