#!/usr/bin/env python3
"""Serving benchmark: ``aggregator serve`` and nginx side by side on one ~50 kB feed.

Run it from the repository root with the project's virtual environment, with wrk and nginx
installed (Debian: ``sudo apt-get install -y wrk nginx-light``)::

    .venv/bin/python bench/serve.py                  # 10 s per run, 32 connections
    .venv/bin/python bench/serve.py --seconds 3      # quicker

What it does, everything on 127.0.0.1:

1. Writes ``--articles`` (42) article files with seeded pseudo-random text into
   ``WORKDIR/in`` and builds them (``aggregator build``): ``all.rss.xml`` is about 50 kB (the
   size is printed), with its gzip sidecar.
2. Starts ``aggregator serve`` (one process, one event loop) and nginx with
   ``deploy/nginx.conf`` (``listen`` and ``root`` substituted; ``worker_processes 1``) on
   that folder.
3. For each kind of request, our server then nginx, one bounded wrk run each
   (``wrk -t1 -c32 -d10s --latency``, keep-alive): **200** (a plain GET), **304** (with
   ``If-None-Match`` set to that server's ETag, checked to give 304 first) and **gzip**
   (``Accept-Encoding: gzip``, checked to give the sidecar first). Failures are wrk's socket
   errors plus responses that are not 2xx/3xx; the bytes read per request are shown as a check
   that each run got what it asked for.
4. Memory: ``aggregator run`` alone, then ``aggregator run --serve`` over the same folders,
   each until its first build is done, the second after serving a 3 s wrk run of each kind;
   ``VmRSS`` of the process (``/proc/PID/status``) then. ``MALLOC_ARENA_MAX=2`` as the systemd
   unit sets it.

Targets: 0 failures; our 304 throughput ≥ 0.15 x nginx's; ``run --serve`` ≤ 30 MiB more RSS
than ``run``. Prints a Markdown table and writes ``bench/results/serve-<date>.json``.
Both servers and wrk share the machine's cores, so absolute figures understate both; the
ratios are what to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = Path("/tmp/aggregator-bench-serve")
SITE = REPO_ROOT / "deploy" / "nginx.conf"
FEED = "/all.rss.xml"
KINDS = ("200", "304", "gzip")
RATIO_304_TARGET = 0.15
RSS_TARGET_MIB = 30.0
WORDS = """
data model feed supply chain predict demand energy grid vision robot cloud edge privacy market
network sensor battery policy health city climate learning faster cheaper safer open research
team launch report growth risk platform customer
""".split()  # noqa: SIM905 (a list literal would be 35 lines)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def write_corpus(folder: Path, count: int) -> None:
    rng = random.Random(1)
    folder.mkdir(parents=True)
    for n in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(110))
        title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
        (folder / f"a{n:03d}.md").write_text(
            "---\n"
            f'title: "{title}"\n'
            f'excerpt: "{words}"\n'
            f"publishedDateTime: 2026-01-{1 + n % 28:02d}T{n % 24:02d}:00:00Z\n"
            f'webUrl: "https://news.example.com/{n}"\n'
            "published: true\n"
            "provider: {name: Example News, domain: news.example.com}\n"
            f"topics: [{rng.choice(WORDS).capitalize()}, {rng.choice(WORDS).capitalize()}]\n"
            "---\n",
            encoding="utf-8",
        )


def aggregator(*args: str) -> list[str]:
    return [sys.executable, "-m", "aggregator", *args]


@dataclass
class Run:
    server: str
    kind: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int
    bytes_per_request: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def wrk(
    server: str,
    kind: str,
    url: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    *,
    seconds: float,
) -> Run:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds:g}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", out)
    assert done is not None, out
    requests = int(done[1])
    duration = float(done[2]) * {"s": 1.0, "ms": 0.001, "m": 60.0}[done[3]]
    read = float(done[4]) * _SIZES[done[5]]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failures = (sum(int(x) for x in errors.groups()) if errors else 0) + (int(bad[1]) if bad else 0)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    if p50 is None or p99 is None:
        raise SystemExit(f"wrk printed no latency distribution:\n{out}")
    return Run(
        server,
        kind,
        requests,
        duration,
        requests / duration,
        _ms(p50[1]),
        _ms(p99[1]),
        failures,
        read / max(1, requests),
    )


def probe(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, b""


def request_headers(base: str) -> dict[str, dict[str, str]]:
    """The headers of each kind of run, checked once on `base` to get what they ask for."""
    status, headers, body = probe(base + FEED, {})
    if status != 200 or not body:
        raise SystemExit(f"{base}{FEED}: status {status}")
    etag = headers["etag"]
    status, _, _ = probe(base + FEED, {"If-None-Match": etag})
    assert status == 304, f"{base}: If-None-Match gave {status}"
    status, zipped, _ = probe(base + FEED, {"Accept-Encoding": "gzip"})
    if status != 200 or zipped.get("content-encoding") != "gzip":
        raise SystemExit(f"{base}{FEED}: no gzip for Accept-Encoding: gzip ({status})")
    return {"200": {}, "304": {"If-None-Match": etag}, "gzip": {"Accept-Encoding": "gzip"}}


class Nginx:
    def __init__(self, work: Path, root: Path) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        work.mkdir(parents=True)
        self.port = free_port()
        site = SITE.read_text(encoding="utf-8")
        site = re.sub(r"(?m)^\s*listen\s+80;\n", f"    listen 127.0.0.1:{self.port};\n", site)
        site = re.sub(r"(?m)^\s*listen\s+\[::\]:80;\n", "", site)
        site = re.sub(r"(?m)^(\s*root\s+)/srv/aggregator/feeds;", rf"\g<1>{root};", site)
        (work / "site.conf").write_text(site, encoding="utf-8")
        user = "user root;\n" if os.geteuid() == 0 else ""
        temps = "".join(
            f"    {k}_temp_path {work}/{k};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (work / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\n"
            f"events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n"
            f"    sendfile on;\n    keepalive_requests 1000000;\n{temps}"
            f"    include {work}/site.conf;\n}}\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [nginx, "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"]
        )
        wait_listening(self.port, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match[1]) / 1024


def start_daemon(
    work: Path, env: dict[str, str], *extra: str
) -> tuple[subprocess.Popen[str], Path]:
    log_path = work / f"run{'-serve' if extra else ''}.log"
    handle = log_path.open("w")
    proc = subprocess.Popen(
        aggregator(
            "run",
            "--input",
            str(work / "in"),
            "--output",
            str(work / "out"),
            "--state",
            str(work / "state"),
            *extra,
        ),
        cwd=work,
        env=env,
        stderr=handle,
        text=True,
    )
    deadline = time.monotonic() + 120
    while "build finished" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"aggregator run failed:\n{log_path.read_text()}")
        time.sleep(0.05)
    return proc, log_path


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    if code != 0:
        raise SystemExit(f"exit code {code} after SIGTERM")


def memory(work: Path, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, MALLOC_ARENA_MAX="2")
    proc, _ = start_daemon(work, env)
    time.sleep(1.0)  # settle: the scheduler's and watcher's threads are up
    alone = rss_mib(proc.pid)
    stop(proc)
    port = free_port()
    proc, _ = start_daemon(work, env, "--serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_listening(port, proc)
    idle = rss_mib(proc.pid)
    for kind, headers in request_headers(base).items():
        wrk("ours (run --serve)", kind, base + FEED, headers, args, seconds=3)
    served = rss_mib(proc.pid)
    stop(proc)
    return {"run": alone, "run_serve_idle": idle, "run_serve_after_load": served}


def table(runs: list[Run], mem: dict[str, float], size: int, gz_size: int) -> str:
    by = {(r.server, r.kind): r for r in runs}
    lines = [
        f"Feed: `all.rss.xml`, {size:,} bytes ({gz_size:,} gzipped).",
        "",
        "| requests | ours: req/s (p50 / p99 ms) | nginx: req/s (p50 / p99 ms) | ours / nginx |"
        " failures (ours, nginx) | bytes/request (ours, nginx) |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for kind in KINDS:
        ours, nginx = by[("ours", kind)], by[("nginx", kind)]
        lines.append(
            f"| {kind} | {ours.rps:,.0f} ({ours.p50_ms:.1f} / {ours.p99_ms:.1f}) "
            f"| {nginx.rps:,.0f} ({nginx.p50_ms:.1f} / {nginx.p99_ms:.1f}) "
            f"| {ours.rps / nginx.rps:.3f} | {ours.failures}, {nginx.failures} "
            f"| {ours.bytes_per_request:,.0f}, {nginx.bytes_per_request:,.0f} |"
        )
    ratio = by[("ours", "304")].rps / by[("nginx", "304")].rps
    failures = sum(r.failures for r in runs)
    added = mem["run_serve_after_load"] - mem["run"]
    lines += [
        "",
        "| target | result | |",
        "| --- | --- | --- |",
        f"| 0 failures | {failures} | {'pass' if failures == 0 else '**FAIL**'} |",
        f"| our 304 req/s ≥ {RATIO_304_TARGET} x nginx's | {ratio:.3f}x "
        f"| {'pass' if ratio >= RATIO_304_TARGET else '**FAIL**'} |",
        f"| `run --serve` RSS ≤ `run` + {RSS_TARGET_MIB:g} MiB | run {mem['run']:.1f} MiB; "
        f"run --serve {mem['run_serve_idle']:.1f} MiB idle, "
        f"{mem['run_serve_after_load']:.1f} MiB after load (+{added:.1f} MiB) "
        f"| {'pass' if added <= RSS_TARGET_MIB else '**FAIL**'} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--articles", type=int, default=42, help="articles (feed size)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(
                f"bench/serve.py: {tool} is not installed (sudo apt-get install -y wrk "
                "nginx-light)",
                file=sys.stderr,
            )
            return 1
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    write_corpus(work / "in", args.articles)
    subprocess.run(
        aggregator(
            "build",
            "--input",
            str(work / "in"),
            "--output",
            str(work / "out"),
            "--state",
            str(work / "state"),
            "--base-url",
            "http://localhost:8000/",
        ),
        cwd=work,
        check=True,
        capture_output=True,
    )
    size = (work / "out" / "all.rss.xml").stat().st_size
    gz_size = (work / "out" / "all.rss.xml.gz").stat().st_size
    log(f"all.rss.xml: {size:,} bytes, {gz_size:,} gzipped")

    port = free_port()
    ours = subprocess.Popen(
        aggregator(
            "serve",
            "--output",
            str(work / "out"),
            "--state",
            str(work / "state"),
            "--port",
            str(port),
            "--log-level",
            "ERROR",
        ),
        cwd=work,
    )
    nginx = None
    runs: list[Run] = []
    try:
        wait_listening(port, ours)
        nginx = Nginx(work / "nginx", work / "out")
        bases = {"ours": f"http://127.0.0.1:{port}", "nginx": f"http://127.0.0.1:{nginx.port}"}
        headers = {name: request_headers(base) for name, base in bases.items()}
        for kind in KINDS:
            for name, base in bases.items():
                log(f"{name} {kind}: wrk -c{args.connections} -d{args.seconds:g}s")
                runs.append(
                    wrk(name, kind, base + FEED, headers[name][kind], args, seconds=args.seconds)
                )
                log(f"  {runs[-1].rps:,.0f} req/s, {runs[-1].failures} failures")
    finally:
        stop(ours)
        if nginx is not None:
            nginx.stop()
    log("memory: run, then run --serve")
    mem = memory(work, args)
    text = table(runs, mem, size, gz_size)
    print(text)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H-%M-%S")
    args.results.mkdir(parents=True, exist_ok=True)
    result = {
        "when": when,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "args": {k: str(v) for k, v in vars(args).items()},
        "feed_bytes": size,
        "feed_gzip_bytes": gz_size,
        "runs": [asdict(r) for r in runs],
        "rss_mib": mem,
    }
    (args.results / f"serve-{when}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
