#!/usr/bin/env python3
"""Push benchmark: how soon a dropped file reaches a WebSub subscriber through a real hub.

Run it from the repository root with the project's virtual environment (the dev extra
brings the hub, flask-websub)::

    .venv/bin/python bench/push.py            # 10,000 articles, 60 drops, a burst of 1,000
    .venv/bin/python bench/push.py --quick    # 1,000 articles, 20 drops, a burst of 200

Set-up, all on 127.0.0.1: flask-websub's hub (``tests/websub_hub.py``, Celery eager: it
fetches the topic and delivers inside the publish request), ``python -m aggregator run
--serve`` over a catalog of ``--count`` articles from ``tests/corpus.py`` with
the hub configured (debounce 0.2 s, ceiling 2 s, JSON log lines), and a subscriber
(``tests/subscriber.py``) subscribed to ``all.atom.xml`` with a secret.

1. **Drop → delivery**, ``--drops`` times, one after another: a new article file made the
   newest (so it enters ``all``) is written; the clock runs from just before the write until
   the subscriber has received an ``all.atom.xml`` delivery that lists it (its signature is
   checked too). p50, p95, max. Target: p95 <= 1 s.
2. **Burst**: ``--burst`` new files are copied in as fast as the disk allows. Once the
   daemon has built them all and its pings are sent, the JSON log gives, per topic (a feed
   file's URL), the pings sent and the builds that wrote that feed. Target: no topic is
   pinged more often than builds wrote it (at most one ping per changed topic per build).

Prints a Markdown table, writes ``bench/results/push-<date>.json`` and replaces the "Push
(WebSub)" section of ``bench/README.md`` (``--no-readme`` to skip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "bench"), str(REPO_ROOT / "tests")]

from daemon import (  # noqa: E402  (bench/daemon.py: corpora, targets, percentiles)
    CORPUS,
    BenchError,
    Folders,
    generate,
    log,
    machine,
    make_target,
    percentile,
    write_readme_section,
)
from subscriber import Subscriber, running_subscriber, signature_ok, subscribe  # noqa: E402

DEFAULT_WORKDIR = Path("/tmp/aggregator-bench-push")
README = REPO_ROOT / "bench" / "README.md"
SECTION = "## Push (WebSub)"
SECRET = "bench secret"
P95_TARGET = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait(predicate: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class Hub:
    """tests/websub_hub.py in a process of its own."""

    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "tests" / "websub_hub.py"), str(state)],
            stdout=subprocess.PIPE,
            stderr=(state / "hub.log").open("w"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise BenchError(f"the hub did not start; see {state / 'hub.log'}")
        self.url = line.split()[1]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Aggregator:
    """`python -m aggregator run --serve` with the hub configured; its JSON log in a file."""

    def __init__(self, folders: Folders, work: Path, hub: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.folders = folders
        config = work / "aggregator.yaml"
        config.write_text(
            f"input: {folders.input}\noutput: {folders.output}\nstate: {folders.state}\n"
            f"base_url: {self.base}\nwebsub:\n  hubs: [{hub}]\n"
            "logging: {format: json}\n",
            encoding="utf-8",
        )
        self.log_path = work / "aggregator.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aggregator",
                "run",
                "--serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
            ],
            cwd=work,
            env={**os.environ, "MALLOC_ARENA_MAX": "2"},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        self._reader = self.log_path.open()
        self._partial = ""
        self.records: list[dict[str, Any]] = []

    def poll(self) -> None:
        self._partial += self._reader.read()
        *lines, self._partial = self._partial.split("\n")  # the last one may be half written
        for line in lines:
            try:
                self.records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a traceback line; the log file keeps it
        if self.proc.poll() is not None:
            raise BenchError(f"aggregator exited ({self.proc.returncode}); see {self.log_path}")

    def published(self) -> int | None:
        self.poll()
        finished = [r for r in self.records if r.get("event") == "build_finished"]
        return int(finished[-1]["published"]) if finished else None

    def owed_pings(self) -> int:
        db = sqlite3.connect(f"file:{self.folders.state / 'catalog.sqlite3'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM pending_pings").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return -1
        finally:
            db.close()

    def settle(self, published: int, timeout: float) -> None:
        """Wait until a build reports `published` items and every ping it owed is sent."""
        wait(lambda: self.published() == published, f"{published:,} published", timeout)
        wait(lambda: self.owed_pings() == 0, "the owed pings sent", timeout)
        # Each ping is logged before its row is forgotten: every line is in the file now.
        self.poll()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        self._reader.close()
        return code


def count_published(files: Sequence[Path]) -> int:
    from aggregator.reading import parse_article

    return sum(parse_article(p.read_bytes(), p.name).published for p in files)


def drop_latencies(
    aggregator: Aggregator, subscriber: Subscriber, drops: Sequence[Path]
) -> list[float]:
    latencies = []
    for index, source in enumerate(drops):
        target = make_target(source, index, aggregator.folders.output)
        needle = target.url.encode()
        started = time.monotonic()
        (aggregator.folders.input / target.name).write_text(target.text, encoding="utf-8")
        wait(
            lambda n=needle: any(n in d.body for d in subscriber.deliveries("all")),  # type: ignore[misc]
            f"the delivery of drop {index}",
            30.0,
        )
        delivery = next(d for d in subscriber.deliveries("all") if needle in d.body)
        if not signature_ok(SECRET, delivery):
            raise BenchError(f"drop {index}: the delivery's X-Hub-Signature does not match")
        latencies.append(delivery.arrived - started)
    return latencies


def burst_pings(aggregator: Aggregator, files: Sequence[Path], published: int) -> dict[str, Any]:
    """Copy `files` in at once; per topic, the pings sent against the builds that wrote it."""
    aggregator.poll()
    first = len(aggregator.records)
    started = time.monotonic()
    for path in files:
        shutil.copyfile(path, aggregator.folders.input / path.name)
    aggregator.settle(published, 300.0)
    seconds = time.monotonic() - started
    records = aggregator.records[first:]
    builds = [r for r in records if r.get("event") == "build_finished"]
    writes = Counter(str(r["feed"]) for r in records if r.get("event") == "feed_written")
    pings = Counter(
        str(r["topic"]) for r in records if r.get("event") in ("hub_pinged", "hub_ping_failed")
    )
    base = aggregator.base
    suffixes = (".rss.xml", ".atom.xml", ".json")

    def feed_of(topic: str) -> str:
        path = topic.removeprefix(base)
        return next(path.removesuffix(s) for s in suffixes if path.endswith(s))

    over = {t: (n, writes[feed_of(t)]) for t, n in pings.items() if n > writes[feed_of(t)]}
    ratio = max((n / writes[feed_of(t)] for t, n in pings.items() if writes[feed_of(t)]), default=0)
    return {
        "files": len(files),
        "seconds": round(seconds, 3),
        "builds": len(builds),
        "feeds_written": sum(writes.values()),
        "topics_pinged": len(pings),
        "pings": sum(pings.values()),
        "failed_pings": sum(1 for r in records if r.get("event") == "hub_ping_failed"),
        "max_pings_per_write": round(ratio, 3),
        "over": over,
    }


def run(args: argparse.Namespace, gen_corpus: Path) -> dict[str, Any]:
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log(f"corpora: {args.count:,} base, {args.drops} drops, a burst of {args.burst:,}")
    base_files = generate(gen_corpus, work / "corpus-base", args.count, 0)
    drops = generate(gen_corpus, work / "corpus-drops", args.drops, 20_000)
    burst = generate(gen_corpus, work / "corpus-burst", args.burst, 30_000)
    folders = Folders.fresh(work / "run")
    for path in base_files:
        shutil.copyfile(path, folders.input / path.name)
    published = count_published(base_files)

    hub = Hub(work)
    aggregator = None
    try:
        aggregator = Aggregator(folders, work, hub.url)
        log(f"aggregator: cold build of {args.count:,} articles, and a ping per feed file")
        started = time.monotonic()
        aggregator.settle(published, 600.0)
        cold = time.monotonic() - started
        initial_pings = sum(1 for r in aggregator.records if r.get("event") == "hub_pinged")
        with running_subscriber() as subscriber:
            topic = aggregator.base + "all.atom.xml"
            if subscribe(hub.url, topic, subscriber.callback("all"), SECRET) != 202:
                raise BenchError("the hub refused the subscription")
            log(f"{args.drops} drops, each until the subscriber has its delivery")
            latencies = drop_latencies(aggregator, subscriber, drops)
            published += args.drops
            aggregator.settle(published, 60.0)
            log(f"a burst of {args.burst:,} files")
            burst_result = burst_pings(aggregator, burst, published + count_published(burst))
        code = aggregator.stop()
        aggregator = None
    finally:
        if aggregator is not None:
            aggregator.stop()
        hub.stop()
    return {
        "count": args.count,
        "drops": args.drops,
        "cold_seconds": round(cold, 3),
        "cold_pings": initial_pings,
        "p50": round(percentile(latencies, 0.5), 3),
        "p95": round(percentile(latencies, 0.95), 3),
        "max": round(max(latencies), 3),
        "burst": burst_result,
        "exit_code": code,
    }


def table(r: dict[str, Any]) -> str:
    b = r["burst"]
    p95_ok = "yes" if r["p95"] <= P95_TARGET else "**no**"
    burst_ok = "yes" if not b["over"] else "**no**"
    return "\n".join(
        [
            "| measure | value | target | met |",
            "| --- | --- | --- | --- |",
            f"| drop → delivery p50 ({r['drops']} drops) | {r['p50']:.3f} s | | |",
            f"| drop → delivery p95 | {r['p95']:.3f} s | ≤ {P95_TARGET:g} s | {p95_ok} |",
            f"| drop → delivery max | {r['max']:.3f} s | | |",
            f"| burst: files / builds / feeds written | {b['files']:,} / {b['builds']} / "
            f"{b['feeds_written']:,} | | |",
            f"| burst: pings / topics pinged | {b['pings']:,} / {b['topics_pinged']:,} | | |",
            f"| burst: most pings of a topic per build writing it | "
            f"{b['max_pings_per_write']:g} | ≤ 1 | {burst_ok} |",
            f"| cold start: build + {r['cold_pings']:,} pings | {r['cold_seconds']:.1f} s | | |",
        ]
    )


def update_readme(results: dict[str, Any], when: str) -> None:
    section = "\n".join(
        [
            SECTION,
            "",
            "`bench/push.py` measures WebSub end to end: a file dropped into the input folder",
            "until a subscriber has the new `all.atom.xml` bytes, delivered and signed by a real",
            "hub (flask-websub, Celery eager) that fetched them from `aggregator run --serve`.",
            "See the script's docstring for the method. Run it from the repository root:",
            "",
            "    .venv/bin/python bench/push.py   # 10,000 articles, 60 drops, burst 1,000",
            "",
            f"Last run: {when}, {machine()}; {results['count']:,} articles in the catalog,",
            "default daemon settings (debounce 0.2 s, ceiling 2 s), one hub, three formats.",
            "",
            table(results),
            "",
            "Reading the figures: a drop's time is the 0.2 s quiet interval, one small build,",
            "the ping, the hub's fetch of the topic from aggregator's server and its POST to the",
            "subscriber (this hub delivers inside the publish request). Each build pings each",
            "changed file once; a topic can only be pinged again by a later build that changed",
            "it again, which the burst check counts from the JSON log. A drop changes nine",
            "files (three feeds, three formats), so its `all.atom.xml` ping may wait behind",
            "others in the daemon's four ping threads; the disk alone is reached sooner (see",
            "the Daemon section).",
            "",
        ]
    )
    write_readme_section(SECTION, section)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="articles in the catalog")
    parser.add_argument("--drops", type=int, default=60, help="drops timed one by one")
    parser.add_argument("--burst", type=int, default=1_000, help="files copied in at once")
    parser.add_argument("--quick", action="store_true", help="1,000 articles, 20 drops, 200")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--no-readme", action="store_true", help="do not edit bench/README.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.drops, args.burst = 1_000, 20, 200
    try:
        results = run(args, CORPUS)
    except BenchError as exc:
        print(f"bench/push.py: {exc}", file=sys.stderr)
        return 1
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    print(table(results))
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    data = {"when": when, "machine": machine(), **results}
    (args.results / f"push-{stamp}.json").write_text(json.dumps(data, indent=1))
    if not args.no_readme:
        update_readme(results, when)
        log(f"wrote the {SECTION[3:]} section of {README}")
    return 0 if results["p95"] <= P95_TARGET and not results["burst"]["over"] else 1


if __name__ == "__main__":
    sys.exit(main())
