#!/usr/bin/env python3
"""Daemon benchmark: how soon a change reaches the feeds on disk while ``aggregator run`` runs.

Run it from the repository root with the project's virtual environment::

    .venv/bin/python bench/daemon.py                       # the full run (10-minute soak)
    .venv/bin/python bench/daemon.py --soak-seconds 60     # a quicker run
    .venv/bin/python bench/daemon.py --quick               # smoke run: 1,000 articles, 20 drops
    .venv/bin/python bench/daemon.py --tree /work/wt/base  # another checkout's code (a baseline)

Phases, all against one daemon process (``python -m aggregator run``, default settings:
debounce 0.2 s, ceiling 2 s, 50 items per feed), started over a catalog that a cold
``aggregator build`` has filled with ``--count`` (10,000) articles from
``tests/corpus.py``:

1. **Latency**, ``--drops`` (100) times: drop a new article file (``--start-index 20000``,
   its date set to be the newest so it must enter the ``all`` feed, its topics' and its
   provider's), then edit its title in place, then delete it. Each time, the clock runs from
   just before the write (or unlink) until every one of the article's feed files (RSS and
   Atom) on disk shows the change (polled every 2 ms). p50 and p95 per kind.
2. **Burst**: copy ``--burst-count`` (default ``--count``) new files (``--start-index 10000``)
   into the folder; time from
   the first copy until the daemon logs a build whose published total includes them all.
   Compared with a cold ``aggregator build`` of the same files into empty folders (ratio).
   The feeds are then checked against a cold build of both corpora: every feed lists the
   same items.
3. **Soak**: ``--soak-seconds`` (600) of steady drops, one new file every
   ``--soak-interval`` seconds (1 s), each deleted again 10 drops later so the folder stays
   the same size. The daemon's RSS (``VmRSS`` of ``/proc/PID/status``) is sampled at the
   start, every 10 % and at the end.
4. **Stop**: SIGTERM; the exit code and the time to exit.

The daemon runs with ``MALLOC_ARENA_MAX=2`` (``--malloc-arena-max``), as the systemd unit
sets it: with glibc's default of 8 arenas per core, the threads of each build leave memory
fragmented across arenas and RSS creeps up for reasons that have nothing to do with the
daemon's own data.

Prints a Markdown table with the targets marked, writes ``bench/results/daemon-<date>.json``
and replaces the "Daemon" section of ``bench/README.md`` (``--no-readme`` to skip).

Targets (issue #18): p95 < 0.1 s for drops, edits and deletes; burst <= 1.5 x the cold build;
RSS flat (end within max(5 MiB, 5 %) of the start).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT / "tests" / "corpus.py"  # the project's corpus generator
DEFAULT_WORKDIR = Path("/tmp/aggregator-bench-daemon")
BASE_URL = "https://feeds.example.org/"
README = REPO_ROOT / "bench" / "README.md"
SECTION = "## Daemon"

LATENCY_P95_TARGET = 0.1
BURST_RATIO_TARGET = 1.5
RSS_FLAT_KIB = 5 * 1024
RSS_FLAT_RATIO = 0.05
SOAK_KEEP = 10  # soak files live this many drops before they are deleted

_DATE_RE = re.compile(r"^publishedDateTime: \S+$", re.MULTILINE)
_PUBLISHED_RE = re.compile(r"^published: \S+$", re.MULTILINE)
_TITLE_RE = re.compile(r'^title: ".*"$', re.MULTILINE)
_FINISHED_RE = re.compile(r"build finished in ([\d.]+) s: \d+ read, (\d+) published")


class BenchError(Exception):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- corpora and commands ---------------------------------------------------------------


def generate(gen_corpus: Path, dest: Path, count: int, start: int) -> list[Path]:
    """tests/corpus.py files (reused when the folder already holds exactly this batch)."""
    marker = dest / ".corpus.json"
    wanted = {"count": count, "start": start}
    if not (marker.is_file() and json.loads(marker.read_text()) == wanted):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        cmd = [sys.executable, str(gen_corpus), str(dest), "--count", str(count), "--quiet"]
        subprocess.run([*cmd, "--start-index", str(start)], check=True)
        marker.write_text(json.dumps(wanted))
    files = sorted(dest.glob("*.txt"))
    if len(files) != count:
        raise BenchError(f"{dest}: expected {count} files, found {len(files)}")
    return files


def aggregator(command: str, folders: Folders, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aggregator",
        command,
        "--input",
        str(folders.input),
        "--output",
        str(folders.output),
        "--state",
        str(folders.state),
        "--base-url",
        BASE_URL,
        *extra,
    ]


@dataclass(frozen=True)
class Folders:
    input: Path
    output: Path
    state: Path

    @classmethod
    def fresh(cls, root: Path) -> Folders:
        if root.exists():
            shutil.rmtree(root)
        folders = cls(root / "in", root / "out", root / "state")
        folders.input.mkdir(parents=True)
        return folders


def tree_env(tree: Path | None) -> dict[str, str]:
    """The environment that runs `tree`'s `aggregator` package (None: the installed one).
    The commands run in the work folder, no checkout, so `python -m` finds it first on
    PYTHONPATH."""
    return {} if tree is None else {"PYTHONPATH": str(tree.resolve())}


def cold_build(folders: Folders, cwd: Path, env: dict[str, str]) -> float:
    """Wall time of `aggregator build` into empty output and state folders."""
    started = time.perf_counter()
    result = subprocess.run(
        aggregator("build", folders),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"cold build failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds


def copy_all(files: Sequence[Path], folder: Path) -> None:
    for path in files:
        shutil.copyfile(path, folder / path.name)


# --- the daemon ---------------------------------------------------------------------------


class Daemon:
    """`python -m aggregator run` with its log in a file we poll."""

    def __init__(self, folders: Folders, workdir: Path, env: dict[str, str]) -> None:
        self.log_path = workdir / "daemon.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            aggregator("run", folders),
            cwd=workdir,  # no config/aggregator.yaml there: the defaults
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        self._reader = self.log_path.open()
        self.published: int | None = None
        self.build_seconds = 0.0

    def poll_log(self) -> None:
        """Take in new log lines; remember the latest build's published total and time."""
        for line in self._reader.read().splitlines():
            match = _FINISHED_RE.search(line)
            if match:
                self.build_seconds = float(match.group(1))
                self.published = int(match.group(2))
        if self.proc.poll() is not None:
            raise BenchError(f"the daemon exited ({self.proc.returncode}); see {self.log_path}")

    def wait_published(self, total: int | None, timeout: float) -> float:
        """Wait until a build reports `total` published items (None: any build); the time."""
        deadline = time.perf_counter() + timeout
        while True:
            self.poll_log()
            if self.published is not None and total in (None, self.published):
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise BenchError(f"no build reported {total} published (last {self.published})")
            time.sleep(0.01)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS for the daemon")

    def stop(self) -> tuple[int, float]:
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = -9
        seconds = time.perf_counter() - started
        self._log.close()
        self._reader.close()
        return code, seconds


# --- phase 1: latency ----------------------------------------------------------------------


@dataclass
class Target:
    """A dropped article: its file name, text, and the feed files it must show up in."""

    name: str
    text: str
    url: str
    feeds: list[Path]


def make_target(path: Path, index: int, output: Path) -> Target:
    """A corpus file made newest (so it enters every feed it belongs to) and published."""
    from aggregator.membership import feeds_of
    from aggregator.reading import parse_article

    # Past (an embargo would hold a future date back) but newer than any corpus date.
    newest = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=index)
    text = path.read_text(encoding="utf-8")
    text = _DATE_RE.sub(f"publishedDateTime: {newest:%Y-%m-%dT%H:%M:%SZ}", text, count=1)
    text = _PUBLISHED_RE.sub("published: true", text, count=1)
    article = parse_article(text.encode(), path.name)
    feeds = [
        output / name for key in feeds_of(article) for name in (key.rss_path, key.atom_path)
    ]
    return Target(path.name, text, article.url, feeds)


def wait_feeds(feeds: Sequence[Path], check: Callable[[bytes], bool], timeout: float) -> float:
    """Poll the feed files until `check` holds for every one; the time it did."""
    deadline = time.perf_counter() + timeout
    pending = list(feeds)
    while True:
        still = []
        for path in pending:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
            if not check(data):
                still.append(path)
        pending = still
        now = time.perf_counter()
        if not pending:
            return now
        if now > deadline:
            raise BenchError(f"timed out: {len(pending)} feed files, e.g. {pending[0]}")
        time.sleep(0.002)


def latency(daemon: Daemon, folders: Folders, targets: Sequence[Target]) -> dict[str, list[float]]:
    """Drop, edit and delete each target; seconds until all its feed files show it."""
    times: dict[str, list[float]] = {"drop": [], "edit": [], "delete": []}
    for i, target in enumerate(targets):
        path = folders.input / target.name
        link = escape(target.url).encode()

        started = time.perf_counter()
        path.write_text(target.text, encoding="utf-8")
        done = wait_feeds(target.feeds, _has(link), 10)
        times["drop"].append(done - started)
        time.sleep(0.05)

        marker = f"Daemon bench edit {i} {time.time_ns()}"
        edited = _TITLE_RE.sub(f'title: "{marker}"', target.text, count=1)
        started = time.perf_counter()
        path.write_text(edited, encoding="utf-8")
        done = wait_feeds(target.feeds, _has(marker.encode()), 10)
        times["edit"].append(done - started)
        time.sleep(0.05)

        started = time.perf_counter()
        path.unlink()
        done = wait_feeds(target.feeds, _lacks(link), 10)
        times["delete"].append(done - started)
        time.sleep(0.05)
        daemon.poll_log()
        if (i + 1) % 10 == 0:
            log(f"latency: {i + 1}/{len(targets)} drop/edit/delete cycles")
    return times


def _has(needle: bytes) -> Callable[[bytes], bool]:
    return lambda data: needle in data


def _lacks(needle: bytes) -> Callable[[bytes], bool]:
    return lambda data: needle not in data


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# --- phase 3: soak ------------------------------------------------------------------------


def soak(
    daemon: Daemon, folders: Folders, files: Sequence[Path], seconds: float, interval: float
) -> list[tuple[float, int]]:
    """Steady drops (each deleted SOAK_KEEP drops later); RSS samples (elapsed s, KiB)."""
    samples = [(0.0, daemon.rss_kib())]
    started = time.perf_counter()
    next_sample = seconds / 10
    live: list[Path] = []
    for i, source in enumerate(files):
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
        target = folders.input / source.name
        shutil.copyfile(source, target)
        live.append(target)
        if len(live) > SOAK_KEEP:
            live.pop(0).unlink()
        if elapsed >= next_sample:
            samples.append((elapsed, daemon.rss_kib()))
            log(f"soak: {elapsed:.0f} s, {i + 1} drops, RSS {samples[-1][1] / 1024:.1f} MiB")
            next_sample += seconds / 10
        daemon.poll_log()
        time.sleep(max(0.0, started + (i + 1) * interval - time.perf_counter()))
    for path in live:
        path.unlink()
    time.sleep(3)  # let the last batch settle before the final sample
    samples.append((time.perf_counter() - started, daemon.rss_kib()))
    return samples


# --- the report -----------------------------------------------------------------------------


@dataclass
class Results:
    count: int
    drops: int
    burst_count: int = 0
    cold_base_seconds: float = 0.0
    latency: dict[str, list[float]] = field(default_factory=dict)
    burst_seconds: float = 0.0
    burst_build_seconds: float = 0.0
    burst_cold_seconds: float = 0.0
    burst_feeds_checked: int = 0
    soak_seconds: float = 0.0
    soak_interval: float = 0.0
    rss: list[tuple[float, int]] = field(default_factory=list)
    stop_code: int = 0
    stop_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for kind in ("drop", "edit", "delete"):
            values = self.latency.get(kind, [])
            if not values:
                continue
            p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
            rows.append(
                (
                    f"{kind} → its feeds on disk, p50 / p95 (n={len(values)})",
                    f"{p50:.3f} s / {p95:.3f} s",
                    f"p95 < {LATENCY_P95_TARGET} s",
                    _mark(p95 < LATENCY_P95_TARGET),
                )
            )
        ratio = self.burst_seconds / self.burst_cold_seconds if self.burst_cold_seconds else 0
        rows.append(
            (
                f"burst of {self.burst_count or self.count:,} new files → all in their feeds",
                f"{self.burst_seconds:.2f} s, of which the daemon's build "
                f"{self.burst_build_seconds:.2f} s (cold build of the same files: "
                f"{self.burst_cold_seconds:.2f} s; ratio {ratio:.2f})",
                f"≤ {BURST_RATIO_TARGET}x cold build",
                _mark(0 < ratio <= BURST_RATIO_TARGET),
            )
        )
        if self.rss:
            start, end = self.rss[0][1], self.rss[-1][1]
            flat = end - start <= max(RSS_FLAT_KIB, RSS_FLAT_RATIO * start)
            samples = ", ".join(f"{kib / 1024:.0f}" for _, kib in self.rss)
            rows.append(
                (
                    f"daemon RSS over a {self.soak_seconds:.0f} s soak "
                    f"(1 new file / {self.soak_interval:g} s)",
                    f"start {start / 1024:.1f} MiB, end {end / 1024:.1f} MiB "
                    f"(Δ {(end - start) / 1024:+.1f} MiB); every 10 %: {samples} MiB",
                    "flat",
                    _mark(flat),
                )
            )
        rows.append(
            (
                "SIGTERM → exit",
                f"{self.stop_seconds:.2f} s, exit code {self.stop_code}",
                "exit 0 within 5 s",
                _mark(self.stop_code == 0 and self.stop_seconds < 5),
            )
        )
        return rows

    def table(self) -> str:
        lines = ["| measure | result | target | |", "| --- | --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows()]
        return "\n".join(lines)


def _env_text(env: dict[str, str]) -> str:
    return " ".join(f"`{k}={v}`" for k, v in env.items()) + " (as in deploy/aggregator.service)"


def _mark(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def machine() -> str:
    python = platform.python_version()
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {python}"


def write_readme_section(title: str, section: str) -> None:
    """Replace (or add) the section headed `title` of bench/README.md, leaving the rest alone
    (bench/push.py writes its own section through this too)."""
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    start = text.find(f"\n{title}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + ("" if end == -1 else text[end:])
    README.write_text(text, encoding="utf-8")


def update_readme(results: Results, when: str) -> None:
    """Replace (or add) the "Daemon" section of bench/README.md, leaving the rest alone."""
    section = "\n".join(
        [
            SECTION,
            "",
            "`bench/daemon.py` measures `aggregator run`: how soon a dropped, edited or deleted",
            "article file shows in its feed files on disk, how a burst of new files compares with",
            "a cold build of them, and whether the daemon's memory stays flat under steady drops.",
            "See the script's docstring for the method. Run it from the repository root:",
            "",
            "    .venv/bin/python bench/daemon.py                    # full run, 10-minute soak",
            "    .venv/bin/python bench/daemon.py --soak-seconds 60  # quicker",
            "",
            f"Last run: {when}, {machine()}; {results.count:,} articles in the catalog, default",
            "daemon settings (debounce 0.2 s, ceiling 2 s)"
            + (f", {_env_text(results.env)}" if results.env else "")
            + ".",
            "",
            results.table(),
            "",
            f"The burst's feeds were checked against a cold build of both corpora: "
            f"{results.burst_feeds_checked} feeds list the same items.",
            "",
            "Reading the figures: the drop, edit and delete times are the 0.2 s quiet interval",
            "plus one small build. The burst's time includes copying the files in (the cold",
            "build starts with them in place), the quiet interval and the log lines of every",
            "change; the daemon's build itself is the second figure. During the soak every drop",
            "is a new article: the renderer keeps up to 8,192 rendered entries and SQLite a page",
            "cache of up to 256 MiB, and both fill as new articles and feeds are rendered, so",
            "RSS climbs until they are full; the daemon's own state does not grow (traced with",
            "tracemalloc: +0.2 MiB of Python objects over 2,000 drops).",
            "",
        ]
    )
    write_readme_section(SECTION, section)


# --- checks ---------------------------------------------------------------------------------


def feed_items(output: Path) -> dict[str, list[str]]:
    """Atom feed file → the links of its entries, for every feed under `output`."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2005/Atom}"
    items = {}
    for path in sorted(output.rglob("*.atom.xml")):
        root = ET.parse(path).getroot()
        items[str(path.relative_to(output))] = [
            link.get("href", "")
            for entry in root.iter(f"{ns}entry")
            for link in entry.iter(f"{ns}link")
            if link.get("rel", "alternate") == "alternate"
        ]
    return items


# --- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="articles in the catalog")
    parser.add_argument("--drops", type=int, default=100, help="drop/edit/delete cycles")
    parser.add_argument("--burst-count", type=int, help="files in the burst (default: --count)")
    parser.add_argument("--tree", type=Path, help="the checkout whose code runs (a baseline)")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-interval", type=float, default=1.0, help="seconds per drop")
    parser.add_argument("--quick", action="store_true", help="1,000 articles, 20 drops, 30 s")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--no-readme", action="store_true", help="do not edit bench/README.md")
    parser.add_argument(
        "--malloc-arena-max",
        default="2",
        help="MALLOC_ARENA_MAX for the daemon, as deploy/aggregator.service sets it ('' unset)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.drops, args.soak_seconds = 1_000, 20, 30.0

    try:
        results = run(args, CORPUS)
    except BenchError as exc:
        print(f"bench/daemon.py: {exc}", file=sys.stderr)
        return 1
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    print(results.table())
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    data: dict[str, Any] = {"when": when, "machine": machine(), **results.__dict__}
    (args.results / f"daemon-{stamp}.json").write_text(json.dumps(data, indent=1))
    if not args.no_readme:
        update_readme(results, when)
        log(f"wrote the Daemon section of {README}")
    return 0


def run(args: argparse.Namespace, gen_corpus: Path) -> Results:
    count, work = args.count, args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log(f"corpora: {count:,} base, {count:,} burst, {args.drops} drops, soak files")
    base = generate(gen_corpus, work / "corpus-base", count, 0)
    burst_count = args.burst_count or count
    burst = generate(gen_corpus, work / "corpus-burst", burst_count, 10_000)
    drops = generate(gen_corpus, work / "corpus-drops", args.drops, 20_000)
    soak_count = int(args.soak_seconds / args.soak_interval) + 10
    soak_files = generate(gen_corpus, work / "corpus-soak", soak_count, 30_000)
    results = Results(count=count, drops=args.drops, burst_count=burst_count)
    results.soak_seconds, results.soak_interval = args.soak_seconds, args.soak_interval
    results.env = {"MALLOC_ARENA_MAX": args.malloc_arena_max} if args.malloc_arena_max else {}

    log("cold build of the burst files alone (the burst's yardstick)")
    alone = Folders.fresh(work / "burst-alone")
    copy_all(burst, alone.input)
    code = tree_env(args.tree)
    results.burst_cold_seconds = cold_build(alone, work, code)

    log(f"cold build of the {count:,} base articles")
    folders = Folders.fresh(work / "daemon")
    copy_all(base, folders.input)
    results.cold_base_seconds = cold_build(folders, work, code)

    daemon = Daemon(folders, work, {**results.env, **code})
    try:
        daemon.wait_published(None, timeout=120)
        initial = daemon.published
        assert initial is not None
        log(f"daemon up ({initial:,} published); measuring latency")
        targets = [make_target(p, i, folders.output) for i, p in enumerate(drops)]
        results.latency = latency(daemon, folders, targets)
        # Every drop is deleted again: wait for the log to say so (the feeds on disk show a
        # delete before the build's log line is read), so the burst's total is exact.
        daemon.wait_published(initial, timeout=60)

        expected = initial + sum(_published(p) for p in burst)
        log(f"burst: {burst_count:,} new files")
        started = time.perf_counter()
        copy_all(burst, folders.input)
        done = daemon.wait_published(expected, timeout=600)
        results.burst_seconds = done - started
        results.burst_build_seconds = daemon.build_seconds
        log(f"burst done in {results.burst_seconds:.2f} s")

        log(f"soak: {args.soak_seconds:.0f} s")
        results.rss = soak(daemon, folders, soak_files, args.soak_seconds, args.soak_interval)
    finally:
        results.stop_code, results.stop_seconds = daemon.stop()
    log(f"stopped: exit {results.stop_code} in {results.stop_seconds:.2f} s")

    log("checking the daemon's feeds against a cold build of both corpora")
    both = Folders.fresh(work / "both")
    copy_all(base, both.input)
    copy_all(burst, both.input)
    cold_build(both, work, code)
    theirs, ours = feed_items(both.output), feed_items(folders.output)
    different = [name for name in theirs if sorted(theirs[name]) != sorted(ours.get(name, []))]
    if different:
        raise BenchError(f"{len(different)} feeds differ from a cold build, e.g. {different[0]}")
    results.burst_feeds_checked = len(theirs)
    return results


def _published(path: Path) -> int:
    """1 if the corpus file says `published: true` (tests/corpus.py files all parse)."""
    match = _PUBLISHED_RE.search(path.read_text(encoding="utf-8"))
    return int(match is not None and match.group(0) == "published: true")


if __name__ == "__main__":
    sys.exit(main())
