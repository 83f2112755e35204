"""Hostile clients and hubs, on real sockets on 127.0.0.1 (issue #15, items 3 and 4).

The server: slow clients (slowloris) never take every connection nor the builds'
descriptors, headers have a deadline, malformed requests are 4xx at DEBUG. The hubs: a hub
that trickles or never answers cannot hold a build, the state lock, another hub or a stop.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from articlefiles import write_article
from building import folder_settings
from httpcheck import Client, build, titles
from hubs import RecordingHub, recording_hub
from services import service_missing
from slowclients import SlowClients, allow_descriptors, silent_hub, trickling_hub
from waiting import TIMEOUT, wait_for

from aggregator.catalog import Catalog
from aggregator.config import Settings
from aggregator.pipeline import lock_held
from aggregator.serve import FeedServer
from aggregator.serve.limits import connection_cap, listen_backlog

# --- the server ------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path, seeds=True, base_url="http://localhost:8000/", port=0)


@pytest.fixture
def server(settings: Settings) -> Iterator[FeedServer]:
    build(settings)
    server = FeedServer(settings)
    server.max_connections = 20
    server.header_seconds = 1.0
    with server:
        yield server


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        return sock.recv(300)


def test_the_cap_keeps_a_reserve_of_descriptors() -> None:
    # A quarter (at least 128) for the builds, and an accept burst (the backlog).
    assert (connection_cap(1024), listen_backlog(1024)) == (672, 96)
    assert (connection_cap(256), listen_backlog(256)) == (112, 16)
    assert connection_cap(100) == 16  # a tiny limit still lets some clients in
    assert (connection_cap(65536), listen_backlog(65536)) == (49024, 128)


def test_malformed_requests_are_4xx_and_logged_at_debug(
    server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    huge = b"9" * 5000
    get = b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n"
    expected = {
        b"Range: bytes=" + huge + b"-\r\n": 416,  # was a 500 with an ERROR line
        b"Range: bytes=-" + huge + b"\r\n": 206,  # a suffix longer than the file: all of it
        b"Range: bytes=0-" + huge + b"\r\n": 206,  # a last byte past the end: to the end
        b"Range: bytes=\xd9\xa3-\r\n": 416,  # not ASCII digits
        b"Range: bytes=a-b\r\n": 416,
        b"If-Modified-Since: Mon, 01 Jan " + huge[:4000] + b" 00:00:00 GMT\r\n": 200,
        b"If-Unmodified-Since: 1 Jan 99999999999 00:00:00 GMT\r\n": 200,
        b"If-Range: Mon, 01 Jan 99999999999 00:00:00 GMT\r\nRange: bytes=0-1\r\n": 200,
        b"If-None-Match: " + b'"a",' * 2000 + b"\r\n": 200,
        b'If-None-Match: W/W/"\r\n': 200,
        b"Accept-Encoding: gzip;q=" + huge[:3000] + b"\r\n": 200,
        b"If-Modified-Since: \x01\x02\r\n": 400,
        b"Content-Length: " + huge[:100] + b"\r\n": 400,
        b"".join(b"X-%d: y\r\n" % i for i in range(500)): 400,  # a header flood
        b"X-Big: " + b"a" * 70_000 + b"\r\n": 400,
    }
    for headers, status in expected.items():
        reply = raw_request(server.port, get + headers + b"\r\n")
        assert reply.startswith(b"HTTP/1.1 %d " % status) or (
            status == 400 and re.match(rb"HTTP/1\.[01] 4(00|31) ", reply)
        ), (headers[:60], reply[:60])
    odd = {
        b"BREW /all.rss.xml HTTP/1.1\r\n": 400,
        b"FOO\x01 / HTTP/1.1\r\n": 400,
        b"A" * 9000 + b" / HTTP/1.1\r\n": 400,
        b"GET /" + b"a/" * 3000 + b" HTTP/1.1\r\n": 404,
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n": 404,  # longer than a file name may be
        b"GET /%ff%fe%00 HTTP/1.1\r\n": 404,
        b"GET all.rss.xml HTTP/1.1\r\n": 400,
        b"GET /all.rss.xml HTTP/9.9\r\n": 400,
        b"OPTIONS * HTTP/1.1\r\n": 405,
        b"CONNECT x:443 HTTP/1.1\r\n": 405,
    }
    for line, status in odd.items():
        reply = raw_request(server.port, line + b"Host: x\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] %d " % status, reply), (line[:60], reply[:60])
    client = Client(server.port)
    assert client.get("/all.rss.xml")[0] == 200  # still serving
    client.close()
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG and "serve" in r.name]
    assert not [r for r in caplog.records if r.exc_info]


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_client_that_never_finishes_its_headers_is_closed(server: FeedServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.setblocking(False)
    head = iter(b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000)

    def trickled_and_closed() -> bool:
        try:
            sock.send(bytes([next(head)]))  # a byte per poll: the deadline counts, not idleness
        except OSError:
            return True
        return closed_by_server(sock)

    wait_for(trickled_and_closed, "the server closing a client whose headers never end")
    sock.close()
    # An idle keep-alive connection is closed too (the same deadline).
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    idle.request("GET", "/all.rss.xml")
    assert idle.getresponse().read()
    assert idle.sock is not None
    idle.sock.setblocking(False)
    wait_for(lambda: closed_by_server(idle.sock), "the idle keep-alive connection closed")  # type: ignore[arg-type]
    idle.close()


def test_at_the_cap_the_longest_idle_connection_makes_way(
    server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert server.server is not None
    with SlowClients(server.port, 60, interval=0.05) as slow:
        wait_for(lambda: slow.closed_by_server >= 60, "slow clients pushed out by newer ones")
        for _ in range(5):
            client = Client(server.port)
            status, _, body = client.get("/all.rss.xml")
            client.close()
            assert status == 200
            assert titles(body)
        assert server.server.open_connections <= server.max_connections
    cap_lines = [r for r in caplog.records if "client connections open" in r.getMessage()]
    assert len(cap_lines) == 1, "once per interval, not once per connection"
    assert cap_lines[0].levelno == logging.WARNING


def limited(descriptors: int, *command: str) -> list[str]:
    """`command` run under a descriptor limit of `descriptors` (set, then exec'd)."""
    limit = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({descriptors}, {descriptors})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", limit, *command]


def read_lines(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
        proc.stderr.close()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def run_serve(settings: Settings, descriptors: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        limited(
            descriptors,
            *(sys.executable, "-m", "aggregator", "run", "--serve", "--port", "0"),
            *("--input", str(settings.input), "--output", str(settings.output)),
            *("--state", str(settings.state), "--base-url", "http://localhost:8000/"),
        ),
        cwd=settings.input.parent,
        stderr=subprocess.PIPE,
        text=True,
    )


def served_port(lines: list[str]) -> int:
    (line,) = [x for x in lines if "serving" in x]
    return int(re.search(r"http://127\.0\.0\.1:(\d+)/", line)[1])  # type: ignore[index]


def test_run_serve_under_slowloris_serves_readers_and_publishes_drops(settings: Settings) -> None:
    if not allow_descriptors(900):
        pytest.skip("this machine's hard descriptor limit is below 900 + the test's own")
    proc = run_serve(settings, 256)  # a cap of 128 connections: the test stays cheap
    lines: list[str] = []
    reader = read_lines(proc, lines)
    try:
        wait_for(lambda: any("build finished" in x for x in lines), "the first build")
        port = served_port(lines)
        with SlowClients(port, 900, interval=1.0) as slow:
            wait_for(lambda: slow.closed_by_server >= 900, "the server pushing slow clients out")
            client = Client(port)
            assert client.get("/all.rss.xml")[0] == 200
            write_article(settings.input, "new.txt", "https://new.example.com/", title="Dropped")
            wait_for(
                lambda: "Dropped" in titles(client.get("/all.rss.xml")[2]),
                "the dropped article published and served while 900 slow clients wait",
            )
            client.close()
            assert slow.open > 0  # they were still at it
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(TIMEOUT)
    log = "\n".join(lines)
    assert code == 0, log[-3000:]
    assert "Traceback" not in log
    assert "Too many open files" not in log
    assert len([x for x in lines if "client connections open" in x]) <= 3, log[-3000:]
    assert len(lines) < 100, "the log grows by lines per interval, not per connection"


# --- the hubs --------------------------------------------------------------------------------


def hub_settings(tmp_path: Path, *hubs: str) -> Path:
    """A config with the seeds and `hubs`; returns its path."""
    settings = folder_settings(tmp_path, seeds=True)
    config = tmp_path / "aggregator.yaml"
    listed = "".join(f"\n    - {h}" for h in hubs)
    config.write_text(
        f"input: {settings.input}\noutput: {settings.output}\nstate: {settings.state}\n"
        f"base_url: https://feeds.example.org/\nworkers: 1\nwebsub:\n  hubs:{listed}\n"
        "daemon:\n  debounce_seconds: 0.05\n",
        encoding="utf-8",
    )
    return config


def owed(state: Path) -> int:
    catalog = Catalog(state / "catalog.sqlite3", readonly=True)
    try:
        return len(catalog.owed_pings())
    finally:
        catalog.close()


def cli(config: Path, *args: str, stdout: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", *args, "--config", str(config)],
        cwd=config.parent,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_build_with_a_trickling_hub_ends_and_never_holds_the_lock_meanwhile(
    tmp_path: Path,
) -> None:
    with trickling_hub(interval=0.5) as hub:
        config = hub_settings(tmp_path, hub)
        state = tmp_path / "state"
        build = cli(config, "build")
        # The feeds are written and the pings under way: the lock must already be free.
        wait_for((tmp_path / "out" / "all.rss.xml").exists, "the feeds written")
        wait_for(lambda: build.poll() is not None or lock_held(state) is False, "the lock free")
        if build.poll() is None:
            again = cli(config, "build")  # a second build is not refused meanwhile
            _, err = again.communicate(timeout=TIMEOUT)
            assert again.returncode == 0, err
        out, err = build.communicate(timeout=TIMEOUT)  # ends: the pings have a deadline
    assert build.returncode == 0, err
    assert "Traceback" not in err
    assert lock_held(state) is False
    assert owed(state) == 12  # nothing sent: owed for the next run
    assert "12 failed" in out
    # One line for the hub, not one per ping.
    assert len([x for x in err.splitlines() if hub in x and "WARNING" in x]) == 1, err


@pytest.mark.parametrize("hub_kind", ["silent", "trickling"])
def test_a_dead_hub_costs_a_build_one_deadline_not_one_per_ping(
    tmp_path: Path, hub_kind: str
) -> None:
    hub_of = silent_hub() if hub_kind == "silent" else trickling_hub(interval=1.0)
    with hub_of as hub:
        config = hub_settings(tmp_path, hub)
        # 60 more feeds: each owes 3 pings; at one deadline per 4 pings that would be minutes.
        for i in range(60):
            write_article(
                tmp_path / "in", f"p{i}.txt", f"https://p{i}.example.com/", topics=[f"T{i}"]
            )
        build = cli(config, "build")
        out, err = build.communicate(timeout=TIMEOUT)
    assert build.returncode == 0, err
    assert owed(tmp_path / "state") > 180
    assert "Traceback" not in err
    seconds = float(re.search(r"; ([0-9.]+) s", out)[1])  # type: ignore[index]
    assert seconds < TIMEOUT


def test_the_daemon_sends_a_healthy_hubs_pings_while_a_slow_one_stalls_and_stops_in_5_s(
    tmp_path: Path,
) -> None:
    healthy: RecordingHub
    with recording_hub() as healthy, trickling_hub(interval=0.5) as slow:
        config = hub_settings(tmp_path, slow, healthy.url)
        daemon = cli(config, "run", stdout=subprocess.DEVNULL)
        lines: list[str] = []
        reader = read_lines(daemon, lines)
        try:
            wait_for(lambda: len(healthy.pings) >= 12, "the healthy hub's 12 pings")
            write_article(tmp_path / "in", "new.txt", "https://n.example.com/", topics=["Robotics"])
            wait_for(lambda: len(healthy.pings) >= 12 + 9, "the next change's 9 pings")
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=TIMEOUT)
            stopped_in = time.monotonic() - started
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            reader.join(TIMEOUT)
    log = "\n".join(lines)
    assert code == 0, log
    assert stopped_in < 5, f"SIGTERM took {stopped_in:.1f} s with a slow hub"
    assert "Traceback" not in log
    sent_lines = [x for x in lines if healthy.url in x and "pings sent" in x]
    # Per-hub lines: a handful for 21 pings, not one per ping.
    assert 1 <= len(sent_lines) <= 4, log
    assert lines[-1].endswith("stopped")


def test_a_hub_whose_name_lookup_never_answers_costs_the_ping_its_deadline(
    tmp_path: Path,
) -> None:
    """The name lookup has no timeout of its own: a resolver that swallows every query
    held a ping (and its build) for as long as the resolver's own retries took."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        service_missing("a private resolver needs root and unshare (util-linux)")
    # A name server that reads every query and answers none, for one process only: its
    # /etc/resolv.conf is bind-mounted over in a mount namespace of its own.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.77", 53))
    sink.settimeout(TIMEOUT)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.77\noptions timeout:30 attempts:1\n")
    script = (
        "from aggregator.delivery.websub import ping\n"
        "r = ping('http://hub.aggregator-test.example/', 'https://feeds.example/all.rss.xml',"
        " seconds=1.0)\n"
        "print(r.ok, r.reason)\n"
    )
    with sink:
        child = subprocess.Popen(
            [
                "unshare",
                "-m",
                "sh",
                "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$1" -c "$2"',
                str(resolv),
                sys.executable,
                script,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            query, _ = sink.recvfrom(512)  # the lookup did go to the silent server
            out, err = child.communicate(timeout=TIMEOUT)
        finally:
            child.kill()
            child.wait()
    assert b"aggregator-test" in query
    assert child.returncode == 0, err
    assert out.startswith("False cannot reach the hub"), out
    # The deadline's own words, not the resolver's failure 30 s later.
    assert "the name lookup of hub.aggregator-test.example gave no answer within 1 s" in out
