"""Embargoed articles and time windows, with a controllable clock.

The builder's clock is the one source of "now": the build's cut-off and the daemon's
"embargo-next" job both read it. `Clock` runs with real time from a chosen start and can be
moved forward, so a test either advances it and builds (or calls the release job), or lets
the real scheduler fire a second or two later. No test sleeps until a real date.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from articlefiles import write_article
from building import BASE, DAEMON, folder_settings
from waiting import TIMEOUT, Recorder, wait_for

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.daemon import Daemon
from aggregator.delivery import log_line
from aggregator.events import (
    ArticleAdded,
    ArticleReleased,
    ArticleRemoved,
    ArticleScheduled,
    BuildFinished,
    ChangeEvent,
    FeedWritten,
)
from aggregator.membership import parse_feed_definitions
from aggregator.pipeline import Builder, BuildReport

START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """Real time shifted to start at `start`; `advance` moves it forward at once."""

    def __init__(self, start: datetime = START) -> None:
        self._lock = threading.Lock()
        self._offset = start - datetime.now(UTC)

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, **delta: float) -> None:
        with self._lock:
            self._offset += timedelta(**delta)

    def real_time_of(self, moment: datetime) -> float:
        """The `time.time()` at which this clock will show `moment`."""
        return time.time() + (moment - self()).total_seconds()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds_after(clock: Clock, seconds: float) -> datetime:
    """A whole-second date (as article files give them) at least `seconds` ahead."""
    moment = clock() + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path, **DAEMON)


def links(settings: Settings, feed: str = "all") -> list[str]:
    """The links of a feed's entries (RSS and Atom agree); empty if it does not exist.

    The daemon replaces the two files one after the other: a reader between the two
    renames sees them differ for a moment, so they are read again until they agree.
    """
    deadline = time.monotonic() + 5.0
    while True:
        try:
            rss = feedparser.parse((settings.output / f"{feed}.rss.xml").read_bytes())
            atom = feedparser.parse((settings.output / f"{feed}.atom.xml").read_bytes())
        except FileNotFoundError:
            return []
        assert not rss.bozo
        assert not atom.bozo
        rss_links = [e.link for e in rss.entries]
        atom_links = [e.link for e in atom.entries]
        if rss_links == atom_links:
            return atom_links
        assert time.monotonic() < deadline, f"{feed}: RSS {rss_links} != Atom {atom_links}"
        time.sleep(0.01)


def written(report: BuildReport) -> list[str]:
    return [str(e.feed) for e in report.events if isinstance(e, FeedWritten)]


def of(events: tuple[ChangeEvent, ...] | list[ChangeEvent], kind: type) -> list[ChangeEvent]:
    return [e for e in events if isinstance(e, kind)]


@contextmanager
def running(settings: Settings, clock: Clock) -> Iterator[tuple[Daemon, Recorder]]:
    recorder = Recorder()
    daemon = Daemon(settings, sinks=[recorder], builder_factory=lambda s: Builder(s, now=clock))
    daemon.start()
    try:
        wait_for(lambda: recorder.builds >= 1, "the first full build")
        yield daemon, recorder
    finally:
        assert daemon.stop(), "the daemon did not stop in time"


# --- builds with a clock moved by hand ----------------------------------------------------


def test_a_future_article_is_held_back_then_released_with_its_own_date(
    settings: Settings,
) -> None:
    clock = Clock()
    due = START + timedelta(hours=1)
    write_article(settings.input, "now.txt", "https://x.test/now", date=iso(START))
    write_article(
        settings.input,
        "later.txt",
        "https://x.test/later",
        title="Embargoed launch",
        date=iso(due),
        topics=["Space"],
    )
    with Builder(settings, now=clock) as builder:
        report = builder.build()
        assert links(settings) == ["https://x.test/now"]
        assert not (settings.output / "topics/space.rss.xml").exists()
        assert report.published == 1  # counts only what is listed
        assert report.next_due == due
        scheduled = of(report.events, ArticleScheduled)
        assert [e.source for e in scheduled] == ["later.txt"]  # type: ignore[attr-defined]
        assert not [e for e in of(report.events, ArticleAdded) if e.source == "later.txt"]  # type: ignore[attr-defined]
        assert log_line(scheduled[0]).startswith(
            "scheduled later.txt: 'Embargoed launch' for 2030-01-01T13:00:00Z"
        )
        index = (settings.output / "index.html").read_text()
        assert "Space" not in index
        assert "Embargoed launch" not in index  # not even among the headlines

        before = {p: p.read_bytes() for p in settings.output.rglob("*.xml")}
        clock.advance(minutes=30)
        report = builder.build([])  # nothing due yet: nothing changes
        assert written(report) == []
        assert {p: p.read_bytes() for p in settings.output.rglob("*.xml")} == before

        clock.advance(minutes=30)
        report = builder.build([])
        assert links(settings) == ["https://x.test/later", "https://x.test/now"]
        assert links(settings, "topics/space") == ["https://x.test/later"]
        assert sorted(written(report)) == ["all", "providers/forbes-com", "topics/space"]
        assert [e.source for e in of(report.events, ArticleReleased)] == ["later.txt"]  # type: ignore[attr-defined]
        assert report.published == 2
        assert report.next_due is None
        index = (settings.output / "index.html").read_text()
        assert "Space" in index
        assert "Embargoed launch" in index
        entry = feedparser.parse((settings.output / "all.atom.xml").read_bytes()).entries[0]
        assert entry.published_parsed[:6] == (2030, 1, 1, 13, 0, 0)  # its own date

        # No clock in any file: a later build with nothing due writes nothing.
        after = {p: p.read_bytes() for p in settings.output.rglob("*") if p.is_file()}
        clock.advance(days=3)
        assert written(builder.build()) == []
        assert {p: p.read_bytes() for p in settings.output.rglob("*") if p.is_file()} == after


def test_a_date_moved_earlier_or_later_moves_the_release(settings: Settings) -> None:
    clock = Clock()
    url = "https://x.test/moving"
    write_article(settings.input, "a.txt", url, date=iso(START + timedelta(hours=2)))
    with Builder(settings, now=clock) as builder:
        assert builder.build().next_due == START + timedelta(hours=2)
        write_article(settings.input, "a.txt", url, date=iso(START + timedelta(hours=1)))
        assert builder.build().next_due == START + timedelta(hours=1)
        write_article(settings.input, "a.txt", url, date=iso(START + timedelta(hours=3)))
        assert builder.build().next_due == START + timedelta(hours=3)
        clock.advance(hours=2, minutes=30)  # past the old dates, before the new one
        builder.build([])
        assert links(settings) == []
        clock.advance(minutes=30)
        builder.build([])
        assert links(settings) == [url]
        # A listed article whose date moves into the future leaves its feeds until then.
        write_article(settings.input, "a.txt", url, date=iso(clock() + timedelta(hours=1)))
        report = builder.build()
        assert links(settings) == []
        assert [e.source for e in of(report.events, ArticleScheduled)] == ["a.txt"]  # type: ignore[attr-defined]
        assert "all" in written(report)
        # Deleted before its date: it leaves no feed, and none is rewritten.
        (settings.input / "a.txt").unlink()
        report = builder.build()
        removed = of(report.events, ArticleRemoved)
        assert [e.feeds for e in removed] == [()]  # type: ignore[attr-defined]
        assert written(report) == []


def test_embargo_off_lists_future_dates_at_once(settings: Settings) -> None:
    clock = Clock()
    write_article(settings.input, "a.txt", "https://x.test/a", date=iso(START + timedelta(days=9)))
    open_settings = Settings(**{**_fields(settings), "embargo": False})
    with Builder(open_settings, now=clock) as builder:
        report = builder.build()
        assert links(settings) == ["https://x.test/a"]
        assert report.next_due is None
    # Switching it back on hides the article again, without any file change.
    with Builder(settings, now=clock) as builder:
        report = builder.build()
        assert links(settings) == []
        assert report.next_due == START + timedelta(days=9)


def _fields(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in Settings.__dataclass_fields__}


def test_a_thousand_articles_due_in_one_second_are_one_build_writing_each_feed_once(
    settings: Settings,
) -> None:
    clock = Clock()
    due = START + timedelta(minutes=5)
    topics = ["AI", "Robotics", "Space", "Health", "Climate"]
    for i in range(1000):
        write_article(
            settings.input,
            f"{i:04d}.txt",
            f"https://x.test/{i}",
            title=f"Article {i}",
            date=iso(due),
            topics=[topics[i % 5]],
            provider={"name": f"P{i % 7}", "domain": f"p{i % 7}.example.com"},
        )
    with Builder(settings, now=clock) as builder:
        report = builder.build()
        assert written(report) == []  # every one is embargoed
        assert report.next_due == due
        clock.advance(minutes=5)
        report = builder.build([])
    feeds = written(report)
    assert len(feeds) == len(set(feeds)) == 1 + 5 + 7
    assert len(of(report.events, ArticleReleased)) == 1000
    assert len(links(settings)) == 1000
    assert report.published == 1000


def test_an_item_leaves_a_windowed_feed_when_it_ages_out(settings: Settings) -> None:
    clock = Clock()
    definitions, problems = parse_feed_definitions(
        [{"name": "fresh", "title": "Fresh", "newer_than_days": 1}]
    )
    assert not problems
    windowed = Settings(**{**_fields(settings), "feeds": definitions})
    write_article(
        settings.input, "old.txt", "https://x.test/old", date=iso(START - timedelta(hours=23))
    )
    write_article(
        settings.input, "new.txt", "https://x.test/new", date=iso(START - timedelta(hours=1))
    )
    with Builder(windowed, now=clock) as builder:
        report = builder.build()
        assert links(settings, "custom/fresh") == ["https://x.test/new", "https://x.test/old"]
        assert report.next_due == START + timedelta(hours=1)  # old.txt ages out then
        clock.advance(minutes=59)
        assert written(builder.build([])) == []
        clock.advance(minutes=2)
        report = builder.build([])
        assert written(report) == ["custom/fresh"]  # the built-in feeds have no window
        assert links(settings, "custom/fresh") == ["https://x.test/new"]
        assert len(links(settings)) == 2
        assert report.next_due == START + timedelta(hours=23)


# --- the daemon: the "embargo-next" job ---------------------------------------------------


def test_the_daemon_releases_an_article_at_its_date(settings: Settings) -> None:
    clock = Clock()
    url = "https://x.test/soon"
    due = whole_seconds_after(clock, 1.5)
    write_article(settings.input, "soon.txt", url, date=iso(due))
    real_due = clock.real_time_of(due)
    with running(settings, clock) as (daemon, recorder):
        assert links(settings) == []
        wait_for(lambda: url in links(settings), "the release")
        seen = time.time()
        assert seen >= real_due - 0.05, "released before its date"
        wait_for(lambda: of(recorder.events, ArticleReleased), "the release event")
        released = of(recorder.events, ArticleReleased)
        assert [e.source for e in released] == ["soon.txt"]  # type: ignore[attr-defined]
        assert daemon.wait_idle(TIMEOUT)


def test_the_daemon_follows_a_date_edit(settings: Settings) -> None:
    clock = Clock()
    url = "https://x.test/moved"
    write_article(settings.input, "m.txt", url, date=iso(START + timedelta(days=1)))
    with running(settings, clock):
        due = whole_seconds_after(clock, 1.0)
        write_article(settings.input, "m.txt", url, date=iso(due))  # moved earlier
        real_due = clock.real_time_of(due)
        wait_for(lambda: url in links(settings), "the release at the new date")
        assert time.time() >= real_due - 0.05
        later = whole_seconds_after(clock, 1.0)
        write_article(settings.input, "m.txt", url, date=iso(later))  # and later again
        wait_for(lambda: url not in links(settings), "the article leaving until its new date")
        wait_for(lambda: url in links(settings), "the release at the later date")
        assert time.time() >= clock.real_time_of(later) - 0.05


def test_the_daemon_drops_an_item_when_it_ages_out_of_a_window(settings: Settings) -> None:
    clock = Clock()
    window = 2.0  # seconds
    definitions, _ = parse_feed_definitions(
        [{"name": "fresh", "title": "Fresh", "max_age_days": window / 86400}]
    )
    windowed = Settings(**{**_fields(settings), "feeds": definitions})
    dated = clock().replace(microsecond=0)
    url = "https://x.test/fading"
    write_article(settings.input, "f.txt", url, date=iso(dated))
    expires = clock.real_time_of(dated + timedelta(seconds=window))
    with running(windowed, clock):
        assert links(settings, "custom/fresh") == [url]
        wait_for(lambda: url not in links(settings, "custom/fresh"), "the item ageing out")
        assert time.time() >= expires - 0.05, "left its window early"
        assert links(settings) == [url]


def test_a_release_due_while_stopped_happens_in_the_first_build(settings: Settings) -> None:
    clock = Clock()
    url = "https://x.test/overdue"
    write_article(settings.input, "o.txt", url, date=iso(START + timedelta(hours=1)))
    with Builder(settings, now=clock) as builder:
        builder.build()
    assert links(settings) == []
    clock.advance(hours=2)  # the daemon was down when it fell due
    with running(settings, clock) as (_, recorder):
        assert url in links(settings)
        first = recorder.events[: recorder.events.index(of(recorder.events, BuildFinished)[0])]
        assert [e.source for e in of(first, ArticleReleased)] == ["o.txt"]  # type: ignore[attr-defined]


def test_a_thousand_releases_in_the_daemon_are_one_build(settings: Settings) -> None:
    clock = Clock()
    due = START + timedelta(hours=1)
    for i in range(1000):
        write_article(
            settings.input,
            f"{i:04d}.txt",
            f"https://x.test/{i}",
            date=iso(due),
            topics=[f"T{i % 4}"],
        )
    with Builder(settings, now=clock) as builder:
        builder.build()
    with running(settings, clock) as (daemon, recorder):
        builds = recorder.builds
        clock.advance(hours=1)
        daemon.release()  # what the scheduler calls at the due time
        wait_for(lambda: len(links(settings)) == 1000, "every release")
        assert daemon.wait_idle(TIMEOUT)
        assert recorder.builds == builds + 1
        feeds = [str(e.feed) for e in of(recorder.events, FeedWritten)]
        assert sorted(feeds) == sorted(set(feeds))
        assert len(feeds) == 1 + 4 + 1


def test_build_says_when_the_next_article_falls_due(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    write_article(settings.input, "f.txt", "https://x.test/f", date=iso(future))
    args = ["build", "--input", str(settings.input), "--output", str(settings.output)]
    args += ["--state", str(settings.state), "--base-url", BASE]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 published" in out
    assert f"next scheduled change at {iso(future)}" in out


def test_an_article_without_a_date_is_listed_by_the_build_that_first_reads_it(
    settings: Settings,
) -> None:
    """Its date is its first publication: the build's own cut-off, not a later clock reading
    (which would hold it back as scheduled until the next build)."""
    clock = Clock()
    write_article(settings.input, "a.txt", "https://x.test/undated", date=None)
    with Builder(settings, now=clock) as builder:
        report = builder.build()
    assert links(settings) == ["https://x.test/undated"]
    assert report.next_due is None
    assert report.published == 1
