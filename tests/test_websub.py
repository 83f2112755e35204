"""WebSub publishing against a recording hub on 127.0.0.1: what is pinged, when, and that
nothing owed is lost (failures retried, a stop resumed at the next start, bounded give-up)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from articlefiles import write_article
from building import BASE, folder_settings
from hubs import RecordingHub, closed_port_url, recording_hub
from waiting import Recorder, wait_for

from aggregator.backoff import BackoffPolicy
from aggregator.catalog import Catalog
from aggregator.cli import main
from aggregator.config import Settings
from aggregator.daemon import Daemon
from aggregator.delivery import (
    GIVE_UP_SECONDS,
    PING_RETRY,
    LogSink,
    Sink,
    log_sink,
    ping,
    retry_delay,
    send_owed,
)
from aggregator.errors import BuildIncomplete
from aggregator.events import HubPinged, HubPingFailed
from aggregator.pipeline import Builder

FORMATS = (".rss.xml", ".atom.xml", ".json")


def topics_of(*stems: str) -> list[str]:
    return sorted(BASE + stem + suffix for stem in stems for suffix in FORMATS)


SEED_TOPICS = topics_of("all", "topics/ai", "topics/computer-vision", "providers/forbes-com")


def owed(settings: Settings) -> list[str]:
    catalog = Catalog(settings.catalog_path, readonly=True)
    try:
        return sorted(f"{o.hub} {o.topic}" for o in catalog.owed_pings())
    finally:
        catalog.close()


@pytest.fixture
def hub() -> Iterator[RecordingHub]:
    with recording_hub() as running_hub:
        yield running_hub


@pytest.fixture
def settings(tmp_path: Path, hub: RecordingHub) -> Settings:
    return folder_settings(
        tmp_path, seeds=True, hubs=(hub.url,), debounce_seconds=0.05, debounce_max_seconds=0.5
    )


def cli_build(settings: Settings, tmp_path: Path, *flags: str) -> int:
    config = tmp_path / "aggregator.yaml"
    hubs = "".join(f"\n    - {h}" for h in settings.hubs)
    config.write_text(
        f"input: {settings.input}\noutput: {settings.output}\nstate: {settings.state}\n"
        f"base_url: {settings.base_url}\nworkers: 1\nwebsub:\n  hubs:{hubs}\n",
        encoding="utf-8",
    )
    return main(["build", "--config", str(config), *flags])


# --- the ping itself -------------------------------------------------------------------------


def test_a_ping_is_a_form_post_with_both_hub_url_and_hub_topic(hub: RecordingHub) -> None:
    topic = BASE + "all.atom.xml"
    result = ping(hub.url, topic)
    assert (result.ok, result.status) == (True, 202)
    (received,) = hub.pings
    assert received.content_type == "application/x-www-form-urlencoded"
    assert received.form == {"hub.mode": ["publish"], "hub.url": [topic], "hub.topic": [topic]}

    hub.status = 204
    assert ping(hub.url, topic).ok
    hub.status = 302  # a redirect is no acceptance (urllib would follow it with a GET)
    moved = ping(hub.url, topic)
    assert (moved.ok, moved.status) == (False, 302)
    assert len(hub.pings) == 3  # not followed
    hub.status = 503
    failed = ping(hub.url, topic)
    assert (failed.ok, failed.status) == (False, 503)
    assert failed.reason.startswith("HTTP 503")

    unreachable = ping(closed_port_url(), topic)
    assert (unreachable.ok, unreachable.status) == (False, None)
    assert unreachable.reason.startswith("cannot reach the hub")


def test_retries_back_off_and_are_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[:3] == [2.0, 4.0, 8.0]
    assert delays == sorted(delays)
    assert max(delays) == PING_RETRY.cap


# --- aggregator build ------------------------------------------------------------------------


def test_a_build_pings_each_changed_file_once_and_nothing_else(
    settings: Settings, hub: RecordingHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_build(settings, tmp_path) == 0
    assert sorted(hub.topics()) == SEED_TOPICS  # each format's file is its own topic
    assert "12 pings sent, 0 failed" in capsys.readouterr().out
    for name in ("all.atom.xml", "all.rss.xml"):
        links = feedparser.parse((settings.output / name).read_bytes()).feed.links
        assert ("hub", hub.url) in [(link.rel, link.href) for link in links]

    assert cli_build(settings, tmp_path) == 0  # nothing changed: nothing to ping
    assert len(hub.pings) == 12

    write_article(settings.input, "new.txt", "https://a.example.com/new", topics=["Robotics"])
    assert cli_build(settings, tmp_path) == 0
    assert sorted(hub.topics()[12:]) == topics_of("all", "topics/robotics", "providers/forbes-com")
    assert owed(settings) == []


def test_a_failed_ping_stays_owed_and_the_next_build_sends_it(
    settings: Settings, hub: RecordingHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.status = 503
    assert cli_build(settings, tmp_path) == 0  # the feeds are written: the build succeeded
    captured = capsys.readouterr()
    assert "0 pings sent, 12 failed" in captured.out
    assert "sent at the next run" in captured.err
    assert owed(settings) == sorted(f"{hub.url} {t}" for t in SEED_TOPICS)
    before = {p: p.read_bytes() for p in settings.output.rglob("*") if p.is_file()}

    hub.status = 202
    assert cli_build(settings, tmp_path) == 0
    assert sorted(hub.topics()[12:]) == SEED_TOPICS
    assert owed(settings) == []
    # Whether a hub took the ping or not, the feeds are the same bytes.
    assert {p: p.read_bytes() for p in settings.output.rglob("*") if p.is_file()} == before


def test_pings_are_owed_before_the_files_are_renamed(
    settings: Settings, hub: RecordingHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash right after the rename, before the feeds are recorded as written: the next
    # build re-renders the same bytes, writes nothing, and must still owe the pings.
    def crash(*args: object) -> None:
        raise RuntimeError("killed after the rename")

    with monkeypatch.context() as patch:
        patch.setattr(Catalog, "finish_feeds", crash)
        with Builder(settings) as builder, pytest.raises(BuildIncomplete) as failed:
            builder.build()
    # The sync was committed before the crash: the build says so, with its cause.
    assert isinstance(failed.value.cause, RuntimeError)
    assert (settings.output / "all.json").is_file()
    assert len(owed(settings)) == 12
    with Builder(settings) as builder:
        report = builder.build()
        assert report.written == 0  # the same bytes were already there
        events = send_owed(builder.catalog, settings.hubs, builder.now)
    assert sorted(e.topic for e in events if isinstance(e, HubPinged)) == SEED_TOPICS
    assert owed(settings) == []


def test_pings_owed_to_a_hub_no_longer_configured_are_dropped(
    settings: Settings, hub: RecordingHub, tmp_path: Path
) -> None:
    gone = closed_port_url()
    assert cli_build(replace(settings, hubs=(gone,)), tmp_path) == 0
    assert len(owed(settings)) == 12
    assert cli_build(replace(settings, hubs=(hub.url,)), tmp_path) == 0
    # Nothing owed to the old hub is sent or kept; the new hub is a new link in every
    # feed, so every file's bytes changed and the new hub hears of each once.
    assert owed(settings) == []
    assert sorted(hub.topics()) == SEED_TOPICS


# --- the daemon --------------------------------------------------------------------------------


@contextmanager
def running(
    settings: Settings,
    *sinks: Sink,
    retry: BackoffPolicy = PING_RETRY,
    give_up_seconds: float = GIVE_UP_SECONDS,
) -> Iterator[Recorder]:
    """The daemon, its events recorded (and handed to `sinks` too); `retry` and
    `give_up_seconds` bound its pings' retries."""
    events = Recorder()
    daemon = Daemon(
        settings,
        sinks=[events, *sinks],
        ping_retry=retry,
        ping_give_up_seconds=give_up_seconds,
    )
    daemon.start()
    try:
        yield events
    finally:
        assert daemon.stop(), "the daemon did not stop in time"


def pinged(events: Recorder) -> list[str]:
    return sorted(e.topic for e in events.of(HubPinged))  # type: ignore[attr-defined]


def test_the_daemon_retries_a_failed_ping_until_the_hub_takes_it(
    settings: Settings, hub: RecordingHub
) -> None:
    hub.status = 503
    with running(settings, retry=replace(PING_RETRY, first=0.05)) as events:
        wait_for(lambda: len(hub.pings) >= 3 * 12, "three tries of every topic")
        failures = events.of(HubPingFailed)
        assert all(f.retry_seconds is not None for f in failures)  # type: ignore[attr-defined]
        assert owed(settings) == sorted(f"{hub.url} {t}" for t in SEED_TOPICS)
        hub.status = 202
        wait_for(lambda: pinged(events) == SEED_TOPICS, "every topic pinged")
        wait_for(lambda: owed(settings) == [], "the sent pings forgotten")

        # A new article: only the feeds it is in are pinged.
        before = len(hub.pings)
        write_article(settings.input, "new.txt", "https://a.example.com/n", topics=["Robotics"])
        expected = SEED_TOPICS + topics_of("all", "topics/robotics", "providers/forbes-com")
        wait_for(lambda: pinged(events) == sorted(expected), "the new article's topics")
        assert sorted(hub.topics()[before:]) == topics_of(
            "all", "topics/robotics", "providers/forbes-com"
        )


def test_a_stop_keeps_what_is_owed_and_the_next_start_sends_it(
    settings: Settings, hub: RecordingHub
) -> None:
    hub.status = 503
    with running(settings) as events:
        wait_for(lambda: len(events.of(HubPingFailed)) >= 12, "a first try of every topic")
    assert len(owed(settings)) == 12
    hub.status = 202
    with running(settings) as events:
        wait_for(lambda: pinged(events) == SEED_TOPICS, "the owed pings sent at start")
        wait_for(lambda: owed(settings) == [], "the sent pings forgotten")


def test_a_ping_is_given_up_after_the_bound(settings: Settings, hub: RecordingHub) -> None:
    hub.status = 500
    with running(settings, give_up_seconds=0.0) as events:
        wait_for(
            lambda: len([e for e in events.of(HubPingFailed) if e.given_up]) == 12,  # type: ignore[attr-defined]
            "every ping given up",
        )
        wait_for(lambda: owed(settings) == [], "the given-up pings forgotten")
    assert len(hub.pings) == 12  # one try each, no retry after giving up


def test_ping_events_read_well_in_the_log() -> None:
    from aggregator.delivery import log_line, to_record

    topic = BASE + "all.json"
    hub = "https://hub.example.org/"
    assert log_line(HubPinged(hub, topic, 202)) == f"hub pinged {hub}: {topic} (HTTP 202)"
    retry = HubPingFailed(hub, topic, "HTTP 503 Service Unavailable", 2, retry_seconds=4.0)
    assert log_line(retry).endswith("; retrying in 4 s (2 tries so far)")
    later = HubPingFailed(hub, topic, "cannot reach the hub: refused", 1)
    assert log_line(later).endswith("owed until the next run (aggregator build or run)")
    given_up = HubPingFailed(hub, topic, "HTTP 500", 9, given_up=True)
    assert "given up after 9 tries" in log_line(given_up)
    assert to_record(given_up) == {
        "event": "hub_ping_failed",
        "hub": hub,
        "topic": topic,
        "reason": "HTTP 500",
        "attempts": 9,
        "retry_seconds": None,
        "given_up": True,
    }


# --- the log: one line per hub's state, not one per ping --------------------------------------


def live_log(**options: float) -> LogSink:
    """The daemon's own log sink, logging to aggregator.changes (caplog sees it)."""
    return log_sink(logging.getLogger("aggregator.changes"), live=True, **options)


def hub_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    """The log lines at `level` or above about hubs (by the event they carry)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and str(getattr(r, "change", {}).get("event", "")).startswith("hub")
    ]


def stderr_lines(capsys: pytest.CaptureFixture[str], hub: str, level: str) -> list[str]:
    """The log lines `aggregator build` printed about `hub` at `level` (the log's format is
    "time LEVEL message")."""
    return [
        line
        for line in capsys.readouterr().err.splitlines()
        if hub in line and f" {level} " in line
    ]


def test_a_build_logs_one_line_for_an_unreachable_hub_not_one_per_topic(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = closed_port_url()
    capsys.readouterr()
    assert cli_build(replace(settings, hubs=(gone,)), tmp_path) == 0
    assert len(owed(settings)) == 12
    (line,) = stderr_lines(capsys, gone, "WARNING")
    assert "12" in line


def test_a_build_logs_one_line_for_the_pings_a_hub_took(
    settings: Settings, hub: RecordingHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli_build(settings, tmp_path, "--verbose") == 0
    assert len(hub.pings) == 12
    err = capsys.readouterr().err.splitlines()
    (line,) = [x for x in err if hub.url in x and " INFO " in x]
    assert "12" in line
    # Each ping keeps its own line, at DEBUG (shown with --verbose).
    assert len([x for x in err if hub.url in x and " DEBUG " in x]) == 12


def test_the_daemon_logs_a_failing_hub_once_and_its_recovery_once(
    settings: Settings,
    hub: RecordingHub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator")
    hub.status = 500
    with running(settings, live_log(), retry=replace(PING_RETRY, first=0.05)) as events:
        wait_for(lambda: len(hub.pings) >= 4 * 12, "four tries of every topic")
        (failing,) = hub_lines(caplog)  # not one per ping, nor one per retry
        assert "HTTP 500" in failing
        hub.status = 202
        wait_for(lambda: pinged(events) == SEED_TOPICS, "every topic pinged")
        wait_for(lambda: len(hub_lines(caplog)) == 2, "the recovery line")
        assert "12" in hub_lines(caplog)[1]

        # Once recovered, a live change's pings are one line for the hub, not one per ping.
        write_article(settings.input, "new.txt", "https://a.example.com/n", topics=["Robotics"])
        wait_for(lambda: len(pinged(events)) == 12 + 9, "the new article's pings")
        wait_for(lambda: len(hub_lines(caplog)) == 3, "the hub's line for them")
    assert len(hub_lines(caplog)) == 3
    assert "9 pings sent" in hub_lines(caplog)[2]


def test_a_hub_that_keeps_failing_is_summarised_at_most_once_per_period(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator")
    fast = BackoffPolicy(first=0.02, cap=0.05)
    period = 0.5
    unreachable = replace(settings, hubs=(closed_port_url(),))
    started = time.monotonic()
    with running(unreachable, live_log(hub_summary_seconds=period), retry=fast) as events:
        wait_for(lambda: len(hub_lines(caplog)) >= 3, "two summaries after the first line")
        failures = len(events.of(HubPingFailed))
    elapsed = time.monotonic() - started
    lines = hub_lines(caplog)
    assert failures > 10 * len(lines)  # many failed tries, few lines
    assert len(lines) <= 1 + elapsed / period + 1


def test_pings_given_up_are_logged_per_hub(
    settings: Settings,
    hub: RecordingHub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator")
    hub.status = 500
    with running(settings, live_log(), give_up_seconds=0.0) as events:
        wait_for(
            lambda: len([e for e in events.of(HubPingFailed) if e.given_up]) == 12,
            "every ping given up",
        )  # type: ignore[attr-defined]
        wait_for(lambda: len(hub_lines(caplog)) == 2, "failing, giving up")
    assert [r.levelno for r in caplog.records if r.getMessage() in hub_lines(caplog)] == [
        logging.WARNING,
        logging.ERROR,
    ]


# --- discovery over HTTP: aggregator serve's Link header --------------------------------------


def test_the_server_names_the_hubs_and_the_topic_of_each_feed_file(
    settings: Settings, hub: RecordingHub
) -> None:
    from httpcheck import Client

    from aggregator.serve import FeedServer

    hubs = (hub.url, "https://hub.example.org/")
    with_hubs = replace(settings, hubs=hubs, port=0)
    with Builder(with_hubs) as builder:
        builder.build()
    with FeedServer(with_hubs) as server:
        client = Client(server.port)
        try:
            for path in ("all.rss.xml", "all.atom.xml", "topics/ai.json"):
                status, headers, _ = client.get("/" + path)
                assert status == 200
                assert headers["link"] == (
                    f'<{hub.url}>; rel="hub", <https://hub.example.org/>; rel="hub", '
                    f'<{BASE}{path}>; rel="self"'
                )
                status, again, _ = client.get("/" + path, If_None_Match=headers["etag"])
                assert (status, again["link"]) == (304, headers["link"])
                assert client.get("/" + path, method="HEAD")[1]["link"] == headers["link"]
            # The indexes are no topics; nor is a missing file.
            for path in ("/index.html", "/index.opml", "/"):
                assert "link" not in client.get(path)[1]
            assert "link" not in client.get("/topics/nothing.json")[1]
        finally:
            client.close()

    # Without hubs: no Link header at all (the server's answers are as before).
    with FeedServer(replace(with_hubs, hubs=())) as server:
        client = Client(server.port)
        try:
            assert "link" not in client.get("/all.atom.xml")[1]
        finally:
            client.close()


def test_a_burst_pings_each_changed_file_at_most_once_per_build_writing_it(
    settings: Settings, hub: RecordingHub
) -> None:
    from aggregator.events import ArticleAdded, FeedWritten

    with running(settings) as events:
        wait_for(lambda: pinged(events) == SEED_TOPICS, "the first build's pings")
        first_ping, first_write = len(hub.pings), len(events.of(FeedWritten))

        def added() -> int:
            return sum(e.source.startswith("burst-") for e in events.of(ArticleAdded))  # type: ignore[attr-defined]

        # Two waves of 30 files, so at least two builds write the `all` feed.
        for wave in range(2):
            for n in range(30 * wave, 30 * wave + 30):
                url = f"https://a.example.com/b{n}"
                write_article(settings.input, f"burst-{n}.txt", url, topics=[f"T{n % 4}"])
            wait_for(lambda w=wave: added() == 30 * (w + 1), f"wave {wave} built")  # type: ignore[misc]
            # Its pings sent before the next wave: a ping not yet sent when its topic changes
            # again would rightly cover both changes, and the count below would be one less.
            wait_for(lambda: owed(settings) == [], f"wave {wave} pinged")
        # Each build's pings were owed before its files were renamed: none owed, all sent.
        wait_for(lambda: owed(settings) == [], "the pings")
        writes: dict[str, int] = {}
        for event in events.of(FeedWritten)[first_write:]:
            writes[str(event.feed)] = writes.get(str(event.feed), 0) + 1  # type: ignore[attr-defined]
    pings: dict[str, int] = {}
    for topic in hub.topics()[first_ping:]:
        pings[topic] = pings.get(topic, 0) + 1
    assert sorted(pings) == topics_of(
        "all", "providers/forbes-com", *(f"topics/t{n}" for n in range(4))
    )
    for topic, count in pings.items():
        feed = next(topic.removeprefix(BASE).removesuffix(s) for s in FORMATS if topic.endswith(s))
        assert count <= writes[feed], (topic, count, writes[feed])
    # The all feed changed in every build of the burst, and was pinged once for each.
    assert writes["all"] >= 2
    assert pings[BASE + "all.atom.xml"] == writes["all"]
