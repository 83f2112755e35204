#!/usr/bin/env python3
"""Build benchmark: ``aggregator build`` against Hugo writing the same feeds.

Run it from the repository root with the project's virtual environment, so that
``python -m aggregator`` is the code under test::

    .venv/bin/python bench/build.py                  # 10,000 and 100,000 articles, 3 repeats
    .venv/bin/python bench/build.py --quick          # smoke run: 1,000 articles, 1 repeat
    .venv/bin/python bench/build.py --sizes 20000 --repeat 5
    .venv/bin/python bench/build.py --everything     # JSON Feed and gzip copies too
    .venv/bin/python bench/build.py --only-hugo      # the peer alone (no aggregator needed)
    .venv/bin/python bench/build.py --sizes 300000 --no-hugo   # ours alone (no ratios)

For each size the corpus is generated once with ``tests/corpus.py``, in our form and in
Hugo's (``--hugo`` plus the ``shared/bench/hugo-site`` configuration, the one thing here that
needs the shared/ folder), under
``--workdir`` (default ``/tmp/aggregator-bench``).  Corpora are kept between runs and
reused when their marker file says they hold the same number of articles.

Then, per repeat, four commands run one after the other so that the two tools see the
same machine state:

1. Hugo full build (``hugo --quiet -s SITE``) with ``public/``, ``resources/`` and its
   cache folder removed first, so that every build is a cold one;
2. our cold build, into fresh output and state folders;
3. our rebuild with nothing changed;
4. our rebuild after one article changed: the newest published article gets
   `` (edited)`` appended to its title, in place; the file is restored afterwards.

Each command runs as a child process; its wall time is taken with ``time.perf_counter``
around it, its CPU time (user + system, its own and its reaped descendants': our build's
workers) and its peak resident set size from ``os.wait4`` (``ru_maxrss``: the largest RSS
of the child or of any one descendant it waited for, in KiB on Linux: a maximum over
processes, not their sum).  The memory of the whole process tree (the build and its
workers; Hugo is one process) is sampled as well, every ``--sample`` seconds, from
``/proc``: the peak of the summed RSS (pages shared by forked workers counted once per
process) and of the summed PSS (each shared page divided among the processes sharing it:
what the tree takes from the machine).  Our build runs with ``--log-level DEBUG``, and its
log gives the catalog sync's own figures (``catalog sync: N changes applied in W s (C s
CPU)``: the time spent in the sync's batches, apart from waiting for the readers, and the
main thread's CPU in them), shown as CPU per article.  The script
checks the exit codes and that the expected feed files exist, prints a Markdown table
of medians with the targets marked pass/fail, and writes all runs to
``bench/results/build-<date>.json``.

Targets (issue #18), as ratios to Hugo's full build of the same corpus, in both modes:

* cold build <= 0.5x Hugo's time (the stretch; 0.6x at the least), peak RSS below Hugo's;
* rebuild with nothing changed <= 0.03x;
* rebuild after one change <= 0.05x (from 10,000 articles up);
* the whole tree's peak memory (PSS) <= 0.3x Hugo's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _default_shared() -> Path:
    """The shared/ folder beside the checkout (or beside the folder of worktrees)."""
    for parent in Path(__file__).resolve().parents[2:4]:
        if (parent / "shared" / "bench" / "hugo-site").is_dir():
            return parent / "shared"
    return Path(__file__).resolve().parents[2] / "shared"


DEFAULT_SHARED = _default_shared()
CORPUS = REPO_ROOT / "tests" / "corpus.py"  # the project's corpus generator
DEFAULT_WORKDIR = Path("/tmp/aggregator-bench")
DEFAULT_SIZES = (10_000, 100_000)
QUICK_SIZE = 1_000
BASE_URL = "https://feeds.example.org/"
#: Placeholders filled in ``--ours-cmd``.
OURS_CMD_DEFAULT = (
    f"{shlex.quote(sys.executable)} -m aggregator build --config {{config}}"
    f" --input {{input}} --output {{output}} --state {{state}} --base-url {BASE_URL}"
    " --log-level DEBUG"
)
#: Our config for the run: by default the work Hugo does (RSS and Atom, no gzip copies);
#: with --everything all we publish (JSON Feed too, and a gzip copy of every file).
SAME_AS_HUGO_CONFIG = "formats: [rss, atom]\nserve: {gzip_sidecars: false}\n"
EVERYTHING_CONFIG = "formats: [rss, atom, json]\nserve: {gzip_sidecars: true}\n"
#: Files our build must write into the output folder.
OUR_REQUIRED_OUTPUTS = ("all.rss.xml", "all.atom.xml")
EDIT_SUFFIX = " (edited)"
MARKER_NAME = "corpus.json"

# Targets (ratio of ours to Hugo's full build).
COLD_TIME_TARGET = 0.5
NOOP_TIME_TARGET = 0.03
ONE_CHANGE_TIME_TARGET = 0.05
ONE_CHANGE_TARGET_MIN_SIZE = 10_000
TREE_MEMORY_TARGET = 0.3  # the whole tree's peak PSS against Hugo's
DEFAULT_SAMPLE_SECONDS = 0.1

# The build's DEBUG lines with its stage figures (absent from older builds: then "—").
_SYNC_RE = re.compile(
    r"catalog sync: (\d+) changes applied in ([\d.]+) s \(([\d.]+) s CPU\), "
    r"committed in ([\d.]+) s"
)
_READ_SYNC_RE = re.compile(r"build: (\d+) files read and synced in ([\d.]+) s")

_TITLE_RE = re.compile(rb'^title: "(.*)"$', re.MULTILINE)
_DATE_RE = re.compile(rb"^publishedDateTime: (\S+)$", re.MULTILINE)
_PUBLISHED_RE = re.compile(rb"^published: true$", re.MULTILINE)


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


# --------------------------------------------------------------------------
# Running one measured command
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Wall time, CPU time and peak memory of one child process (and its descendants)."""

    seconds: float
    peak_rss_kib: int  # ru_maxrss: the largest single process
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system, the child and the descendants it reaped
    tree_rss_kib: int = 0  # peak of the tree's summed RSS, sampled
    tree_pss_kib: int = 0  # peak of the tree's summed PSS, sampled

    def sync_figures(self) -> dict[str, float] | None:
        """The catalog sync's own figures from our build's DEBUG log, if it printed them."""
        m = _SYNC_RE.search(self.stderr)
        if m is None:
            return None
        changes = int(m.group(1))
        figures = {
            "changes": changes,
            "seconds": float(m.group(2)),
            "cpu_seconds": float(m.group(3)),
            "commit_seconds": float(m.group(4)),
            "cpu_us_per_change": 1e6 * float(m.group(3)) / changes if changes else 0.0,
        }
        read = _READ_SYNC_RE.search(self.stderr)
        if read is not None:
            figures["read_and_sync_seconds"] = float(read.group(2))
        return figures


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants now (from /proc's children lists)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) if it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Samples the summed RSS and PSS of a process tree until stopped; keeps the peaks."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.rss_kib = self.pss_kib = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            rss = pss = 0
            for pid in _tree(self.pid):
                r, p = _memory_kib(pid)
                rss, pss = rss + r, pss + p
            self.rss_kib, self.pss_kib = max(self.rss_kib, rss), max(self.pss_kib, pss)

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure(
    cmd: Sequence[str],
    cwd: Path,
    log_dir: Path,
    label: str,
    sample: float = DEFAULT_SAMPLE_SECONDS,
) -> Measurement:
    """Run ``cmd`` as a child process; return its wall and CPU time, its own peak RSS and
    the sampled peaks of its tree's summed RSS and PSS.

    ``os.wait4`` reports the resource usage of this one child (and the descendants it
    reaped), unlike ``RUSAGE_CHILDREN``, which is a maximum over every child so far.
    Output goes to files rather than pipes so that a chatty child can never block.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path = log_dir / f"{label}.stdout"
    err_path = log_dir / f"{label}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid, sample)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            sampler.stop()
        seconds = time.perf_counter() - start
    # Tell Popen the child is reaped, so it never waits on the pid again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        seconds=seconds,
        peak_rss_kib=int(usage.ru_maxrss),
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        # A tree that ended between two samples has its own peak at least.
        tree_rss_kib=max(sampler.rss_kib, int(usage.ru_maxrss)),
        tree_pss_kib=sampler.pss_kib,
    )


def check_exit(m: Measurement, what: str, cmd: Sequence[str]) -> None:
    """Raise ``BenchError`` with the command's stderr if it did not exit 0."""
    if m.returncode != 0:
        message = f"{what} failed with exit code {m.returncode}\ncommand: {shlex.join(cmd)}"
        if m.stderr.strip():
            message += f"\n--- stderr ---\n{m.stderr.rstrip()}"
        if m.stdout.strip():
            message += f"\n--- stdout (last 2000 characters) ---\n{m.stdout[-2000:].rstrip()}"
        raise BenchError(message)


# --------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """The two forms of one generated corpus, and the article the edit runs change."""

    count: int
    ours: Path  # folder of article files (our input)
    hugo_site: Path  # Hugo site root (config, layouts, content/)
    edit_target: Path  # newest published article in ``ours``


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _generate(gen_corpus: Path, dest: Path, count: int, hugo: bool) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    cmd = [sys.executable, str(gen_corpus), str(dest), "--count", str(count), "--quiet"]
    if hugo:
        cmd.append("--hugo")
    subprocess.run(cmd, check=True)


def newest_published(folder: Path) -> Path:
    """Return the article file with the latest ``publishedDateTime`` among published ones.

    Editing this one guarantees that the change shows in the ``all`` feeds, so the
    one-changed run can be checked as well as timed.
    """
    best: tuple[bytes, str] | None = None
    for path in folder.iterdir():
        if path.suffix != ".txt":
            continue
        data = path.read_bytes()
        date = _DATE_RE.search(data)
        if date is None or _PUBLISHED_RE.search(data) is None:
            continue
        key = (date.group(1), path.name)
        if best is None or key > best:
            best = key
    if best is None:
        raise BenchError(f"no published article in {folder}")
    return folder / best[1]


def prepare_corpus(workdir: Path, shared: Path, count: int, log: Callable[[str], None]) -> Corpus:
    """Generate (or reuse) the corpus of ``count`` articles in both forms."""
    gen_corpus = CORPUS
    hugo_template = shared / "bench" / "hugo-site"
    if not hugo_template.exists():
        raise BenchError(f"{hugo_template} not found; pass --shared DIR (the shared/ folder)")
    root = workdir / f"n{count}"
    ours = root / "corpus"
    site = root / "hugo-site"
    marker = root / MARKER_NAME
    meta = _read_marker(marker)
    reusable = (
        meta is not None
        and meta.get("count") == count
        and ours.is_dir()
        and (site / "content").is_dir()
        and (ours / str(meta.get("edit_target", ""))).is_file()
    )
    if reusable and meta is not None:
        log(f"[{count:,}] reusing corpus in {root}")
        edit_target = ours / str(meta["edit_target"])
    else:
        log(f"[{count:,}] generating corpus in {root} ...")
        marker.unlink(missing_ok=True)
        start = time.perf_counter()
        _generate(gen_corpus, ours, count, hugo=False)
        if site.exists():
            shutil.rmtree(site)
        shutil.copytree(hugo_template, site)
        _generate(gen_corpus, site / "content", count, hugo=True)
        edit_target = newest_published(ours)
        marker.write_text(
            json.dumps({"count": count, "edit_target": edit_target.name}, indent=2) + "\n"
        )
        log(f"[{count:,}] generated in {time.perf_counter() - start:.1f} s")
    # Refresh the Hugo configuration and layouts in case the shared template changed.
    shutil.copytree(hugo_template, site, dirs_exist_ok=True)
    return Corpus(count=count, ours=ours, hugo_site=site, edit_target=edit_target)


def edited(original: bytes) -> bytes:
    """Return the article text with ``EDIT_SUFFIX`` appended to its title."""
    new, n = _TITLE_RE.subn(
        lambda m: b'title: "' + m.group(1) + EDIT_SUFFIX.encode() + b'"', original, count=1
    )
    if n != 1:
        raise BenchError("the article to edit has no double-quoted title line")
    return new


# --------------------------------------------------------------------------
# The measured steps
# --------------------------------------------------------------------------


def hugo_cmd(site: Path) -> list[str]:
    """Hugo's full build; the cache folder is kept inside the site so it can be wiped."""
    return ["hugo", "--quiet", "-s", str(site), "--cacheDir", str(site / ".cache")]


def clean_hugo(site: Path) -> None:
    """Remove everything a previous Hugo build left, so the next one is cold."""
    for name in ("public", "resources", ".cache"):
        shutil.rmtree(site / name, ignore_errors=True)
    (site / ".hugo_build.lock").unlink(missing_ok=True)


def check_hugo_output(site: Path) -> None:
    """Hugo writes ``index.xml`` (RSS) and ``atom.xml`` per topic and per provider."""
    for taxonomy in ("topics", "providers"):
        folder = site / "public" / taxonomy
        terms = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        if not terms or not all(
            (t / "index.xml").is_file() and (t / "atom.xml").is_file() for t in terms
        ):
            raise BenchError(f"Hugo wrote no complete feeds under {folder}")


def check_our_output(output: Path) -> None:
    missing = [name for name in OUR_REQUIRED_OUTPUTS if not (output / name).is_file()]
    if missing:
        raise BenchError(f"our build exited 0 but did not write {', '.join(missing)} in {output}")


@dataclass
class Runs:
    """All measurements of one size; lists hold one entry per repeat."""

    hugo: list[Measurement] = field(default_factory=list)
    cold: list[Measurement] = field(default_factory=list)
    noop: list[Measurement] = field(default_factory=list)
    one: list[Measurement] = field(default_factory=list)
    edit_seen: list[bool] = field(default_factory=list)


def run_size(corpus: Corpus, args: argparse.Namespace, log: Callable[[str], None]) -> Runs:
    """Alternate the four measured commands ``args.repeat`` times on one corpus."""
    runs = Runs()
    root = corpus.ours.parent
    logs = root / "logs"
    output, state = root / "out", root / "state"
    config = root / "aggregator.yaml"
    config.write_text(EVERYTHING_CONFIG if args.everything else SAME_AS_HUGO_CONFIG)
    ours_template = shlex.split(args.ours_cmd)
    ours = [
        part.format(input=corpus.ours, output=output, state=state, config=config)
        for part in ours_template
    ]
    original = corpus.edit_target.read_bytes()
    changed = edited(original)
    n = f"[{corpus.count:,}]"

    def run_ours(label: str, what: str) -> Measurement:
        m = measure(ours, REPO_ROOT, logs, label, args.sample)
        check_exit(m, what, ours)
        check_our_output(output)
        return m

    for r in range(1, args.repeat + 1):
        if not args.no_hugo:
            clean_hugo(corpus.hugo_site)
            cmd = hugo_cmd(corpus.hugo_site)
            m = measure(cmd, corpus.hugo_site, logs, f"hugo-{r}", args.sample)
            check_exit(m, "Hugo build", cmd)
            check_hugo_output(corpus.hugo_site)
            runs.hugo.append(m)
            log(
                f"{n} repeat {r}: hugo {m.seconds:.2f} s ({m.cpu_seconds:.2f} s CPU), "
                f"{mib(m.peak_rss_kib):.0f} MiB"
            )
        if args.only_hugo:
            continue

        for folder in (output, state):
            shutil.rmtree(folder, ignore_errors=True)
        m = run_ours(f"cold-{r}", "our cold build")
        runs.cold.append(m)
        sync = m.sync_figures()
        log(
            f"{n} repeat {r}: cold {m.seconds:.2f} s ({m.cpu_seconds:.2f} s CPU), "
            f"{mib(m.peak_rss_kib):.0f} MiB, tree {mib(m.tree_pss_kib):.0f} MiB PSS"
            + (
                ""
                if sync is None
                else f"; sync {sync['cpu_seconds']:.2f} s CPU, "
                f"{sync['cpu_us_per_change']:.1f} µs per article"
            )
        )

        m = run_ours(f"noop-{r}", "our rebuild with nothing changed")
        runs.noop.append(m)
        log(f"{n} repeat {r}: nothing changed {m.seconds:.3f} s")

        try:
            corpus.edit_target.write_bytes(changed)
            m = run_ours(f"one-{r}", "our rebuild after one change")
            seen = EDIT_SUFFIX.encode() in (output / "all.rss.xml").read_bytes()
        finally:
            corpus.edit_target.write_bytes(original)
        runs.one.append(m)
        runs.edit_seen.append(seen)
        log(
            f"{n} repeat {r}: one changed {m.seconds:.3f} s"
            + ("" if seen else "  (WARNING: the edit is not in all.rss.xml)")
        )
    return runs


# --------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------


def mib(kib: float) -> float:
    return kib / 1024


def median_of(ms: Sequence[Measurement], attr: str) -> float | None:
    return statistics.median(getattr(m, attr) for m in ms) if ms else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _median_sync(ms: Sequence[Measurement], key: str) -> float | None:
    values = [f[key] for m in ms if (f := m.sync_figures()) is not None and key in f]
    return statistics.median(values) if values else None


def summarize(count: int, runs: Runs) -> dict[str, Any]:
    """Medians, ratios to Hugo, and pass/fail (``None`` when not measured or not applicable)."""
    hugo_s = median_of(runs.hugo, "seconds")
    hugo_cpu = median_of(runs.hugo, "cpu_seconds")
    hugo_rss = median_of(runs.hugo, "peak_rss_kib")
    hugo_pss = median_of(runs.hugo, "tree_pss_kib")
    cold_s = median_of(runs.cold, "seconds")
    cold_cpu = median_of(runs.cold, "cpu_seconds")
    cold_rss = median_of(runs.cold, "peak_rss_kib")
    cold_tree_rss = median_of(runs.cold, "tree_rss_kib")
    cold_pss = median_of(runs.cold, "tree_pss_kib")
    tree_ratio = ratio(cold_pss, hugo_pss)
    noop_s = median_of(runs.noop, "seconds")
    one_s = median_of(runs.one, "seconds")
    cold_ratio = ratio(cold_s, hugo_s)
    noop_ratio = ratio(noop_s, hugo_s)
    one_ratio = ratio(one_s, hugo_s)
    rss_ratio = ratio(cold_rss, hugo_rss)

    def within(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    return {
        "articles": count,
        "repeats": max(len(runs.hugo), len(runs.cold)),
        "hugo_seconds": hugo_s,
        "hugo_peak_rss_mib": None if hugo_rss is None else mib(hugo_rss),
        "cold_seconds": cold_s,
        "cold_articles_per_second": None if not cold_s else count / cold_s,
        "cold_peak_rss_mib": None if cold_rss is None else mib(cold_rss),
        "hugo_cpu_seconds": hugo_cpu,
        "cold_cpu_seconds": cold_cpu,
        "cold_cpu_ratio": ratio(cold_cpu, hugo_cpu),
        "hugo_tree_pss_mib": None if hugo_pss is None else mib(hugo_pss),
        "cold_tree_rss_mib": None if cold_tree_rss is None else mib(cold_tree_rss),
        "cold_tree_pss_mib": None if cold_pss is None else mib(cold_pss),
        "tree_memory_ratio": tree_ratio,
        "sync_seconds": _median_sync(runs.cold, "seconds"),
        "sync_cpu_seconds": _median_sync(runs.cold, "cpu_seconds"),
        "sync_cpu_us_per_article": _median_sync(runs.cold, "cpu_us_per_change"),
        "sync_commit_seconds": _median_sync(runs.cold, "commit_seconds"),
        "read_and_sync_seconds": _median_sync(runs.cold, "read_and_sync_seconds"),
        "noop_seconds": noop_s,
        "one_change_seconds": one_s,
        "cold_ratio": cold_ratio,
        "rss_ratio": rss_ratio,
        "noop_ratio": noop_ratio,
        "one_change_ratio": one_ratio,
        "edit_seen_in_feed": all(runs.edit_seen) if runs.edit_seen else None,
        "pass": {
            "cold_time": within(cold_ratio, COLD_TIME_TARGET),
            "cold_rss": None if rss_ratio is None else rss_ratio < 1.0,
            "tree_memory": within(tree_ratio, TREE_MEMORY_TARGET),
            "noop_time": within(noop_ratio, NOOP_TIME_TARGET),
            "one_change_time": (
                within(one_ratio, ONE_CHANGE_TIME_TARGET)
                if count >= ONE_CHANGE_TARGET_MIN_SIZE
                else None
            ),
        },
    }


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _fmt_ratio(value: float | None, passed: bool | None) -> str:
    if value is None:
        return "—"
    mark = "" if passed is None else (" pass" if passed else " **FAIL**")
    return f"{value:.3f}x{mark}"


def markdown_table(summaries: Sequence[dict[str, Any]]) -> str:
    """One column per size, one row per figure; ratios carry pass/fail marks."""
    header = "| | target | " + " | ".join(f"{s['articles']:,} articles" for s in summaries)
    lines = [header + " |", "|---|---|" + "---:|" * len(summaries)]

    def row(label: str, target: str, cells: Sequence[str]) -> None:
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")

    row("Hugo full build (s)", "", [_fmt(s["hugo_seconds"], ".2f") for s in summaries])
    row("Hugo peak RSS (MiB)", "", [_fmt(s["hugo_peak_rss_mib"], ".0f") for s in summaries])
    row("ours, cold build (s)", "", [_fmt(s["cold_seconds"], ".2f") for s in summaries])
    row(
        "ours, cold build (articles/s)",
        "",
        [_fmt(s["cold_articles_per_second"], ",.0f") for s in summaries],
    )
    row("Hugo CPU (s)", "", [_fmt(s["hugo_cpu_seconds"], ".2f") for s in summaries])
    row("ours, cold CPU (s)", "", [_fmt(s["cold_cpu_seconds"], ".2f") for s in summaries])
    row(
        "ours, cold: reading + sync (s)",
        "",
        [_fmt(s["read_and_sync_seconds"], ".2f") for s in summaries],
    )
    row("ours, cold: sync (s)", "", [_fmt(s["sync_seconds"], ".2f") for s in summaries])
    row("ours, cold: sync CPU (s)", "", [_fmt(s["sync_cpu_seconds"], ".2f") for s in summaries])
    row(
        "ours, cold: sync CPU per article (µs)",
        "flat",
        [_fmt(s["sync_cpu_us_per_article"], ".1f") for s in summaries],
    )
    row("ours, peak RSS (MiB)", "", [_fmt(s["cold_peak_rss_mib"], ".0f") for s in summaries])
    row(
        "ours, tree peak RSS summed (MiB)",
        "",
        [_fmt(s["cold_tree_rss_mib"], ".0f") for s in summaries],
    )
    row("ours, tree peak PSS (MiB)", "", [_fmt(s["cold_tree_pss_mib"], ".0f") for s in summaries])
    row("Hugo peak PSS (MiB)", "", [_fmt(s["hugo_tree_pss_mib"], ".0f") for s in summaries])
    row("ours, nothing changed (s)", "", [_fmt(s["noop_seconds"], ".3f") for s in summaries])
    row("ours, one changed (s)", "", [_fmt(s["one_change_seconds"], ".3f") for s in summaries])
    row(
        "cold / Hugo",
        f"≤ {COLD_TIME_TARGET}x",
        [_fmt_ratio(s["cold_ratio"], s["pass"]["cold_time"]) for s in summaries],
    )
    row("cold CPU / Hugo CPU", "", [_fmt_ratio(s["cold_cpu_ratio"], None) for s in summaries])
    row(
        "peak RSS / Hugo",
        "< 1x",
        [_fmt_ratio(s["rss_ratio"], s["pass"]["cold_rss"]) for s in summaries],
    )
    row(
        "tree peak PSS / Hugo",
        f"≤ {TREE_MEMORY_TARGET}x",
        [_fmt_ratio(s["tree_memory_ratio"], s["pass"]["tree_memory"]) for s in summaries],
    )
    row(
        "nothing changed / Hugo",
        f"≤ {NOOP_TIME_TARGET}x",
        [_fmt_ratio(s["noop_ratio"], s["pass"]["noop_time"]) for s in summaries],
    )
    row(
        "one changed / Hugo",
        f"≤ {ONE_CHANGE_TIME_TARGET}x at {ONE_CHANGE_TARGET_MIN_SIZE:,}",
        [_fmt_ratio(s["one_change_ratio"], s["pass"]["one_change_time"]) for s in summaries],
    )
    seen = [s["edit_seen_in_feed"] for s in summaries]
    if any(v is not None for v in seen):
        row(
            "edit visible in all.rss.xml",
            "yes",
            ["—" if v is None else ("yes" if v else "**no**") for v in seen],
        )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        hugo = subprocess.run(["hugo", "version"], capture_output=True, text=True, check=True)
        info["hugo"] = hugo.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["hugo"] = None
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        info["aggregator_commit"] = rev.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["aggregator_commit"] = None
    return info


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _positive(value: str) -> int:
    n = int(value.replace("_", "").replace(",", ""))
    if n <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return n


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/build.py",
        description="Time `aggregator build` (cold, nothing changed, one changed) against "
        "a cold Hugo build of the same corpus; print a Markdown table and write JSON.",
    )
    p.add_argument(
        "--sizes",
        type=_positive,
        nargs="+",
        default=list(DEFAULT_SIZES),
        metavar="N",
        help="corpus sizes in articles (default: 10000 100000)",
    )
    p.add_argument(
        "--repeat", type=_positive, default=3, help="repeats per size; medians are reported"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_SIZE:,} articles, 1 repeat (overrides --sizes/--repeat)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where corpora, outputs and logs go (default: {DEFAULT_WORKDIR})",
    )
    p.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help=f"the shared/ folder with bench/hugo-site, Hugo's side (default: {DEFAULT_SHARED})",
    )
    p.add_argument(
        "--only-hugo", action="store_true", help="measure Hugo alone; do not run our build"
    )
    p.add_argument(
        "--no-hugo",
        action="store_true",
        help="measure our build alone (no ratios): where a Hugo build of the size does not "
        "fit the machine or the time",
    )
    p.add_argument(
        "--everything",
        action="store_true",
        help="our whole output: RSS, Atom and JSON Feed with gzip copies (default: what "
        "Hugo writes too, RSS and Atom)",
    )
    p.add_argument(
        "--ours-cmd",
        default=OURS_CMD_DEFAULT,
        help="our build command, with {input}, {output}, {state} and {config} placeholders "
        "(default: %(default)s); run from the repository root",
    )
    p.add_argument(
        "--sample",
        type=float,
        default=DEFAULT_SAMPLE_SECONDS,
        help="seconds between samples of the process tree's memory (default: %(default)s)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "bench" / "results",
        help="folder for the JSON results (default: bench/results)",
    )
    args = p.parse_args(argv)
    if args.only_hugo and args.no_hugo:
        p.error("--only-hugo and --no-hugo leave nothing to measure")
    if args.quick:
        args.sizes, args.repeat = [QUICK_SIZE], 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if shutil.which("hugo") is None:
        log("bench/build.py: `hugo` is not on PATH (apt-get install -y hugo)")
        return 2
    started = dt.datetime.now(dt.UTC)
    start_load = os.getloadavg()
    machine = machine_info()
    log(f"machine: {machine}")
    summaries: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    try:
        for count in args.sizes:
            corpus = prepare_corpus(args.workdir, args.shared, count, log)
            runs = run_size(corpus, args, log)
            summaries.append(summarize(count, runs))
            raw[str(count)] = {
                name: [
                    {
                        "seconds": m.seconds,
                        "cpu_seconds": m.cpu_seconds,
                        "peak_rss_kib": m.peak_rss_kib,
                        "tree_rss_kib": m.tree_rss_kib,
                        "tree_pss_kib": m.tree_pss_kib,
                        "sync": m.sync_figures(),
                    }
                    for m in getattr(runs, name)
                ]
                for name in ("hugo", "cold", "noop", "one")
            }
            raw[str(count)]["edit_seen"] = runs.edit_seen
            # What our build printed in the last repeat (its summary), for the record.
            raw[str(count)]["our_stdout"] = {
                name: getattr(runs, name)[-1].stdout.strip()[-4000:]
                for name in ("cold", "noop", "one")
                if getattr(runs, name)
            }
    except (BenchError, subprocess.CalledProcessError) as exc:
        log(f"bench/build.py: {exc}")
        return 1

    table = markdown_table(summaries)
    load = os.getloadavg()
    print(table)
    print(f"\nload average (1 min): {start_load[0]:.1f} at the start, {load[0]:.1f} at the end")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"build-{started:%Y-%m-%d-%H%M%S}.json"
    result = {
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {
            "sizes": args.sizes,
            "repeat": args.repeat,
            "only_hugo": args.only_hugo,
            "no_hugo": args.no_hugo,
            "ours_cmd": args.ours_cmd,
            "hugo_cmd": shlex.join(hugo_cmd(Path("SITE"))),
            "sample_seconds": args.sample,
            "load_average_start": start_load,
            "load_average_end": os.getloadavg(),
        },
        "targets": {
            "cold_ratio_max": COLD_TIME_TARGET,
            "rss_ratio_below": 1.0,
            "noop_ratio_max": NOOP_TIME_TARGET,
            "one_change_ratio_max": ONE_CHANGE_TIME_TARGET,
            "one_change_target_min_size": ONE_CHANGE_TARGET_MIN_SIZE,
            "tree_memory_ratio_max": TREE_MEMORY_TARGET,
        },
        "summaries": summaries,
        "runs": raw,
        "table_markdown": table,
        "notes": "seconds: wall time (perf_counter); cpu_seconds: user + system from os.wait4 "
        "(the child and the descendants it reaped); peak_rss_kib: ru_maxrss from os.wait4 (the "
        "largest single process); tree_rss_kib / tree_pss_kib: peaks of the tree's summed "
        "RSS / PSS sampled from /proc every sample_seconds; sync: the catalog sync's figures "
        "from our build's DEBUG log",
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
