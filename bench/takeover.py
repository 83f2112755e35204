#!/usr/bin/env python3
"""Leader takeover benchmark: how long a cluster runs without a leader when its leader is
paused (SIGSTOP) or silently partitioned from the database.

Run it from the repository root with the project's virtual environment, as root for the
partition (a network namespace; PostgreSQL's binaries installed; the server is a throw-away
one in a temporary folder)::

    .venv/bin/python bench/takeover.py               # 7 rounds of each
    .venv/bin/python bench/takeover.py --rounds 3

Each round, on a database of its own: node n1 starts (inside the namespace for the
partition) and leads; n2 starts and finishes its first build; after a random part of a
second (so that the fault lands anywhere in the leader's renewal cycle) n1 is paused
(SIGSTOP), or every packet between its namespace and the host is dropped (iptables DROP:
nothing refused, nothing answered). The clock runs from just before the fault to the time
stamp of n2's `leader: n2 took over from n1` line (both are this machine's wall clock, to the
millisecond). The partition is kept until n1 logs that it lost its session too (its
renewal on the dead link failed: how soon the lease session's TCP gives up). Then n1 is
resumed, or the partition healed, and the time until n1 logs that it lost its lease is
measured too.

Prints a Markdown table of p50 and max per fault, and the load average. The design bound is
the lease plus the followers' poll (3 s + 1 s = 4 s); the target, 5 s. There is no baseline
to alternate with: before the lease, a paused leader was never replaced, a partitioned one
only after the TCP timeouts (about 30 s).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from netns import Namespace, namespace  # noqa: E402
from pgserver import PostgresServer, running_server  # noqa: E402

WORKDIR = Path("/tmp/aggregator-bench-takeover")
BASE_URL = "https://feeds.example.org/"
TARGET = 5.0
WAIT = 60.0


class BenchError(Exception):
    """The benchmark cannot go on."""


class Node:
    """One `aggregator run` process; `prefix` runs it in a namespace."""

    def __init__(self, root: Path, name: str, url: str, prefix: list[str]) -> None:
        self.name = name
        folder = root / name
        (folder / "in").mkdir(parents=True)
        self.log = folder / "log"
        args = [
            *prefix, sys.executable, "-m", "aggregator", "run",
            "--input", str(folder / "in"), "--output", str(folder / "out"),
            "--state", str(folder / "state"), "--base-url", BASE_URL,
            "--catalog", url, "--node", name,
        ]  # fmt: skip
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(args, cwd=folder, stdout=sink, stderr=subprocess.STDOUT)

    def line(self, text: str) -> str | None:
        for line in self.log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_line(node: Node, text: str) -> float:
    """The wall-clock time stamp of `node`'s first log line containing `text`."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = node.line(text)
        if found is not None:
            stamp = datetime.strptime(found[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
        if node.proc.poll() is not None:
            raise BenchError(f"{node.name} exited {node.proc.returncode}; see {node.log}")
        time.sleep(0.005)
    raise BenchError(f"{node.name} never logged {text!r} within {WAIT} s; see {node.log}")


Round = tuple[float, float, float | None]


def one_round(server: PostgresServer, root: Path, ns: Namespace | None, fault: str) -> Round:
    """Seconds from the fault to n2's takeover, from the resume/heal to n1 stepping down,
    and (partition only) from the fault to n1's renewal failing on the dead link."""
    url = server.create_database()
    n1_url = url if ns is None else url.replace("127.0.0.1", ns.host)
    prefix = [] if ns is None else ns.run
    nodes: list[Node] = []
    try:
        n1 = Node(root, "n1", n1_url, prefix)
        nodes.append(n1)
        wait_line(n1, "leader: n1 took over")
        n2 = Node(root, "n2", url, [])
        nodes.append(n2)
        wait_line(n2, "build finished")
        time.sleep(1.0 + random.random())
        start: Callable[[], None]
        end: Callable[[], None]
        if fault == "pause":
            start = lambda: n1.proc.send_signal(signal.SIGSTOP)  # noqa: E731
            end = lambda: n1.proc.send_signal(signal.SIGCONT)  # noqa: E731
        else:
            assert ns is not None
            start, end = ns.partition, ns.heal
        began = time.time()
        start()
        cut: float | None = None
        try:
            took = wait_line(n2, "leader: n2 took over from n1") - began
            if fault == "partition":  # kept until the kernel gave up on the renewal
                cut = wait_line(n1, "leader: n1 lost its session") - began
        finally:
            ended = time.time()
            end()
        stepped = wait_line(n1, "leader: n1 lost its lease to n2") - ended
        return took, max(0.0, stepped), cut
    finally:
        for node in nodes:
            node.stop()
        server.drop_database(url)


def table(results: dict[str, list[Round]], skipped: dict[str, str]) -> str:
    rows = [
        "| fault | rounds | takeover p50 | takeover max | old leader steps down, p50 / max "
        "| its renewal fails, p50 / max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fault, runs in results.items():
        took = [t for t, _, _ in runs]
        stepped = [s for _, s, _ in runs]
        cuts = [c for _, _, c in runs if c is not None]
        cut = f"{statistics.median(cuts):.2f} s / {max(cuts):.2f} s" if cuts else "-"
        rows.append(
            f"| {fault} | {len(runs)} | {statistics.median(took):.2f} s | {max(took):.2f} s | "
            f"{statistics.median(stepped):.2f} s / {max(stepped):.2f} s | {cut} |"
        )
    rows += [f"| {fault} | not measured: {why} | | | | |" for fault, why in skipped.items()]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[Round]] = {"pause": [], "partition": []}
    skipped: dict[str, str] = {}
    load = os.getloadavg()
    try:
        with namespace() as ns:
            listen = ("127.0.0.1", ns.host)
            with running_server(listen=listen, trust=(ns.network,)) as server:
                run_rounds(server, ns, args.rounds, results)
    except BaseException as exc:  # pytest's skip, outside pytest: no namespace here
        if isinstance(exc, KeyboardInterrupt | BenchError) or results["pause"]:
            raise
        skipped["partition"] = str(exc) or type(exc).__name__
        del results["partition"]
        with running_server() as server:
            run_rounds(server, None, args.rounds, results)
    after = os.getloadavg()
    print(table(results, skipped))
    print(
        "\nload average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.1f}" for x in load)
        + "; after: "
        + ", ".join(f"{x:.1f}" for x in after)
    )
    print(f"target: takeover <= {TARGET} s; design bound 4 s (lease 3 s + poll 1 s)")
    return 0


def run_rounds(
    server: PostgresServer,
    ns: Namespace | None,
    rounds: int,
    results: dict[str, list[Round]],
) -> None:
    """Alternate the faults, round by round (the load changes alike for both)."""
    for index in range(rounds):
        for fault, runs in results.items():
            root = WORKDIR / f"{fault}-{index}"
            subprocess.run(["rm", "-rf", str(root)], check=True)
            took, stepped, cut = one_round(server, root, ns, fault)
            runs.append((took, stepped, cut))
            failed = "" if cut is None else f", renewal failed after {cut:.2f} s"
            print(
                f"round {index + 1} {fault}: takeover {took:.2f} s, step-down "
                f"{stepped:.2f} s{failed}"
            )


if __name__ == "__main__":
    sys.exit(main())
