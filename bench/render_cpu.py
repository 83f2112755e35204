#!/usr/bin/env python3
"""Cluster CPU benchmark: what N `aggregator run` nodes spend on a series of drops, this tree
against a baseline commit (render on every node), alternated in one run.

    .venv/bin/python bench/render_cpu.py --baseline main --nodes 3 6 --drops 20 --rounds 2

For each node count and round, the baseline and this tree in turn: a throw-away PostgreSQL
database, ``--seed`` (300) articles spread over the nodes' folders, the nodes started and
converged; then ``--drops`` article files, one at a time into the nodes in turn, each
waited for until every node's ``all.rss.xml`` lists it. The figure is the CPU time (user +
system, from /proc, the node processes with their workers, and the database server apart)
spent from the first drop until the last one is everywhere. Every node's outputs must be
byte-identical at the end. Prints one line per run and the medians' ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from articlefiles import write_article  # noqa: E402
from corpus import write_corpus  # noqa: E402
from pgserver import PostgresServer, binaries  # noqa: E402

BASE_URL = "https://feeds.example.org/"
DEADLINE_SECONDS = 300.0


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (living, and those it waited for)."""
    children: dict[int, list[tuple[int, list[str]]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append((int(entry), fields))
    own = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in own[11:15])
    todo = [pid]
    while todo:
        for child, fields in children.get(todo.pop(), []):
            ticks += sum(int(x) for x in fields[11:15])
            todo.append(child)
    return ticks / os.sysconf("SC_CLK_TCK")


def all_feed(folder: Path) -> bytes:
    try:
        return (folder / "out" / "all.rss.xml").read_bytes()
    except FileNotFoundError:
        return b""


def outputs(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def run(
    code: Path, server: PostgresServer, root: Path, *, nodes: int, drops: int, seed: int
) -> tuple[float, float]:
    """(the nodes' CPU seconds, the database's) over the drops."""
    url = server.create_database()
    staged = root / "staged"
    files = write_corpus(staged, seed)
    folders = [root / f"n{i}" for i in range(nodes)]
    for index, path in enumerate(files):
        target = folders[index % nodes] / "in" / path.relative_to(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
    env = {**os.environ, "PYTHONPATH": str(code)}
    procs = []
    for index, folder in enumerate(folders):
        (folder / "in").mkdir(parents=True, exist_ok=True)
        with (folder / "log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable, "-m", "aggregator", "run", "--input", str(folder / "in"),
                        "--output", str(folder / "out"), "--state", str(folder / "state"),
                        "--base-url", BASE_URL, "--catalog", url, "--node", f"n{index}",
                    ],
                    cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env,
                )
            )  # fmt: skip
    try:

        def converged() -> bool:
            first = all_feed(folders[0])
            return bool(first) and all(all_feed(f) == first for f in folders)

        wait(converged, "the nodes to converge")
        time.sleep(3)  # the trailing builds of the start
        nodes_before = sum(tree_cpu(p.pid) for p in procs)
        database_before = tree_cpu(server.pid() or 0)
        for index in range(drops):
            url_of = f"https://example.com/drop{index}"
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
            write_article(folders[index % nodes] / "in", f"drop{index}.md", url_of, date=when)
            wait(lambda u=url_of: all(u.encode() in all_feed(f) for f in folders), url_of)
        time.sleep(2)  # the copies after the last drop's own
        spent = sum(tree_cpu(p.pid) for p in procs) - nodes_before
        database = tree_cpu(server.pid() or 0) - database_before
        wait(lambda: len({tuple(outputs(f / "out").items()) for f in folders}) == 1, "bytes")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        server.drop_database(url)
    return spent, database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="the commit to compare with")
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    found = binaries()
    if found is None:
        raise SystemExit("PostgreSQL's binaries (initdb, pg_ctl) are not installed")
    work = Path(tempfile.mkdtemp(prefix="aggregator-bench-render-"))
    baseline = work / "baseline"
    archive = subprocess.run(
        ["git", "archive", args.baseline, "aggregator"], cwd=REPO_ROOT, check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    baseline.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(baseline, filter="data")
    codes = {args.baseline: baseline, "this tree": REPO_ROOT}
    server = PostgresServer(found)
    server.start()
    try:
        for nodes in args.nodes:
            spent: dict[str, list[float]] = {name: [] for name in codes}
            for round_ in range(args.rounds):
                for name, code in codes.items():
                    root = work / f"{nodes}-{round_}-{name.replace(' ', '-')}"
                    cpu, database = run(
                        code, server, root, nodes=nodes, drops=args.drops, seed=args.seed
                    )
                    spent[name].append(cpu + database)
                    load = os.getloadavg()[0]
                    print(
                        f"{nodes} nodes, round {round_ + 1}, {name}: nodes {cpu:.1f} CPU-s + "
                        f"database {database:.1f} CPU-s for {args.drops} drops (load {load:.1f})",
                        flush=True,
                    )
                    shutil.rmtree(root, ignore_errors=True)
            ours, theirs = (statistics.median(spent[n]) for n in ("this tree", args.baseline))
            print(f"{nodes} nodes: this tree / {args.baseline} = {ours / theirs:.2f} (medians)")
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
