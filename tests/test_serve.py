"""`aggregator serve` on 127.0.0.1, a real server and a real HTTP client; publish's side of it.

What a reader needs: the right types, validators that change whenever the bytes do (so a
conditional GET never misses a change, whatever server is in front), gzip, nothing outside
the output folder, no torn response while the builder replaces feeds.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
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
from dataclasses import replace
from email.utils import formatdate
from functools import partial
from pathlib import Path

import feedparser
import pytest
from articlefiles import write_article
from building import folder_settings
from httpcheck import CONTENT_TYPES, SECOND, Client, a_then_b, build, titles
from processes import Aggregator
from waiting import TIMEOUT, wait_for

from aggregator.config import Settings, load_settings
from aggregator.errors import AggregatorError, ConfigError
from aggregator.model import RenderedFile
from aggregator.output import PublishBatch, gzip_bytes, next_mtime_ns, publish_all
from aggregator.serve import FeedServer, entity_tag

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path, seeds=True, base_url="http://localhost:8000/", port=0)


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Settings, Client]]:
    build(settings)
    with FeedServer(settings) as server:
        client = Client(server.port)
        yield settings, client
        client.close()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- publish: mtimes that always move, gzip sidecars ---------------------------------------


def test_next_mtime_is_now_or_the_whole_second_after_the_previous() -> None:
    assert next_mtime_ns(None, 5 * SECOND + 7) == 5 * SECOND + 7
    assert next_mtime_ns(5 * SECOND + 900, 5 * SECOND + 950) == 6 * SECOND
    assert next_mtime_ns(5 * SECOND, 9 * SECOND + 1) == 9 * SECOND + 1
    # A previous mtime in the future (several writes in one second) still moves on.
    assert next_mtime_ns(12 * SECOND, 10 * SECOND) == 13 * SECOND


def test_every_new_version_gets_a_later_whole_second_and_same_bytes_keep_theirs(
    tmp_path: Path,
) -> None:
    seconds = []
    for n in range(4):  # four versions within well under a second
        publish_all(tmp_path, [RenderedFile("all.rss.xml", b"<rss>%d</rss>" % n)])
        seconds.append((tmp_path / "all.rss.xml").stat().st_mtime_ns // SECOND)
    assert seconds == sorted(set(seconds)), seconds  # strictly increasing
    before = snapshot(tmp_path)
    (result,) = publish_all(tmp_path, [RenderedFile("all.rss.xml", b"<rss>3</rss>")])
    assert not result.written
    assert snapshot(tmp_path) == before


def test_a_sidecar_has_the_gzipped_bytes_and_the_mtime_of_its_file(tmp_path: Path) -> None:
    data = b"<feed>" + b"x" * 5000 + b"</feed>"
    publish_all(tmp_path, [RenderedFile("topics/ai.atom.xml", data)])
    original, sidecar = tmp_path / "topics/ai.atom.xml", tmp_path / "topics/ai.atom.xml.gz"
    assert gzip.decompress(sidecar.read_bytes()) == data
    assert sidecar.read_bytes() == gzip_bytes(data) == gzip_bytes(data)  # deterministic
    assert sidecar.stat().st_mtime_ns == original.stat().st_mtime_ns
    assert sidecar.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.rglob(".*"))  # no temp file left


def test_a_missing_or_stale_sidecar_is_rewritten_without_touching_its_file(
    tmp_path: Path,
) -> None:
    file = RenderedFile("all.rss.xml", b"<rss>one</rss>")
    publish_all(tmp_path, [file], gzip=False)
    original = tmp_path / "all.rss.xml"
    mtime = original.stat().st_mtime_ns
    assert not (tmp_path / "all.rss.xml.gz").exists()
    (result,) = publish_all(tmp_path, [file])
    assert not result.written  # the feed itself is unchanged
    assert original.stat().st_mtime_ns == mtime
    assert (tmp_path / "all.rss.xml.gz").stat().st_mtime_ns == mtime
    os.utime(tmp_path / "all.rss.xml.gz", ns=(1, 1))  # a sidecar of some other version
    publish_all(tmp_path, [file])
    assert (tmp_path / "all.rss.xml.gz").stat().st_mtime_ns == mtime


def test_with_gzip_off_an_old_sidecar_goes_when_its_file_changes(tmp_path: Path) -> None:
    publish_all(tmp_path, [RenderedFile("all.rss.xml", b"<rss>one</rss>")])
    assert (tmp_path / "all.rss.xml.gz").exists()
    publish_all(tmp_path, [RenderedFile("all.rss.xml", b"<rss>two</rss>")], gzip=False)
    assert not (tmp_path / "all.rss.xml.gz").exists()


def test_an_abandoned_batch_leaves_no_sidecar_and_no_temp_file(tmp_path: Path) -> None:
    batch = PublishBatch(tmp_path)
    batch.stage(RenderedFile("all.rss.xml", b"<rss/>"))
    batch.abandon()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_leaves_neither_the_new_file_nor_its_sidecar(tmp_path: Path) -> None:
    batch = PublishBatch(tmp_path)
    batch.stage(RenderedFile("all.rss.xml", b"<rss>new</rss>"))
    # Something takes the name before the commit: the rename over it fails.
    (tmp_path / "all.rss.xml").mkdir()
    (tmp_path / "all.rss.xml/x").write_text("x")
    (result,) = batch.commit()
    assert result.error is not None
    assert not (tmp_path / "all.rss.xml.gz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.rss.xml"]


def test_sidecars_are_not_listed_in_the_indexes(settings: Settings) -> None:
    build(settings)
    assert list(settings.output.rglob("*.gz"))
    for name in ("index.opml", "index.html"):
        assert b".gz" not in (settings.output / name).read_bytes()


# --- what a file is served as ---------------------------------------------------------------


def test_each_kind_of_file_has_its_content_type(served: tuple[Settings, Client]) -> None:
    settings, client = served
    (settings.output / "all.json").write_bytes(b'{"version": "https://jsonfeed.org/version/1.1"}')
    for path, kind in CONTENT_TYPES.items():
        status, headers, body = client.get(path)
        assert status == 200, path
        assert headers["content-type"] == kind, path
        assert headers["cache-control"] == "public, max-age=60"
        assert headers["vary"] == "Accept-Encoding"
        assert headers["x-content-type-options"] == "nosniff"
        assert int(headers["content-length"]) == len(body)
    assert client.get("/")[2] == (settings.output / "index.html").read_bytes()


def test_the_body_is_the_file_and_the_feed_parses(served: tuple[Settings, Client]) -> None:
    settings, client = served
    _, headers, body = client.get("/all.rss.xml")
    assert body == (settings.output / "all.rss.xml").read_bytes()
    feed = feedparser.parse(body)
    assert not feed.bozo
    assert len(feed.entries) == 1
    mtime = (settings.output / "all.rss.xml").stat().st_mtime_ns // SECOND
    assert headers["last-modified"] == formatdate(mtime, usegmt=True)


def test_etags_are_strong_and_follow_the_bytes_only(served: tuple[Settings, Client]) -> None:
    settings, client = served
    out = settings.output
    (out / "a.xml").write_bytes(b"<a>same</a>")
    (out / "b.xml").write_bytes(b"<a>same</a>")
    os.utime(out / "b.xml", ns=(3 * SECOND, 3 * SECOND))
    etag_a = client.get("/a.xml")[1]["etag"]
    assert re.fullmatch(r'"[A-Za-z0-9_-]{16,}"', etag_a)  # strong: no W/
    assert client.get("/b.xml")[1]["etag"] == etag_a  # same bytes, other file and mtime
    (out / "a.xml").write_bytes(b"<a>same!</a>")
    assert client.get("/a.xml")[1]["etag"] != etag_a
    (out / "a.xml").write_bytes(b"<a>same</a>")  # back to the first bytes, a new inode time
    assert client.get("/a.xml")[1]["etag"] == etag_a


def test_conditional_gets(served: tuple[Settings, Client]) -> None:
    _, client = served
    _, headers, _ = client.get("/all.rss.xml")
    etag, modified = headers["etag"], headers["last-modified"]
    for inm in (etag, f"W/{etag}", f'"nope", {etag}', f'"a", W/{etag}, "b"', "*"):
        status, reply, body = client.get("/all.rss.xml", If_None_Match=inm)
        assert (status, body) == (304, b""), inm
        assert reply["etag"] == etag
        assert reply["cache-control"] == "public, max-age=60"
        assert reply["vary"] == "Accept-Encoding"
    assert client.get("/all.rss.xml", If_None_Match='"other"')[0] == 200
    assert client.get("/all.rss.xml", If_Modified_Since=modified)[0] == 304
    earlier = formatdate(time.time() - 3600 * 24 * 365 * 20, usegmt=True)
    assert client.get("/all.rss.xml", If_Modified_Since=earlier)[0] == 200
    assert client.get("/all.rss.xml", If_Modified_Since="not a date")[0] == 200
    # If-None-Match decides when both are sent (RFC 9110 13.1.3).
    assert client.get("/all.rss.xml", If_None_Match='"x"', If_Modified_Since=modified)[0] == 200
    status, _, body = client.get("/all.rss.xml", "HEAD", If_None_Match=etag)
    assert (status, body) == (304, b"")


def test_if_match_and_if_unmodified_since(served: tuple[Settings, Client]) -> None:
    _, client = served
    etag = client.get("/all.rss.xml")[1]["etag"]
    assert client.get("/all.rss.xml", If_Match=etag)[0] == 200
    assert client.get("/all.rss.xml", If_Match="*")[0] == 200
    assert client.get("/all.rss.xml", If_Match='"other"')[0] == 412
    assert client.get("/all.rss.xml", If_Match=f"W/{etag}")[0] == 412  # strong comparison
    old = formatdate(1_000_000, usegmt=True)
    assert client.get("/all.rss.xml", If_Unmodified_Since=old)[0] == 412


def test_head_has_the_get_headers_and_no_body(served: tuple[Settings, Client]) -> None:
    _, client = served
    _, got, body = client.get("/all.atom.xml")
    status, head, nothing = client.get("/all.atom.xml", "HEAD")
    assert (status, nothing) == (200, b"")
    assert head["content-length"] == str(len(body))
    for name in ("etag", "last-modified", "content-type", "cache-control", "vary"):
        assert head[name] == got[name]


def test_ranges(served: tuple[Settings, Client]) -> None:
    _, client = served
    _, headers, body = client.get("/all.rss.xml")
    size, etag = len(body), headers["etag"]
    status, reply, part = client.get("/all.rss.xml", Range="bytes=0-9")
    assert (status, part) == (206, body[:10])
    assert reply["content-range"] == f"bytes 0-9/{size}"
    assert client.get("/all.rss.xml", Range="bytes=-5")[2] == body[-5:]
    assert client.get("/all.rss.xml", Range="bytes=10-")[2] == body[10:]
    assert client.get("/all.rss.xml", Range=f"bytes=5-{size * 2}")[2] == body[5:]
    for bad in (f"bytes={size}-", "bytes=9-3", "bytes=-0", "bytes=x-y", "bytes=-"):
        status, reply, _ = client.get("/all.rss.xml", Range=bad)
        assert status == 416, bad
        assert reply["content-range"] == f"bytes */{size}"
    # Several ranges or another unit: the whole file (RFC 9110 allows ignoring Range).
    assert client.get("/all.rss.xml", Range="bytes=0-1,4-5")[:3:2] == (200, body)
    assert client.get("/all.rss.xml", Range="lines=1-2")[:3:2] == (200, body)
    assert client.get("/all.rss.xml", Range="bytes=0-9", If_Range=etag)[0] == 206
    assert client.get("/all.rss.xml", Range="bytes=0-9", If_Range='"old"')[:3:2] == (200, body)


def test_gzip_for_clients_that_ask(served: tuple[Settings, Client]) -> None:
    settings, client = served
    _, plain, body = client.get("/all.rss.xml")
    status, zipped, data = client.get("/all.rss.xml", Accept_Encoding="gzip, deflate")
    assert status == 200
    assert zipped["content-encoding"] == "gzip"
    assert zipped["vary"] == "Accept-Encoding"
    assert zipped["content-type"] == "application/rss+xml"
    assert gzip.decompress(data) == body
    assert data == (settings.output / "all.rss.xml.gz").read_bytes()  # the sidecar
    assert zipped["etag"] != plain["etag"]
    assert zipped["last-modified"] == plain["last-modified"]
    # Each variant validates with its own ETag.
    assert (
        client.get("/all.rss.xml", If_None_Match=zipped["etag"], Accept_Encoding="gzip")[0] == 304
    )
    assert client.get("/all.rss.xml", If_None_Match=zipped["etag"])[0] == 200
    for refusing in ("gzip;q=0", "identity", "br", "*;q=0", ""):
        _, reply, raw = client.get("/all.rss.xml", Accept_Encoding=refusing)
        assert "content-encoding" not in reply, refusing
        assert raw == body
    assert client.get("/all.rss.xml", Accept_Encoding="*")[1]["content-encoding"] == "gzip"


def test_a_stale_or_missing_sidecar_is_not_served(served: tuple[Settings, Client]) -> None:
    settings, client = served
    sidecar = settings.output / "all.rss.xml.gz"
    body = (settings.output / "all.rss.xml").read_bytes()
    _, fresh, _ = client.get("/all.rss.xml", Accept_Encoding="gzip")
    # A sidecar of another version: another mtime, so it is not used.
    sidecar.write_bytes(gzip_bytes(b"<rss>an older version</rss>"))
    status, reply, data = client.get("/all.rss.xml", Accept_Encoding="gzip")
    assert status == 200
    assert reply["content-encoding"] == "gzip"
    assert gzip.decompress(data) == body
    # Compressed here the way publish does it: the same bytes, so the same ETag.
    assert reply["etag"] == fresh["etag"]
    sidecar.unlink()
    _, reply, data = client.get("/all.rss.xml", Accept_Encoding="gzip")
    assert gzip.decompress(data) == body
    assert reply["etag"] == fresh["etag"]


# --- what is never served -------------------------------------------------------------------


def test_nothing_outside_the_folder_nor_hidden_is_served(
    served: tuple[Settings, Client], tmp_path: Path
) -> None:
    settings, client = served
    out = settings.output
    (tmp_path / "secret.txt").write_text("secret")
    (out / "leak.xml").symlink_to(tmp_path / "secret.txt")
    (out / "away").symlink_to(tmp_path)
    (out / "inside.xml").symlink_to(out / "all.rss.xml")  # no link is followed at all
    (out / ".all.rss.xml.x1y2.tmp").write_text("half a feed")
    (out / ".hidden").mkdir()
    (out / ".hidden/f.xml").write_text("x")
    os.mkfifo(out / "pipe.xml")
    refused = [
        "/../secret.txt",
        "/topics/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/topics/%2e%2e/%2e%2e/secret.txt",
        "/topics%2F..%2F..%2Fsecret.txt",
        "/topics%2fai.rss.xml",
        "/topics%5c..%5c..%5csecret.txt",
        "/leak.xml",
        "/away/secret.txt",
        "/inside.xml",
        "/.all.rss.xml.x1y2.tmp",
        "/.hidden/f.xml",
        "/%2ehidden/f.xml",
        "/pipe.xml",
        "/topics",
        "/topics/",
        "//all.rss.xml",
        "/topics//ai.rss.xml",
        "/all.rss.xml%00",
        "/%ff",
        "/nothing.xml",
        "/all.rss.xml/",
    ]
    for path in refused:
        status, headers, body = client.get(path)
        assert status == 404, path
        assert b"secret" not in body
        assert b"half" not in body
        assert headers["content-type"].startswith("text/plain")


def test_a_state_folder_inside_the_output_is_not_served(tmp_path: Path) -> None:
    shutil.copytree(SEEDS, tmp_path / "in")
    settings = Settings(input=tmp_path / "in", output=tmp_path / "out", state=tmp_path / "st")
    build(settings)
    # A build refuses the state inside the output (tests/test_private_folders.py); moved
    # there by hand, the server still hands out none of it.
    settings.state.rename(settings.output / "state")
    settings = replace(settings, state=settings.output / "state", port=0)
    assert (settings.state / "catalog.sqlite3").is_file()
    with FeedServer(settings) as server:
        client = Client(server.port)
        assert client.get("/all.rss.xml")[0] == 200
        assert client.get("/state/catalog.sqlite3")[0] == 404
        assert client.get("/state/lock")[0] == 404
        client.close()


def test_bad_requests_get_4xx_and_no_traceback(
    served: tuple[Settings, Client], caplog: pytest.LogCaptureFixture
) -> None:
    _, client = served
    caplog.set_level("DEBUG")
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        status, headers, _ = client.get("/all.rss.xml", method)
        assert status == 405, method
        assert headers["allow"] == "GET, HEAD"
    port = client.connection.port
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(
            b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
        )
        reply = raw.recv(200)
    assert re.match(rb"HTTP/1\.[01] 4(00|31) ", reply), reply
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(b"NOT-HTTP\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", raw.recv(200))
    assert client.get("/all.rss.xml")[0] == 200  # still serving
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_the_server_never_writes_into_the_folder(served: tuple[Settings, Client]) -> None:
    settings, client = served
    before = snapshot(settings.output)
    for path in ("/", "/all.rss.xml", "/index.opml", "/nothing", "/topics/ai.atom.xml"):
        client.get(path)
        client.get(path, Accept_Encoding="gzip")
    assert snapshot(settings.output) == before


def test_a_taken_port_is_a_clear_error(settings: Settings) -> None:
    build(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AggregatorError, match=f"127.0.0.1:{port}.*already in use.*--port"):
            FeedServer(Settings(output=settings.output, port=port)).start()
        folders = ["--output", str(settings.output), "--state", str(settings.state)]
        folders += ["--port", str(port)]
        results = [
            subprocess.run(
                [sys.executable, "-m", "aggregator", *command, *folders],
                check=False,
                cwd=settings.input.parent,
                capture_output=True,
                text=True,
                timeout=60,
            )
            for command in (["serve"], ["run", "--serve", "--input", str(settings.input)])
        ]
    for result in results:
        assert result.returncode == 1, result.stderr
        assert "already in use" in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("serve:\n  bind: ''\n  port: 70000\n  max_age: -1\n  colour: red\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    for key in ("serve.bind", "serve.port", "serve.max_age", "serve.colour"):
        assert key in message
    config.write_text("serve:\n  bind: 0.0.0.0\n  port: 8080\n  max_age: 300\n")
    settings = load_settings(config, {"port": 9000})
    assert (settings.bind, settings.port, settings.max_age) == ("0.0.0.0", 9000, 300)
    assert settings.gzip_sidecars


# --- no missed change, whatever the server ----------------------------------------------------


def test_a_then_b_reaches_an_if_modified_since_poller_through_our_server(
    settings: Settings,
) -> None:
    settings.output.mkdir()
    with FeedServer(settings) as server:
        a_then_b(settings, server.port)


def test_a_then_b_reaches_an_if_modified_since_poller_through_http_server(
    settings: Settings,
) -> None:
    settings.output.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = partial(Quiet, directory=str(settings.output))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=False)
    thread.start()
    try:
        a_then_b(settings, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- under load, while the builder replaces the feed -------------------------------------------


def test_no_torn_or_failed_response_while_the_feed_is_replaced(settings: Settings) -> None:
    build(settings)
    versions: set[bytes] = {(settings.output / "all.rss.xml").read_bytes()}
    done = threading.Event()
    failures: list[str] = []
    seen: list[tuple[str, bytes]] = []

    def hammer(port: int, accept: str) -> None:
        client = Client(port)  # one keep-alive connection for every request
        try:
            while not done.is_set():
                status, headers, body = client.get("/all.rss.xml", Accept_Encoding=accept)
                if status != 200 or int(headers["content-length"]) != len(body):
                    failures.append(f"{status} {headers}")
                    continue
                if entity_tag(body) != headers["etag"]:
                    failures.append(f"ETag {headers['etag']} is not that of the body sent")
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                seen.append((accept + headers["etag"], body))
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            client.close()

    with FeedServer(settings) as server:
        clients = [
            threading.Thread(target=hammer, args=(server.port, accept))
            for accept in ("identity", "gzip", "identity")
        ]
        for thread in clients:
            thread.start()
        wait_for(lambda: len(seen) > 10, "the first responses")
        try:
            # The real path: an article edited, a build, the feed and its sidecar replaced.
            for n in range(40):
                write_article(
                    settings.input, "flip.txt", "https://flip.example.com/", title=f"Flip {n}"
                )
                build(settings)
                versions.add((settings.output / "all.rss.xml").read_bytes())
        finally:
            done.set()
            for thread in clients:
                thread.join()
    assert failures == []
    assert len(seen) > 100
    bodies_of: dict[str, set[bytes]] = {}
    for etag, body in seen:
        assert body in versions, "a response that is no whole version of the feed"
        bodies_of.setdefault(etag, set()).add(body)
    assert all(len(bodies) == 1 for bodies in bodies_of.values()), "one ETag, two bodies"
    assert len({body for _, body in seen}) > 3  # the clients did see the feed change


# --- the commands ---------------------------------------------------------------------------


def test_run_serve_publishes_a_drop_over_http_and_stops_on_sigterm(settings: Settings) -> None:
    daemon = Aggregator(
        [
            *("run", "--serve", "--port", "0"),
            *("--input", str(settings.input), "--output", str(settings.output)),
            *("--state", str(settings.state), "--base-url", "http://localhost:8000/"),
        ],
        cwd=settings.input.parent,
    )
    try:
        daemon.wait_line("build finished")
        port = daemon.port_in(r"serving .*http://127\.0\.0\.1:(\d+)/")
        client = Client(port)
        write_article(settings.input, "new.txt", "https://new.example.com/", title="Dropped")

        def arrived() -> bool:
            return "Dropped" in titles(client.get("/all.rss.xml")[2])

        wait_for(arrived, "the dropped article in the served feed")
        assert client.get("/index.opml")[0] == 200
        client.close()
        started = time.monotonic()
        code = daemon.stop(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if daemon.proc.poll() is None:
            daemon.stop()
    log = "\n".join(daemon.lines)
    assert code == 0, log
    assert "Traceback" not in log
    assert daemon.lines[-1].endswith("stopped")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_serve_stops_on_sigterm_and_needs_a_built_folder(settings: Settings) -> None:
    common = ["--output", str(settings.output), "--port", "0"]
    missing = subprocess.run(
        [sys.executable, "-m", "aggregator", "serve", *common],
        check=False,
        cwd=settings.input.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "aggregator build" in missing.stderr
    build(settings)
    server = Aggregator(["serve", *common], cwd=settings.input.parent)
    try:
        server.wait_line("serving")
    finally:
        assert server.stop(timeout=10) == 0
    assert "Traceback" not in "\n".join(server.lines)


def test_serve_alone_logs_sighup_and_goes_on_serving(settings: Settings) -> None:
    # SIGHUP's default action ends a process: a log rotation's HUP, or a closed terminal,
    # took the server down.
    build(settings)
    server = Aggregator(
        ["serve", "--output", str(settings.output), "--port", "0"], cwd=settings.input.parent
    )
    try:
        port = server.port_in(r"at http://127\.0\.0\.1:(\d+)/")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_line("SIGHUP received", "still serving")
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        client.request("GET", "/all.rss.xml")
        assert client.getresponse().status == 200
        client.close()
        assert server.proc.poll() is None
    finally:
        assert server.stop() == 0
    assert "Traceback" not in "\n".join(server.lines)
