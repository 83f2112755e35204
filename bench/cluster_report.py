"""The cluster benchmark's results (bench/cluster.py): one configuration's round, the
figures pooled over rounds, the Markdown table with the goals, and the README section."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"
SECTION = "## Cluster"
P95_GOAL = 1.5
CPU_GOAL = 1.3


@dataclass
class Result:
    kind: str  # "single" or "cluster"
    round: int
    nodes: int
    latencies: list[float]  # drop → every node; math.inf for a lost drop
    own: list[float]  # drop → the dropping node's own output
    nodes_cpu: float
    server_cpu: float
    seconds: float  # the drop phase, first drop to the end of its quiet window
    startup: float
    load: tuple[float, float]  # 1-minute load average at the phase's start and end
    end: dict[str, str]  # the first node's output at the end
    note: str  # convergence, in words
    idle: float  # % of a CPU the settled processes used in the quiet window before the drops

    @property
    def lost(self) -> int:
        return sum(math.isinf(x) for x in self.latencies)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def seconds(value: float) -> str:
    return "lost" if math.isinf(value) else f"{value:.2f} s"


def summary(r: Result) -> str:
    return (
        f"{r.kind} round {r.round}: p50 {seconds(statistics.median(r.latencies))}, p95 "
        f"{seconds(percentile(r.latencies, 0.95))}, max {seconds(max(r.latencies))}, "
        f"{r.lost} lost; CPU/drop nodes {r.nodes_cpu / len(r.latencies):.3f} s, server "
        f"{r.server_cpu / len(r.latencies):.3f} s; phase {r.seconds:.1f} s; load "
        f"{r.load[0]:.1f}-{r.load[1]:.1f}; output {r.note}"
    )


@dataclass(frozen=True)
class Pooled:
    latencies: list[float]
    own: list[float]
    nodes_cpu: float  # per drop
    server_cpu: float  # per drop
    results: list[Result]


def pool(results: list[Result], kind: str) -> Pooled:
    mine = [r for r in results if r.kind == kind]
    drops = sum(len(r.latencies) for r in mine)
    return Pooled(
        [x for r in mine for x in r.latencies], [x for r in mine for x in r.own],
        sum(r.nodes_cpu for r in mine) / drops, sum(r.server_cpu for r in mine) / drops, mine,
    )  # fmt: skip


def table(results: list[Result], cold: tuple[float, float] | None) -> str:
    s, c = pool(results, "single"), pool(results, "cluster")
    n = c.results[0].nodes

    def row(what: str, a: float, b: float, goal: float | None = None, fmt: str = "s") -> str:
        show = seconds if fmt == "s" else (lambda v: f"{v:.3f} s")
        ratio = b / a if a > 0 else math.inf
        verdict = "" if goal is None else f"≤ {goal}x: {'pass' if ratio <= goal else 'FAIL'}"
        shown = "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"  # lost drops on both sides
        return f"| {what} | {show(a)} | {show(b)} | {shown} | {verdict} |"

    def each(values: list[float], f: str) -> str:
        return " / ".join(format(x, f) for x in values)

    lines = [
        f"| measure | 1 SQLite node | {n} PostgreSQL nodes | ratio | goal |",
        "|---|---|---|---|---|",
        row("drop → every node, p50", statistics.median(s.latencies),
            statistics.median(c.latencies)),
        row("drop → every node, p95", percentile(s.latencies, 0.95),
            percentile(c.latencies, 0.95), P95_GOAL),
        row("drop → every node, max", max(s.latencies), max(c.latencies)),
        row("drop → the dropping node, p50", statistics.median(s.own),
            statistics.median(c.own)),
        row("CPU per drop, the nodes' processes", s.nodes_cpu, c.nodes_cpu, CPU_GOAL, "cpu"),
        f"| CPU per drop, the PostgreSQL server | | {c.server_cpu:.3f} s | | |",
        row("CPU per drop, nodes + server", s.nodes_cpu, c.nodes_cpu + c.server_cpu, None,
            "cpu"),
        f"| drops lost (not on every node within the timeout) | {sum(r.lost for r in s.results)}"
        f" | {sum(r.lost for r in c.results)} | | |",
        f"| p95 per round | {each([percentile(r.latencies, 0.95) for r in s.results], '.2f')} |"
        f" {each([percentile(r.latencies, 0.95) for r in c.results], '.2f')} | | |",
        f"| nodes' CPU per drop, per round | "
        f"{each([r.nodes_cpu / len(r.latencies) for r in s.results], '.3f')} s | "
        f"{each([r.nodes_cpu / len(r.latencies) for r in c.results], '.3f')} s | | |",
        f"| settled after start, per round | {each([r.startup for r in s.results], '.1f')} s |"
        f" {each([r.startup for r in c.results], '.1f')} s | | |",
        f"| idle CPU before the drops (nodes + server), % of a CPU | "
        f"{each([r.idle for r in s.results], '.1f')} | {each([r.idle for r in c.results], '.1f')}"
        " | | |",
        f"| load average (1 min) at the drop phases' start-end | "
        f"{' / '.join(f'{r.load[0]:.1f}-{r.load[1]:.1f}' for r in s.results)} | "
        f"{' / '.join(f'{r.load[0]:.1f}-{r.load[1]:.1f}' for r in c.results)} | | |",
    ]  # fmt: skip
    if cold is not None:
        lines.append(row("cold `aggregator build`, SQLite vs PostgreSQL (median)", *cold))
    notes = [f"- {r.kind} round {r.round}: output {r.note}" for r in results]
    return "\n".join([*lines, "", *notes])


def update_readme(
    results: list[Result], cold: tuple[float, float] | None, *, count: int, nodes: int,
    drops: int, rate: float, rounds: int,
) -> None:  # fmt: skip
    """Replace the README's "Cluster" section (up to the next `## ` heading)."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        SECTION,
        "",
        "`bench/cluster.py` runs one `aggregator run` node on its SQLite catalog and "
        f"{nodes} nodes on",
        "one PostgreSQL catalog (a throw-away local server, fsync off), alternating, under the",
        f"same steady stream of drops ({rate:g} per second, into the nodes' folders in "
        "turn); for each",
        "drop, the time until EVERY node's `all.rss.xml` lists it, and the CPU the nodes' "
        "process",
        "trees (render workers included) and the database server used per drop (the method: the",
        "script's docstring; `--help` lists the options):",
        "",
        "    .venv/bin/python bench/cluster.py                 # 10,000 articles, 2 rounds",
        "    .venv/bin/python bench/cluster.py --quick         # 2,000 articles, 1 round",
        "    .venv/bin/python bench/cluster.py --tree DIR      # another source tree's code",
        "",
        f"Last run: {when}, {platform.machine()}, {os.cpu_count()} CPUs (shared with other "
        f"work), Python {platform.python_version()};",
        f"{count:,} articles, {drops} drops per configuration, {rounds} rounds "
        "(single, cluster, single, ...).",
        "",
        table(results, cold),
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
