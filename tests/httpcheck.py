"""HTTP checks shared by the server tests (ours, http.server, nginx): a keep-alive client and
the A-then-B case of issue 7 (a change must reach a reader that polls with If-Modified-Since).
"""

from __future__ import annotations

import http.client
import shutil
from collections.abc import Callable

import building
import feedparser
from articlefiles import write_article
from waiting import TIMEOUT

from aggregator.config import Settings

SECOND = 1_000_000_000


class Client:
    """One keep-alive HTTP/1.1 connection; paths are sent exactly as given."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

    def get(
        self, path: str, method: str = "GET", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        self.connection.request(
            method, path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = self.connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def close(self) -> None:
        self.connection.close()

# What our server and deploy/nginx.conf must both answer each kind of file with (the seeds'
# build, plus an all.json the test writes): explicit types, never the host's mime table.
CONTENT_TYPES = {
    "/all.rss.xml": "application/rss+xml",
    "/topics/ai.atom.xml": "application/atom+xml",
    "/all.json": "application/feed+json",
    "/index.opml": "text/x-opml",
    "/index.html": "text/html; charset=utf-8",
    "/": "text/html; charset=utf-8",
}


def build(settings: Settings) -> None:
    """One build that rejects no file: every file the servers are asked for is there."""
    assert building.build(settings).failed == 0


def if_modified_since_poller(port: int, path: str) -> Callable[[], tuple[int, bytes]]:
    """A reader that polls with If-Modified-Since only (as many do), one request per call."""
    last_modified: list[str] = []

    def poll() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        headers = {"If-Modified-Since": last_modified[0]} if last_modified else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status == 200:
            last_modified[:] = [response.getheader("Last-Modified") or ""]
        connection.close()
        return response.status, body

    return poll


def titles(body: bytes) -> set[str]:
    return {entry.title for entry in feedparser.parse(body).entries}


def a_then_b(settings: Settings, port: int) -> None:
    """Article A, then article B within the same second: the poller must see B."""
    shutil.rmtree(settings.input)
    settings.input.mkdir()
    write_article(settings.input, "a.txt", "https://a.example.com/a", title="Article A")
    build(settings)
    poll = if_modified_since_poller(port, "/all.rss.xml")
    status, body = poll()
    assert status == 200
    assert titles(body) == {"Article A"}
    first = (settings.output / "all.rss.xml").stat().st_mtime_ns
    write_article(settings.input, "b.txt", "https://b.example.com/b", title="Article B")
    build(settings)
    second = (settings.output / "all.rss.xml").stat().st_mtime_ns
    status, body = poll()
    assert status == 200, "B was answered 304: the reader would never see it"
    assert second // SECOND > first // SECOND
    assert titles(body) == {"Article A", "Article B"}
    assert poll()[0] == 304  # and nothing new is 304
