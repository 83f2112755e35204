#!/usr/bin/env python3
"""Cluster benchmark: several `aggregator run` nodes on one PostgreSQL catalog.

Run it from the repository root with the project's virtual environment (PostgreSQL's
binaries installed; the server is a throw-away one in a temporary folder, fsync off)::

    .venv/bin/python bench/cluster.py            # 10,000 articles, 3 nodes, 50 drops
    .venv/bin/python bench/cluster.py --quick    # 2,000 articles, 20 drops

Phases:

1. **Cold build**, PostgreSQL vs SQLite: `aggregator build` of ``--count`` (10,000) articles
   from ``tests/corpus.py`` into empty folders, alternating the two backends
   ``--repeat`` (3) times; medians and their ratio. The two outputs must be byte-identical.
2. **Drop → feeds on every node**: the same articles spread over ``--nodes`` (3) input
   folders, one `aggregator run` per node (own input, output and state), all on one
   database. Once every node has published them all, ``--drops`` (50) times: a new article
   file (dated a second ago: the newest, so it enters the `all` feed, yet not in the future,
   which would embargo it) is written into one node's folder, in turn; the clock runs from
   just before the write until every node's ``all.rss.xml`` lists its webUrl (polled every
   2 ms). p50 and p95.

Prints a Markdown table, and replaces the "Cluster" section of ``bench/README.md``
(``--no-readme`` to skip). Targets: p95 ≤ 0.5 s; cold build on PostgreSQL ≤ 1.5 x SQLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from pgserver import PostgresServer, binaries  # noqa: E402

GEN_CORPUS = REPO_ROOT / "tests" / "corpus.py"
WORKDIR = Path("/tmp/aggregator-bench-cluster")
BASE_URL = "https://feeds.example.org/"
README = REPO_ROOT / "bench" / "README.md"
SECTION = "## Cluster"
P95_TARGET = 0.5
RATIO_TARGET = 1.5
AGGREGATOR = [sys.executable, "-m", "aggregator"]

_DATE_RE = re.compile(r"^publishedDateTime: \S+$", re.MULTILINE)
_PUBLISHED_RE = re.compile(r"^published: \S+$", re.MULTILINE)
_URL_RE = re.compile(r'^webUrl: "(.*)"$', re.MULTILINE)
_FINISHED_RE = re.compile(r"build finished in [\d.]+ s: \d+ read, (\d+) published")


class BenchError(Exception):
    """The benchmark cannot go on."""


def generate(dest: Path, count: int, start: int = 0) -> list[Path]:
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(
        [sys.executable, str(GEN_CORPUS), str(dest), "--count", str(count),
         "--start-index", str(start)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return sorted(p for p in dest.rglob("*") if p.is_file())


def cold_build(corpus: Path, out: Path, extra: list[str]) -> float:
    for folder in (out, out.with_name(out.name + "-state")):
        shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [*AGGREGATOR, "build", "--input", str(corpus), "--output", str(out),
         "--state", str(out.with_name(out.name + "-state")), "--base-url", BASE_URL, *extra],
        check=True, cwd=WORKDIR, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    return files(a) == files(b)


class Node:
    """One `aggregator run` process."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.root = WORKDIR / "nodes" / name
        self.input, self.output = self.root / "in", self.root / "out"
        self.log_path = self.root / "log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, url: str) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*AGGREGATOR, "run", "--input", str(self.input), "--output", str(self.output),
                 "--state", str(self.root / "state"), "--base-url", BASE_URL,
                 "--catalog", url, "--node", self.name],
                cwd=WORKDIR, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "MALLOC_ARENA_MAX": "2"},
            )  # fmt: skip

    def published(self) -> int | None:
        found = _FINISHED_RE.findall(self.log_path.read_text(errors="replace"))
        return int(found[-1]) if found else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def newest_article(path: Path) -> tuple[str, str]:
    """(text, webUrl) of a corpus file made published and newest of all (dated a second ago:
    newer than the corpus, and not in the future, which would embargo it)."""
    text = path.read_text(encoding="utf-8")
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    text = _DATE_RE.sub(f"publishedDateTime: {when:%Y-%m-%dT%H:%M:%SZ}", text, count=1)
    text = _PUBLISHED_RE.sub("published: true", text, count=1)
    match = _URL_RE.search(text)
    if match is None:
        raise BenchError(f"no webUrl in {path}")
    return text, match.group(1)


def wait(condition: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(args: argparse.Namespace) -> dict[str, float | int]:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    bin_dir = binaries()
    if bin_dir is None:
        raise BenchError("PostgreSQL's binaries (initdb, pg_ctl) are not installed")
    print(f"generating {args.count:,} articles ...", flush=True)
    corpus_dir = WORKDIR / "corpus"
    corpus = generate(corpus_dir, args.count)
    drops = generate(WORKDIR / "drops", args.drops, start=args.count + 10_000)
    server = PostgresServer(bin_dir)
    server.start()
    nodes: list[Node] = []
    try:
        sqlite_times, pg_times = [], []
        for round_ in range(args.repeat):
            sqlite_times.append(cold_build(corpus_dir, WORKDIR / "out-sqlite", []))
            url = server.create_database()
            pg_times.append(
                cold_build(corpus_dir, WORKDIR / "out-pg", ["--catalog", url, "--node", "n1"])
            )
            server.drop_database(url)
            print(f"cold build {round_ + 1}: SQLite {sqlite_times[-1]:.2f} s, "
                  f"PostgreSQL {pg_times[-1]:.2f} s", flush=True)  # fmt: skip
        if not same_tree(WORKDIR / "out-sqlite", WORKDIR / "out-pg"):
            raise BenchError("the PostgreSQL build's output differs from the SQLite one")
        published = int(
            re.findall(r"(\d+) published", subprocess.run(
                [*AGGREGATOR, "build", "--input", str(corpus_dir), "--output",
                 str(WORKDIR / "out-sqlite"), "--state", str(WORKDIR / "out-sqlite-state"),
                 "--base-url", BASE_URL],
                check=True, cwd=WORKDIR, capture_output=True, text=True).stdout)[-1]
        )  # fmt: skip

        url = server.create_database()
        nodes = [Node(f"n{i + 1}", url) for i in range(args.nodes)]
        for node in nodes:
            node.input.mkdir(parents=True)
        for index, path in enumerate(corpus):
            shutil.copy2(path, nodes[index % len(nodes)].input / path.name)
        started = time.perf_counter()
        for node in nodes:
            node.start(url)
        wait(lambda: all(n.published() == published for n in nodes), "the nodes' first builds",
             600)  # fmt: skip
        print(f"{args.nodes} nodes published {published:,} articles in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        time.sleep(2.0)  # let the last rings settle before timing single drops

        latencies = []
        for index, path in enumerate(drops):
            text, web_url = newest_article(path)
            node = nodes[index % len(nodes)]
            needle = web_url.encode()
            feeds = [n.output / "all.rss.xml" for n in nodes]
            begun = time.perf_counter()
            (node.input / path.name).write_text(text, encoding="utf-8")
            deadline = begun + 30
            while not all(needle in f.read_bytes() for f in feeds):
                if time.perf_counter() > deadline:
                    raise BenchError(f"drop {index} never reached every node")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - begun)
        return {
            "count": args.count,
            "nodes": args.nodes,
            "drops": len(latencies),
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "sqlite": statistics.median(sqlite_times),
            "postgres": statistics.median(pg_times),
        }
    finally:
        for node in nodes:
            node.stop()
        server.destroy()


def table(r: dict[str, float | int]) -> str:
    ratio = r["postgres"] / r["sqlite"]
    p95_ok = "✅" if r["p95"] <= P95_TARGET else "❌"
    ratio_ok = "✅" if ratio <= RATIO_TARGET else "❌"
    return "\n".join([
        "| measure | target | result |",
        "|---|---|---|",
        f"| drop → `all` feed on all {r['nodes']} nodes, p50 | | {r['p50']:.3f} s |",
        f"| drop → `all` feed on all {r['nodes']} nodes, p95 | ≤ {P95_TARGET} s "
        f"| {r['p95']:.3f} s {p95_ok} |",
        f"| drop → `all` feed on all {r['nodes']} nodes, max | | {r['max']:.3f} s |",
        f"| cold build {r['count']:,}, SQLite (median) | | {r['sqlite']:.2f} s |",
        f"| cold build {r['count']:,}, PostgreSQL (median) | | {r['postgres']:.2f} s |",
        f"| PostgreSQL / SQLite | ≤ {RATIO_TARGET}x | {ratio:.2f}x {ratio_ok} |",
    ])  # fmt: skip


def update_readme(r: dict[str, float | int], args: argparse.Namespace) -> None:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count()
    section = "\n".join([
        SECTION,
        "",
        "`bench/cluster.py` runs several `aggregator run` nodes on one PostgreSQL catalog (a",
        "throw-away local server, fsync off) and measures how soon a file dropped on one node",
        "shows in the `all` feed of every node, and the cold build on PostgreSQL against SQLite",
        "(see the script's docstring):",
        "",
        "    .venv/bin/python bench/cluster.py",
        "",
        f"Last run: {when}, {platform.machine()}, {cpus} CPUs (shared with other work), Python "
        f"{platform.python_version()};\n{r['count']:,} articles spread over {r['nodes']} nodes, "
        f"{r['drops']} drops, {args.repeat} cold builds of each backend alternating.",
        "",
        table(r),
        "",
    ])  # fmt: skip
    text = README.read_text(encoding="utf-8")
    start = text.find(f"\n{SECTION}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + ("" if end == -1 else text[end:])
    README.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--drops", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 articles, 20 drops")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.count, args.drops, args.repeat = 2000, 20, 1
    try:
        result = run(args)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"cluster bench: {exc}", file=sys.stderr)
        return 1
    print(table(result))
    if not args.no_readme and not args.quick:
        update_readme(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
