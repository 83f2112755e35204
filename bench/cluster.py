#!/usr/bin/env python3
"""Cluster benchmark: 3 `aggregator run` nodes on one PostgreSQL catalog against one SQLite
node, under the same steady stream of drops, in the same run.

Run it from the repository root with the project's virtual environment (PostgreSQL's
binaries installed; the server is a throw-away one in a temporary folder, fsync off)::

    .venv/bin/python bench/cluster.py            # 10,000 articles, 40 drops, 2 rounds
    .venv/bin/python bench/cluster.py --quick    # 2,000 articles, 20 drops, 1 round

Each round runs two configurations one after the other, the single node first: **single**,
one `aggregator run` with its SQLite catalog holding the whole corpus; **cluster**,
``--nodes`` (3) `aggregator run` processes on one fresh PostgreSQL database, the corpus
spread over their input folders in turn. ``--rounds`` (2) rounds alternate them: single,
cluster, single, cluster. The corpus (``tests/corpus.py``, ``--count``) and the drops are the
same files every time. For each configuration:

1. **Start.** Fresh input, output and state folders; the processes start (each in a process
   group of its own); the bench waits until it has *settled*: every node wrote
   ``all.rss.xml``, every node's output folder is byte-identical to every other's, and the
   processes (the nodes' trees and the PostgreSQL server's) used under 5 % of a CPU over
   2 s. The time from the start to that quiet window is reported.
2. **Drops.** ``--drops`` (40) new article files, one every 1/``--rate`` s (2 per second: a
   steady schedule, whatever the nodes' progress), into the nodes' folders in turn. Each is
   published and the newest of all (dated minutes before the run began: after the corpus,
   and never in the future, which would embargo it); the drops' bytes are the same in every
   round. Meanwhile every node's ``all.rss.xml`` is polled every ``--poll-ms`` (5) ms (a
   stat; read again only when it was replaced); a drop's latency runs from just before its
   write until EVERY node's file lists its webUrl (``--drop-timeout`` s at most: else it is
   lost, and counts as infinite). p50, p95, max; also the dropping node's own p50.
3. **CPU.** ``/proc`` is read just before the first drop and at the start of the quiet
   window that ends the phase (every node's output identical again, then 2 s quiet): the
   CPU (utime + stime, with cutime + cstime for the children they reaped: the forkserver and
   the render workers) of every node's process tree, and separately of the PostgreSQL
   server's (the postmaster and its backends). See ``bench/proctree.py`` for how exited
   children are counted. Divided by the drops. Also reported: what the settled processes
   used over the 2 s just before the first drop (idle, % of a CPU), part of every figure.
4. **Convergence.** At the end every node's output folder must be byte-identical to every
   other's, and is compared with the single node's of the same round (same articles, same
   bytes: the outputs depend on the catalog only, not on paths or clocks).

Goals (issue #19): the cluster's p95 ≤ 1.5 x the single node's, and its nodes' CPU per
drop ≤ 1.3 x the single node's, pooled over the rounds. Prints a Markdown table with the
ratios, pass or FAIL, and the load average; replaces the "Cluster" section of
``bench/README.md`` (not with ``--quick`` or ``--no-readme``).

``--tree DIR`` runs the nodes (and builds) with the `aggregator` package of another source
tree, for instance a snapshot of another branch (``git archive BRANCH | tar -x -C DIR``),
without writing bytecode into it.

``--cold N`` first runs the older phase N times: a cold `aggregator build` of the corpus on
PostgreSQL against SQLite, alternating, whose outputs must be byte-identical.

Every process the bench starts is stopped on any exit (SIGTERM, then SIGKILL to its process
group), the PostgreSQL server is stopped and its folder deleted; SIGTERM and SIGHUP unwind
like Ctrl-C. Exit 1 with one line on stderr when the bench cannot go on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from cluster_report import Result, summary, table, update_readme  # noqa: E402
from pgserver import PostgresServer, binaries  # noqa: E402
from proctree import Interrupted, catch_stop_signals, exited, snapshot, stop_group  # noqa: E402

GEN_CORPUS = REPO_ROOT / "tests" / "corpus.py"
BASE_URL = "https://feeds.example.org/"
AGGREGATOR = [sys.executable, "-m", "aggregator"]
QUIET_WINDOW = 2.0  # seconds
QUIET_SHARE = 0.05  # of one CPU, all the configuration's processes together
SAMPLE = 0.25  # seconds between /proc readings while settling

_DATE_RE = re.compile(r"^publishedDateTime: \S+$", re.MULTILINE)
_PUBLISHED_RE = re.compile(r"^published: \S+$", re.MULTILINE)
_URL_RE = re.compile(r'^webUrl: "(.*)"$', re.MULTILINE)


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


def hashes(root: Path) -> dict[str, str]:
    """Every published file (not a writer's hidden temporary file) → its SHA-256. A file
    removed during the walk (a feed that became empty) is left out: the node is busy, and
    the next reading, once it is quiet, sees the folder as it is."""
    found = {}
    for path in root.rglob("*"):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            continue
    return found


def difference(a: dict[str, str], b: dict[str, str]) -> str | None:
    """None if equal, else how they differ, in a few words."""
    if a == b:
        return None
    names = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return f"{len(names)} of {len(a.keys() | b.keys())} files differ (first: {names[0]})"


@dataclass(frozen=True)
class Drop:
    name: str
    text: str
    needle: bytes  # its webUrl as the RSS feed spells it


def make_drops(paths: list[Path], newest: dt.datetime) -> list[Drop]:
    """Corpus files made published and the newest of all, one second apart, the last dated
    `newest` (before the run began: never in the future, which would embargo them)."""
    drops = []
    for index, path in enumerate(paths):
        text = path.read_text(encoding="utf-8")
        when = newest - dt.timedelta(seconds=len(paths) - 1 - index)
        text = _DATE_RE.sub(f"publishedDateTime: {when:%Y-%m-%dT%H:%M:%SZ}", text, count=1)
        text = _PUBLISHED_RE.sub("published: true", text, count=1)
        match = _URL_RE.search(text)
        if match is None:
            raise BenchError(f"no webUrl in {path}")
        drops.append(Drop(f"drop-{path.name}", text, escape(match.group(1)).encode()))
    return drops


class Node:
    """One `aggregator run` process, in a process group of its own."""

    def __init__(self, root: Path, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = env
        self.root = root / name
        self.input, self.output = self.root / "in", self.root / "out"
        self.feed = self.output / "all.rss.xml"
        self.log_path = self.root / "log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.input.mkdir(parents=True)

    def start(self, catalog: str | None, log_level: str | None = None) -> None:
        if log_level is not None:  # read from the working folder (the default config)
            (self.root / "aggregator.yaml").write_text(f"logging:\n  level: {log_level}\n")
        shared = [] if catalog is None else ["--catalog", catalog, "--node", self.name]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*AGGREGATOR, "run", "--input", str(self.input), "--output", str(self.output),
                 "--state", str(self.root / "state"), "--base-url", BASE_URL, *shared],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"node {self.name} was never started")
        return self.proc.pid

    def check(self) -> None:
        """Raise if the process has ended (it never should while the bench runs)."""
        if self.proc is not None and exited(self.proc):
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise BenchError(
                f"node {self.name} exited with code {self.proc.wait()}; its log "
                f"({self.log_path}) ends:\n  " + "\n  ".join(tail)
            )

    def stop(self) -> int | None:
        return None if self.proc is None else stop_group(self.proc)


@dataclass(frozen=True)
class Sample:
    when: float
    nodes_cpu: float
    server_cpu: float


class Config:
    """The processes of one configuration: its nodes, and the database server if any."""

    def __init__(self, nodes: list[Node], server_pid: int | None) -> None:
        self.nodes = nodes
        self.server_pid = server_pid

    def sample(self) -> Sample:
        snap = snapshot()
        server = 0.0 if self.server_pid is None else snap.cpu([self.server_pid])
        return Sample(time.perf_counter(), snap.cpu(n.pid for n in self.nodes), server)

    def disagreement(self) -> str | None:
        """None once every node wrote all.rss.xml and every output folder is identical."""
        for node in self.nodes:
            node.check()
            if not node.feed.exists():
                return f"node {node.name} has not written all.rss.xml yet"
        first = hashes(self.nodes[0].output)
        for node in self.nodes[1:]:
            diff = difference(first, hashes(node.output))
            if diff is not None:
                return f"{node.name}'s output against {self.nodes[0].name}'s: {diff}"
        return None

    def settle(self, timeout: float) -> tuple[Sample, str | None]:
        """Wait until the outputs agree and the processes were quiet for QUIET_WINDOW s.
        The sample at the start of that window, and None; or at the timeout the last
        sample and what is still wrong."""
        samples: list[Sample] = []
        deadline = time.perf_counter() + timeout
        problem: str | None = f"not quiet for {QUIET_WINDOW:.0f} s yet"
        while True:
            now = self.sample()
            samples.append(now)
            older = [s for s in samples if s.when <= now.when - QUIET_WINDOW]
            if older:
                start = older[-1]
                used = now.nodes_cpu + now.server_cpu - start.nodes_cpu - start.server_cpu
                if used <= QUIET_SHARE * (now.when - start.when):
                    problem = self.disagreement()
                    if problem is None:
                        return start, None
                else:
                    problem = f"still busy ({used:.2f} CPU s in the last {QUIET_WINDOW:.0f} s)"
            for node in self.nodes:
                node.check()
            if now.when > deadline:
                return now, problem
            time.sleep(SAMPLE)


def watch_drops(
    config: Config, drops: list[Drop], interval: float, poll: float, timeout: float
) -> tuple[list[float], list[float]]:
    """Write the drops on schedule while polling every node's all.rss.xml. (Latency to
    every node, latency to the dropping node) per drop; math.inf when not seen in time."""
    nodes = config.nodes
    written: list[float] = []
    seen = [[math.inf] * len(nodes) for _ in drops]
    pending: list[set[int]] = [set() for _ in nodes]
    stamps: list[tuple[int, int, int] | None] = [None] * len(nodes)
    begin = time.perf_counter() + 0.01
    checked = begin
    while len(written) < len(drops) or any(pending):
        now = time.perf_counter()
        if len(written) < len(drops) and now >= begin + len(written) * interval:
            index = len(written)
            drop = drops[index]
            written.append(time.perf_counter())
            (nodes[index % len(nodes)].input / drop.name).write_text(drop.text, encoding="utf-8")
            for waiting in pending:
                waiting.add(index)
            continue
        for k, node in enumerate(nodes):
            if not pending[k]:
                continue
            try:
                st = os.stat(node.feed)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if stamp == stamps[k]:
                    continue
                data = node.feed.read_bytes()
            except FileNotFoundError:
                continue
            stamps[k] = stamp
            at = time.perf_counter()
            for index in [i for i in pending[k] if drops[i].needle in data]:
                seen[index][k] = at
                pending[k].discard(index)
        if now - checked > 0.2:
            checked = now
            for k, node in enumerate(nodes):
                node.check()
                pending[k] = {i for i in pending[k] if now - written[i] < timeout}
        if len(written) < len(drops):
            time.sleep(max(0.0, min(poll, begin + len(written) * interval - now)))
        else:
            time.sleep(poll)
    every = [max(s) - w for s, w in zip(seen, written, strict=True)]
    own = [s[i % len(nodes)] - w for i, (s, w) in enumerate(zip(seen, written, strict=True))]
    return every, own


@dataclass(frozen=True)
class Setup:
    """What every round shares."""

    workdir: Path
    corpus: list[Path]
    drops: list[Drop]
    server: PostgresServer
    args: argparse.Namespace
    env: dict[str, str]  # the nodes' environment


def run_round(kind: str, round_: int, setup: Setup, single: Result | None) -> Result:
    """One configuration's start, drops and end; `single`: that round's single node."""
    corpus, drops, server, args = setup.corpus, setup.drops, setup.server, setup.args
    root = setup.workdir / f"{kind}{round_}"
    shutil.rmtree(root, ignore_errors=True)
    count = 1 if kind == "single" else args.nodes
    nodes = [Node(root, f"n{k + 1}", setup.env) for k in range(count)]
    for index, path in enumerate(corpus):
        shutil.copy2(path, nodes[index % count].input / path.name)
    url = None if kind == "single" else server.create_database()
    config = Config(nodes, None if url is None else server.pid())
    try:
        started = time.perf_counter()
        for node in nodes:
            node.start(url, args.log_level)
        ready, problem = config.settle(args.start_timeout)
        if problem is not None:
            raise BenchError(f"{kind} round {round_}: not settled after start: {problem}")
        startup = ready.when - started
        say(f"{kind} round {round_}: {count} node(s) settled {startup:.1f} s after the start")
        # What the settled processes use doing nothing (% of a CPU), in every reading below.
        quiet = config.sample()
        time.sleep(QUIET_WINDOW)
        before = config.sample()
        idle = 100 * (before.nodes_cpu + before.server_cpu - quiet.nodes_cpu - quiet.server_cpu)
        idle /= before.when - quiet.when
        load = os.getloadavg()[0]
        first = snapshot()
        every, own = watch_drops(
            config, drops, 1 / args.rate, args.poll_ms / 1000, args.drop_timeout
        )
        after, problem = config.settle(max(args.drop_timeout, 30.0))
        last = snapshot()
        say(f"{kind} round {round_}: CPU per drop, each node: " + ", ".join(
            f"{n.name} {(last.cpu([n.pid]) - first.cpu([n.pid])) / len(drops):.3f} s"
            for n in nodes
        ))  # fmt: skip
        end = hashes(nodes[0].output)
        if problem is not None:
            note = f"NOT converged: {problem}"
        else:
            note = "settled" if count == 1 else "identical on every node"
        if single is not None:
            diff = difference(single.end, end)
            note += ", and to the single node's" if diff is None else f"; vs single: {diff}"
        return Result(
            kind, round_, count, every, own, after.nodes_cpu - before.nodes_cpu,
            after.server_cpu - before.server_cpu, after.when - before.when, startup,
            (load, os.getloadavg()[0]), end, note, idle,
        )  # fmt: skip
    finally:
        codes: dict[str, int | None] = {}
        for node in nodes:  # each one, whatever happens to the others
            try:
                codes[node.name] = node.stop()
            except OSError as exc:
                say(f"{kind} round {round_}: stopping node {node.name}: {exc}")
        if url is not None:
            try:
                server.drop_database(url)
            except psycopg.Error as exc:  # the server goes with its folder at the end anyway
                say(f"{kind} round {round_}: dropping its database: {exc}")
        bad = {name: code for name, code in codes.items() if code not in (0, None)}
        if bad:
            say(f"{kind} round {round_}: nodes exited with {bad} (logs under {root})")


def cold_builds(
    workdir: Path, corpus_dir: Path, server: PostgresServer, repeat: int, env: dict[str, str]
) -> tuple[float, float]:
    """The older phase: medians of `repeat` alternating cold builds, SQLite and PostgreSQL."""

    def build(out: Path, extra: list[str]) -> float:
        state = out.with_name(out.name + "-state")
        for folder in (out, state):
            shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(
            [*AGGREGATOR, "build", "--input", str(corpus_dir), "--output", str(out),
             "--state", str(state), "--base-url", BASE_URL, *extra],
            check=True, cwd=workdir, stdout=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        return time.perf_counter() - started

    sqlite, pg = [], []
    for round_ in range(repeat):
        sqlite.append(build(workdir / "cold-sqlite", []))
        url = server.create_database()
        try:
            pg.append(build(workdir / "cold-pg", ["--catalog", url, "--node", "n1"]))
        finally:
            server.drop_database(url)
        say(f"cold build {round_ + 1}: SQLite {sqlite[-1]:.2f} s, PostgreSQL {pg[-1]:.2f} s")
    diff = difference(hashes(workdir / "cold-sqlite"), hashes(workdir / "cold-pg"))
    if diff is not None:
        raise BenchError(f"the PostgreSQL cold build's output differs from SQLite's: {diff}")
    return statistics.median(sqlite), statistics.median(pg)


def node_env(tree: Path | None) -> dict[str, str]:
    """The nodes' environment: with `tree`, its `aggregator` package first on the path (a
    worktree of another branch, measured with this bench), checked and said."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    if tree is not None:
        if not (tree / "aggregator" / "__init__.py").is_file():
            raise BenchError(f"--tree {tree}: no aggregator package in that folder")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # another worktree's: read it, write nothing
    found = subprocess.run(
        [sys.executable, "-c", "import aggregator; print(aggregator.__file__)"],
        env=env, cwd="/", capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if tree is not None and not Path(found).resolve().is_relative_to(tree.resolve()):
        raise BenchError(f"--tree {tree}: the nodes would import {found} instead")
    say(f"nodes run the aggregator package at {Path(found).parent}")
    return env


def run(args: argparse.Namespace) -> tuple[list[Result], tuple[float, float] | None]:
    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bin_dir = binaries()
    if bin_dir is None:
        raise BenchError("PostgreSQL's binaries (initdb, pg_ctl) are not installed")
    env = node_env(args.tree)
    say(f"generating {args.count:,} articles and {args.drops} drops in {workdir} ...")
    newest = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    corpus = generate(workdir / "corpus", args.count)
    drops = make_drops(generate(workdir / "drops", args.drops, args.count + 10_000), newest)
    server: PostgresServer | None = None
    results: list[Result] = []
    try:
        server = PostgresServer(bin_dir)
        say(f"PostgreSQL server in {server.folder}, port {server.port}")
        server.start()
        cold = None if args.cold == 0 else cold_builds(workdir, workdir / "corpus", server,
                                                        args.cold, env)  # fmt: skip
        for round_ in range(1, args.rounds + 1):
            setup = Setup(workdir, corpus, drops, server, args, env)
            single = run_round("single", round_, setup, None)
            results.append(single)
            say(summary(single))
            results.append(run_round("cluster", round_, setup, single))
            say(summary(results[-1]))
        return results, cold
    finally:
        if server is not None:
            server.destroy()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=__doc__.split("::\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--count", type=int, help="articles in the corpus (default 10,000; --quick 2,000)")
    add("--nodes", type=int, default=3, help="PostgreSQL nodes (default 3)")
    add("--drops", type=int, help="drops per configuration and round (default 40; --quick 20)")
    add("--rate", type=float, default=2.0, help="drops per second (default 2)")
    add("--rounds", type=int, help="rounds of single then cluster (default 2; --quick 1)")
    add("--poll-ms", type=float, default=5.0, help="all.rss.xml polling period (default 5)")
    add("--drop-timeout", type=float, default=120.0,
        help="seconds until a drop not on every node counts as lost, and (at least 30) to "
             "settle after the drops (default 120)")  # fmt: skip
    add("--start-timeout", type=float, default=900.0,
        help="seconds for a configuration to settle after its start (default 900)")
    add("--cold", type=int, default=0, metavar="N",
        help="first, N alternating cold builds SQLite vs PostgreSQL (default 0: skip)")
    add("--tree", type=Path, metavar="DIR",
        help="run the nodes with the aggregator package of this source tree (a worktree of "
             "another branch; default: the installed one)")  # fmt: skip
    add("--log-level", metavar="LEVEL",
        help="the nodes' logging level (DEBUG: each build's steps, timed, in the logs under "
             "--workdir; default: the nodes' default)")  # fmt: skip
    add("--workdir", type=Path, default=Path("/tmp/aggregator-bench-cluster"),
        help="corpus, folders and logs; deleted first (default %(default)s)")
    add("--quick", action="store_true", help="2,000 articles, 20 drops, 1 round")
    add("--no-readme", action="store_true", help="do not update bench/README.md")
    args = parser.parse_args()
    quick = (2000, 20, 1) if args.quick else (10_000, 40, 2)
    for name, default in zip(("count", "drops", "rounds"), quick, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.count, args.nodes, args.drops, args.rounds) < 1 or args.rate <= 0:
        parser.error("--count, --nodes, --drops, --rounds and --rate must be positive")
    catch_stop_signals()
    try:
        results, cold = run(args)
    except (BenchError, subprocess.CalledProcessError, OSError, RuntimeError, psycopg.Error) as exc:
        print(f"cluster bench: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"cluster bench: stopped by {exc}; every process it started is stopped",
              file=sys.stderr)  # fmt: skip
        return 130
    print(table(results, cold))
    if not args.no_readme and not args.quick:
        update_readme(
            results, cold, count=args.count, nodes=args.nodes, drops=args.drops,
            rate=args.rate, rounds=args.rounds,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
