"""`serve --access-log`: one line per request on `aggregator.access`, text escaped so that a
client cannot forge a line, JSON fields under `--log-format json`; and the subscriber counts
feed readers report, parsed from their User-Agent and kept in `<state>/subscribers.json`.
The real `aggregator serve` process, real sockets."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from articlefiles import write_article
from building import build, folder_settings
from processes import Aggregator
from waiting import TIMEOUT, wait_for

from aggregator.config import Settings
from aggregator.serve import SubscriberReport, parse_subscribers, read_subscribers

# The formats as the services document or send them (docs/serving.md cites the sources).
AGENTS = {
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 143 subscribers; feed-id=abc123)": (
        SubscriberReport("Feedly", 143, "abc123")
    ),
    "Mozilla/5.0 (compatible; inoreader.com; 114 subscribers)": (
        SubscriberReport("inoreader.com", 114)
    ),
    "NewsBlur Feed Fetcher - 27 subscribers - https://www.newsblur.com/site/7704055/x "
    '("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15")': (
        SubscriberReport("NewsBlur", 27)
    ),
    "Feedbin feed-id:1697787 - 102 subscribers": SubscriberReport("Feedbin", 102, "1697787"),
    "Mozilla/5.0 (compatible; theoldreader.com; 1 subscribers; feed-id=cead6c3a8376)": (
        SubscriberReport("theoldreader.com", 1, "cead6c3a8376")
    ),
    "Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 1 subscribers)": (
        SubscriberReport("BazQux", 1)
    ),
    "Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 4 subscribers; "
    "feed-id=1794595805790851116)": SubscriberReport(
        "Feedfetcher-Google", 4, "1794595805790851116"
    ),
    "Dreamwidth Studios (webmaster@dreamwidth.org; for https://www.dreamwidth.org/users/x/; "
    "2 readers)": SubscriberReport("Dreamwidth", 2),
}


@pytest.mark.parametrize("agent", list(AGENTS))
def test_each_readers_format_is_parsed(agent: str) -> None:
    assert parse_subscribers(agent) == AGENTS[agent]


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Miniflux/2.1.0; +https://miniflux.app)",  # no count
        "newsboat/2.30",
        "curl/8.5.0 subscribers",
        "Mozilla/5.0 (X11; Linux) 12 subscribers",  # a browser: no reader named
        "",
    ],
)
def test_no_count_or_no_reader_is_no_report(agent: str) -> None:
    assert parse_subscribers(agent) is None


def test_hostile_agents_are_bounded() -> None:
    # Digits without end, the keyword many times, a huge header: a bounded count, a
    # bounded name, and the text past MAX_AGENT never looked at.
    report = parse_subscribers("Feedly/1.0 (" + "9" * 50_000 + " subscribers)")
    assert report is None or report.subscribers <= 999_999_999
    report = parse_subscribers("X" * 500 + "/1 (" + " subscribers" * 100_000)
    assert report is None
    report = parse_subscribers("A" * 200 + "/1 (7 subscribers)")
    assert report is not None
    assert len(report.reader) == 64
    assert report.subscribers == 7
    assert parse_subscribers("Feedly/1.0 (" + " " * 2000 + "5 subscribers)") is None


class Serve(Aggregator):
    """`python -m aggregator serve …` with its stderr lines gathered."""

    def __init__(self, settings: Settings, *extra: str, config: Path | None = None) -> None:
        super().__init__(
            [
                "serve",
                "--output", str(settings.output), "--state", str(settings.state),
                "--port", "0", "--access-log", *extra,
                *(["--config", str(config)] if config else []),
            ],
            cwd=settings.input.parent,
        )  # fmt: skip
        self.port = self.port_in(r"at http://127\.0\.0\.1:(\d+)/")

    def request(self, path: str, agent: bytes) -> bytes:
        """A GET sent byte for byte (no client library to tidy the header up)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: " + agent
                + b"\r\nConnection: close\r\n\r\n"
            )  # fmt: skip
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data

@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = folder_settings(tmp_path)
    write_article(settings.input, "a.md", "https://example.com/a")
    build(settings)
    return settings


FORGED = (
    b'x" 200 1 "-" \\ \t\xe2\x80\xa8\xe2\x80\xae end'  # quotes, a backslash, a tab, U+2028, U+202E
)


def test_text_lines_escape_what_a_client_sends(settings: Settings) -> None:
    server = Serve(settings)
    try:
        server.request("/all.rss.xml", FORGED)
        server.request('/no"such\\file', b"curl/8")
        wait_for(lambda: len([x for x in server.lines if '"GET /' in x]) == 2, "two lines")
    finally:
        assert server.stop() == 0
    access = [x for x in server.lines if '"GET /' in x]
    first = access[0]
    assert re.search(r'127\.0\.0\.1 "GET /all\.rss\.xml HTTP/1\.1" 200 \d+ [\d.]+ms "', first)
    assert first.endswith('"x\\x22 200 1 \\x22-\\x22 \\x5c \\x09\\u2028\\u202e end"'), first
    assert first.count('"') == 4  # the request and the agent, nothing forged
    assert '"GET /no%22such%5Cfile' in access[1] or '"GET /no\\x22such\\x5cfile' in access[1]
    assert " 404 " in access[1]


def test_json_lines_carry_the_fields(settings: Settings) -> None:
    server = Serve(settings, "--log-format", "json")
    try:
        server.request("/all.rss.xml", FORGED)
        wait_for(lambda: any("http_request" in x for x in server.lines), "the access line")
    finally:
        assert server.stop() == 0
    records = [json.loads(line) for line in server.lines]  # every line is JSON
    (access,) = [r for r in records if r.get("event") == "http_request"]
    assert access["logger"] == "aggregator.access"
    assert access["client"] == "127.0.0.1"
    assert access["method"] == "GET"
    assert access["path"] == "/all.rss.xml"
    assert access["status"] == 200
    assert access["bytes"] == (settings.output / "all.rss.xml").stat().st_size
    assert access["user_agent"] == FORGED.decode("utf-8", "surrogateescape")
    assert 0 <= access["seconds"] < TIMEOUT


def test_subscriber_counts_are_kept_per_feed_and_reader(settings: Settings) -> None:
    config = settings.input.parent / "aggregator.yaml"
    config.write_text("serve:\n  subscribers_seconds: 1\n")
    server = Serve(settings, config=config)
    try:
        for agent in AGENTS:
            server.request("/all.rss.xml", agent.encode())
        server.request("/all.atom.xml", b"Feedly/1.0 (+http://x; 7 subscribers; feed-id=z)")
        server.request("/missing.rss.xml", b"Feedly/1.0 (+http://x; 99 subscribers)")  # 404
        server.request("/index.html", b"Feedly/1.0 (+http://x; 98 subscribers)")  # not a feed
        # Written by the timer while the server runs (not per request, not only at stop).
        wait_for(lambda: len(read_subscribers(settings.state)) == len(AGENTS) + 1, "the file")
        server.request("/all.rss.xml", b"Mozilla/5.0 (compatible; inoreader.com; 120 subscribers)")
    finally:
        assert server.stop() == 0
    counts = {
        (c.path, c.reader, c.feed_id): c.subscribers for c in read_subscribers(settings.state)
    }
    assert counts[("/all.rss.xml", "inoreader.com", "")] == 120  # the latest, written at stop
    assert counts[("/all.rss.xml", "Feedly", "abc123")] == 143
    assert counts[("/all.atom.xml", "Feedly", "z")] == 7
    assert not any(path in ("/missing.rss.xml", "/index.html") for path, _, _ in counts)
    assert not list(settings.output.rglob("subscribers.json"))  # never in the output
    assert (settings.state / "subscribers.json").is_file()
    # `aggregator status` shows them: the number publishers ask for.
    shown = subprocess.run(
        [sys.executable, "-m", "aggregator", "status", "--json", "--config", str(config),
         "--state", str(settings.state)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert "Traceback" not in shown.stderr
    reported = {
        (s["feed"], s["reader"], s["feed_id"]): s["subscribers"]
        for s in json.loads(shown.stdout)["subscribers"]
    }
    assert reported == counts
    text = subprocess.run(
        [sys.executable, "-m", "aggregator", "status", "--config", str(config),
         "--state", str(settings.state)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    ).stdout  # fmt: skip
    assert f"{sum(counts.values())} reported by feed readers" in text
    assert "Feedly: 143" in text
