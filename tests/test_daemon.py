"""The daemon with the real observer on real folders: every change reaches the feeds.

Waits are polling loops with generous timeouts (the feed files are read back with
feedparser); debounce is 0.05 s quiet / 0.5 s ceiling to keep the file fast.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from articlefiles import article_text, write_article
from building import DAEMON, folder_settings
from corpus import write_corpus
from processes import Aggregator
from waiting import TIMEOUT, Recorder, wait_for

from aggregator.backoff import BackoffPolicy
from aggregator.config import Settings
from aggregator.daemon import BUILD_RETRY, ChangeHandler, Daemon
from aggregator.events import (
    ArticleAdded,
    ArticleMoved,
    ArticleRejected,
    ArticleRemoved,
    ArticleUnpublished,
    ArticleUpdated,
    BuildFinished,
    ChangeEvent,
    FeedWritten,
    WriteFailed,
)
from aggregator.membership import feeds_of
from aggregator.pipeline import Builder, BuildReport, Progress
from aggregator.reading import read_article

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
BASE = "https://feeds.example.org/"


# --- helpers ----------------------------------------------------------------------------


def entries(settings: Settings, feed: str = "all") -> dict[str, str]:
    """link → title of a feed's Atom entries; empty if the feed does not exist yet."""
    try:
        data = (settings.output / f"{feed}.atom.xml").read_bytes()
    except FileNotFoundError:
        return {}
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {e.link: e.title for e in parsed.entries}


def listed(settings: Settings, url: str, *feeds: str) -> Callable[[], bool]:
    return lambda: all(url in entries(settings, feed) for feed in feeds)


def not_listed(settings: Settings, url: str, *feeds: str) -> Callable[[], bool]:
    return lambda: all(url not in entries(settings, feed) for feed in feeds)


def titled(settings: Settings, url: str, title: str, feed: str = "all") -> Callable[[], bool]:
    return lambda: entries(settings, feed).get(url) == title


class SpyBuilder(Builder):
    """The real builder, recording each batch it gets and how many builds overlap."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.batches: list[frozenset[str] | None] = []
        self.active = 0
        self.most_active = 0
        self.fail_next = 0
        self.delay = 0.0
        self._count_lock = threading.Lock()

    def build(
        self,
        changed: Iterable[str] | None = None,
        progress: Progress | None = None,
        render_progress: Progress | None = None,
    ) -> BuildReport:
        with self._count_lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.batches.append(None if changed is None else frozenset(changed))
            fail = self.fail_next > 0
            self.fail_next -= fail
        try:
            if fail:
                raise RuntimeError("boom: an unexpected bug in a build")
            time.sleep(self.delay)
            return super().build(changed, progress, render_progress)
        finally:
            with self._count_lock:
                self.active -= 1


@contextmanager
def running(
    settings: Settings,
    *,
    sinks: Iterable[Callable[[ChangeEvent], None]] = (),
    builder: type[Builder] = Builder,
    retry: BackoffPolicy = BUILD_RETRY,
) -> Iterator[tuple[Daemon, Recorder]]:
    """A started daemon whose first full build is done; stopped (and checked) on exit."""
    recorder = Recorder()
    daemon = Daemon(settings, sinks=[*sinks, recorder], builder_factory=builder, retry=retry)
    daemon.start()
    try:
        # On a shared catalog the first build may come before this node is elected: its
        # feeds arrive with the leader's render, the index page last of all.
        wait_for(
            lambda: recorder.builds >= 1 and (settings.output / "index.html").exists(),
            "the first full build, rendered",
        )
        yield daemon, recorder
    finally:
        assert daemon.stop(), "the daemon did not stop in time"


def spy(daemon: Daemon) -> SpyBuilder:
    assert isinstance(daemon.builder, SpyBuilder)
    return daemon.builder


@pytest.fixture
def settings(tmp_path: Path, catalog_backend: str | None) -> Settings:
    """Folders with the seeds in the input; a short debounce; feeds long enough for all.
    On each catalog backend (SQLite; PostgreSQL as a one-node cluster)."""
    return folder_settings(tmp_path, seeds=True, **DAEMON, catalog=catalog_backend, node="n1")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """1,000 article files of tests/corpus.py."""
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder, 1000)
    files = sorted(folder.glob("*.txt"))
    assert len(files) == 1000
    return files


def kinds_for(events: Iterable[ChangeEvent], source: str) -> list[str]:
    return [e.kind for e in events if getattr(e, "source", None) == source]


# --- one change at a time ---------------------------------------------------------------


def test_a_dropped_file_enters_each_of_its_feeds(settings: Settings) -> None:
    url = "https://wired.example.com/dropped"
    with running(settings) as (daemon, recorder):
        assert "https://www.forbes.com/sites/forbesbusinesscouncil/2021/12/22/" in "".join(
            entries(settings)
        )  # the seeds were built on start
        write_article(
            settings.input,
            "dropped.txt",
            url,
            title="Dropped",
            topics=["Robotics", "AI"],
            provider={"name": "Wired", "domain": "wired.com"},
        )
        feeds = ("all", "topics/robotics", "topics/ai", "providers/wired-com")
        wait_for(listed(settings, url, *feeds), "the dropped article in its four feeds")
        assert daemon.wait_idle(TIMEOUT)  # the feeds are on disk before the events go out
        added = recorder.of(ArticleAdded)[-1]
        assert (added.source, added.title) == ("dropped.txt", "Dropped")
        assert sorted(map(str, added.feeds)) == sorted(feeds)
        assert entries(settings, "topics/robotics") == {url: "Dropped"}


def test_an_edit_in_place_updates_the_article(settings: Settings) -> None:
    url = "https://a.example.com/edited"
    with running(settings) as (daemon, recorder):
        write_article(settings.input, "a.txt", url, title="Before")
        wait_for(titled(settings, url, "Before"), "the first version")
        assert daemon.wait_idle(TIMEOUT)
        mark = len(recorder.events)
        write_article(settings.input, "a.txt", url, title="After", topics=["AI", "Ethics"])
        wait_for(titled(settings, url, "After"), "the edited title")
        wait_for(listed(settings, url, "topics/ethics"), "the article in its new topic")
        assert daemon.wait_idle(TIMEOUT)
        updated = recorder.of(ArticleUpdated, since=mark)
        assert [(e.source, e.title) for e in updated] == [("a.txt", "After")]
        assert [str(k) for k in updated[0].entered] == ["topics/ethics"]


def test_an_editor_save_by_rename_is_one_update_and_never_a_gap(settings: Settings) -> None:
    url = "https://a.example.com/saved"
    article = settings.input / "a.txt"
    with running(settings) as (daemon, recorder):
        write_article(settings.input, "a.txt", url, title="Draft")
        wait_for(titled(settings, url, "Draft"), "the first version")
        assert daemon.wait_idle(TIMEOUT)
        mark = len(recorder.events)

        # Watch the feed the whole time the editor saves: the article must never leave it.
        seen_missing: list[bool] = []
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                seen_missing.append(url not in entries(settings))

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            # What vim (backupcopy=no), gedit or an atomic writer do: write the whole new
            # text to a temp file beside the article, then rename it over the article.
            temp = settings.input / ".a.txt.swx"
            temp.write_text(article_text(url, "Saved"), encoding="utf-8")
            os.replace(temp, article)
            wait_for(titled(settings, url, "Saved"), "the saved title")
            assert daemon.wait_idle(TIMEOUT)
        finally:
            done.set()
            thread.join()
        assert seen_missing
        assert not any(seen_missing)
        events = recorder.events[mark:]
        assert kinds_for(events, "a.txt") == ["article_updated"]
        assert kinds_for(events, ".a.txt.swx") == []
        assert len([e for e in events if isinstance(e, BuildFinished)]) == 1


def test_a_move_inside_the_folder_keeps_the_item(settings: Settings) -> None:
    url = "https://a.example.com/moved"
    with running(settings, builder=SpyBuilder) as (daemon, recorder):
        write_article(settings.input, "a.txt", url, title="Moving")
        wait_for(listed(settings, url, "all"), "the article")
        guid = feedparser.parse((settings.output / "all.atom.xml").read_bytes()).entries
        guid_before = {e.link: e.id for e in guid}[url]
        assert daemon.wait_idle(TIMEOUT)
        mark = len(recorder.events)

        os.rename(settings.input / "a.txt", settings.input / "b.txt")
        wait_for(lambda: recorder.of(ArticleMoved, since=mark), "the move")
        assert frozenset({"a.txt", "b.txt"}) in spy(daemon).batches
        assert kinds_for(recorder.events[mark:], "b.txt") == ["article_moved"]
        (moved,) = recorder.of(ArticleMoved, since=mark)
        assert (moved.old_source, moved.source, moved.title) == ("a.txt", "b.txt", "Moving")
        assert recorder.of(ArticleRemoved, since=mark) == []
        assert recorder.of(ArticleUpdated, since=mark) == []
        after = feedparser.parse((settings.output / "all.atom.xml").read_bytes()).entries
        assert {e.link: e.id for e in after}[url] == guid_before

        # Out of the input folder: a delete. Back in: an upsert.
        outside = settings.input.parent / "outside.txt"
        os.rename(settings.input / "b.txt", outside)
        wait_for(not_listed(settings, url, "all", "topics/ai"), "the article gone")
        os.rename(outside, settings.input / "sub.txt")
        wait_for(listed(settings, url, "all", "topics/ai"), "the article back")


def test_moving_a_folder_in_and_out_rescans(settings: Settings) -> None:
    url = "https://a.example.com/in-a-folder"
    staging = settings.input.parent / "staging"
    write_article(staging, "deep/a.txt", url, title="Foldered")
    with running(settings, builder=SpyBuilder) as (daemon, _):
        os.rename(staging, settings.input / "batch")
        wait_for(listed(settings, url, "all"), "the article of the moved-in folder")
        assert None in spy(daemon).batches[1:]  # a full scan, not just the first one
        os.rename(settings.input / "batch", staging)
        wait_for(not_listed(settings, url, "all"), "the article of the moved-out folder gone")


def test_unpublishing_takes_the_article_out_of_its_feeds(settings: Settings) -> None:
    url = "https://a.example.com/unpublished"
    with running(settings) as (daemon, recorder):
        write_article(settings.input, "a.txt", url, title="Public", topics=["Ethics"])
        wait_for(listed(settings, url, "all", "topics/ethics"), "the article")
        assert daemon.wait_idle(TIMEOUT)
        mark = len(recorder.events)
        write_article(settings.input, "a.txt", url, title="Public", published=False)
        wait_for(not_listed(settings, url, "all", "topics/ethics"), "the article unpublished")
        assert daemon.wait_idle(TIMEOUT)
        (event,) = recorder.of(ArticleUnpublished, since=mark)
        assert event.source == "a.txt"
        assert "topics/ethics" in map(str, event.feeds)


def test_deleting_the_file_removes_the_article(settings: Settings) -> None:
    url = "https://a.example.com/deleted"
    with running(settings) as (daemon, recorder):
        write_article(settings.input, "a.txt", url, title="Doomed")
        wait_for(listed(settings, url, "all", "topics/ai"), "the article")
        assert daemon.wait_idle(TIMEOUT)
        mark = len(recorder.events)
        (settings.input / "a.txt").unlink()
        wait_for(not_listed(settings, url, "all", "topics/ai"), "the article removed")
        assert daemon.wait_idle(TIMEOUT)
        (event,) = recorder.of(ArticleRemoved, since=mark)
        assert (event.source, event.title) == ("a.txt", "Doomed")


# --- many changes -------------------------------------------------------------------------


def test_a_burst_of_1000_files_lands_in_few_builds(settings: Settings, corpus: list[Path]) -> None:
    expected: dict[str, set[str]] = {}  # feed → links
    for path in corpus:
        article = read_article(path, path.name)
        if article.published:
            for key in feeds_of(article):
                expected.setdefault(str(key), set()).add(article.url)
    assert len(expected["all"]) > 500

    with running(settings, builder=SpyBuilder) as (daemon, recorder):
        before = recorder.builds
        for path in corpus:
            shutil.copyfile(path, settings.input / path.name)
        wait_for(
            lambda: expected["all"] <= set(entries(settings)), "all 1,000 files", timeout=300
        )  # generous: on a loaded machine the PostgreSQL run takes minutes
        assert daemon.wait_idle(TIMEOUT)
        builds = recorder.builds - before
        assert 1 <= builds <= 25, f"{builds} builds for 1,000 files"
        assert spy(daemon).most_active == 1
        for feed, links in expected.items():
            missing = links - set(entries(settings, feed))
            assert not missing, f"{len(missing)} articles missing from {feed}"
        added = {e.source for e in recorder.of(ArticleAdded)}
        assert {p.name for p in corpus} - added == {
            p.name for p in corpus if not read_article(p, p.name).published
        }


def test_builds_never_overlap_and_a_steady_stream_still_publishes(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running(settings, builder=SpyBuilder) as (daemon, recorder):
        builder = spy(daemon)
        builder.delay = 0.1  # slow builds, so events keep arriving during them
        before = recorder.builds
        # One drop every 20 ms, never quiet for the 50 ms debounce: only the 0.5 s ceiling
        # lets a batch through while the stream lasts. It lasts until a build has finished
        # (at least 50 drops), however long builds take here; a daemon that waits for the
        # stream to pause never gets there, and the stream's end is the test's failure.
        urls: list[str] = []
        deadline = time.monotonic() + TIMEOUT
        while len(urls) < 50 or recorder.builds == before:
            assert time.monotonic() < deadline, "nothing was published while the stream went on"
            url = f"https://stream.example.com/{len(urls)}"
            write_article(settings.input, f"s{len(urls):04d}.txt", url, title=f"S{len(urls)}")
            urls.append(url)
            time.sleep(0.02)
        wait_for(lambda: set(urls) <= set(entries(settings)), "every streamed article")
        assert daemon.wait_idle(TIMEOUT)
    assert builder.most_active == 1
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]
    assert any("rebuild scheduled" in r.getMessage() for r in caplog.records)


# --- staying up -------------------------------------------------------------------------


def test_a_bad_file_amid_good_ones(settings: Settings) -> None:
    urls = [f"https://good.example.com/{i}" for i in range(5)]
    with running(settings) as (_, recorder):
        for i, url in enumerate(urls):
            write_article(settings.input, f"good{i}.txt", url, title=f"Good {i}")
        (settings.input / "bad.txt").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
        wait_for(lambda: set(urls) <= set(entries(settings)), "the five good articles")
        wait_for(lambda: recorder.of(ArticleRejected), "the bad file's rejection")
        (rejected,) = {e for e in recorder.of(ArticleRejected) if e.source == "bad.txt"}
        assert rejected.reason
        assert not rejected.kept_previous

        # A good file gone bad keeps its last good version listed until it is fixed.
        mark = len(recorder.events)
        (settings.input / "good0.txt").write_text("---\n: : nope\n", encoding="utf-8")
        wait_for(lambda: recorder.of(ArticleRejected, since=mark), "the second rejection")
        (broken,) = recorder.of(ArticleRejected, since=mark)[:1]
        assert (broken.source, broken.kept_previous) == ("good0.txt", True)
        assert entries(settings)[urls[0]] == "Good 0"
        write_article(settings.input, "good0.txt", urls[0], title="Good 0, fixed")
        wait_for(titled(settings, urls[0], "Good 0, fixed"), "the fix")


def test_a_half_written_file_is_published_once_complete(settings: Settings) -> None:
    url = "https://big.example.com/slow-copy"
    text = article_text(url, "Slowly copied", excerpt="x" * 5000)
    path = settings.input / "big.txt"
    with running(settings) as (_, recorder):
        with path.open("w", encoding="utf-8") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
            wait_for(
                lambda: [e for e in recorder.of(ArticleRejected) if e.source == "big.txt"],
                "the half-written file's rejection",
            )
            handle.write(text[len(text) // 2 :])
        wait_for(titled(settings, url, "Slowly copied"), "the completed file")


class CopyingBuilder(SpyBuilder):
    """A file is being copied into the input as the first build begins: its first half is
    on disk when the build reads it (and no event ever comes: see the tests). That build is
    slow, longer than the re-check window, as on a loaded machine; the others are not."""

    def build(
        self,
        changed: Iterable[str] | None = None,
        progress: Progress | None = None,
        render_progress: Progress | None = None,
    ) -> BuildReport:
        first = not self.batches
        if first:
            (self.settings.input / "half.txt").write_text("---\ntitle: half", encoding="utf-8")
        self.delay = 2 * self.settings.debounce_max_seconds if first else 0.0
        return super().build(changed, progress, render_progress)


def test_a_rejected_file_changed_during_its_build_is_checked_again_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the machine's speed: the file changed after the build began, so it is recent
    however long that build takes; and it is looked at again once, not in a loop."""
    # No events at all: the only reason to look at the file again is the re-check.
    monkeypatch.setattr(ChangeHandler, "on_any_event", lambda self, event: None)
    with running(settings, builder=CopyingBuilder) as (daemon, recorder):
        wait_for(lambda: frozenset({"half.txt"}) in spy(daemon).batches, "a re-check")
        assert daemon.wait_idle(TIMEOUT)
        # Rejected again in the same version: no third look (it is what it is now).
        assert spy(daemon).batches == [None, frozenset({"half.txt"})]
        # Unchanged since: the second look finds nothing new to say (one rejection logged).
        assert kinds_for(recorder.events, "half.txt") == ["article_rejected"]


def test_a_rejected_file_unchanged_for_long_is_not_checked_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ChangeHandler, "on_any_event", lambda self, event: None)
    old = settings.input / "old.txt"
    old.write_text("---\ntitle: broken long ago", encoding="utf-8")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    with running(settings, builder=SpyBuilder) as (daemon, recorder):
        assert daemon.wait_idle(TIMEOUT)
        assert spy(daemon).batches == [None]
        assert kinds_for(recorder.events, "old.txt") == ["article_rejected"]


def test_a_file_gone_before_its_build_is_no_trouble(settings: Settings) -> None:
    with running(settings) as (daemon, recorder):
        ghost = settings.input / "ghost.txt"
        write_article(settings.input, "ghost.txt", "https://ghost.example.com/")
        ghost.unlink()
        write_article(settings.input, "real.txt", "https://real.example.com/")
        wait_for(listed(settings, "https://real.example.com/", "all"), "the real file")
        assert daemon.wait_idle(TIMEOUT)
        assert "https://ghost.example.com/" not in entries(settings)
        assert kinds_for(recorder.events, "ghost.txt") in ([], ["article_added", "article_removed"])


def test_ignored_files_never_start_a_build(settings: Settings) -> None:
    # Output and state inside the input: their own writes must not look like changes.
    settings = replace(settings, output=settings.input / "feeds", state=settings.input / ".state")
    with running(settings, builder=SpyBuilder) as (daemon, recorder):
        assert daemon.wait_idle(TIMEOUT)
        builds = len(spy(daemon).batches)
        assert builds == 1  # the feeds written by the first build started nothing
        for name in (".hidden.txt", "a.txt~", "a.txt.swp", "x.tmp", "4913", "notes.pdf"):
            (settings.input / name).write_text(article_text("https://ignored.example.com/"))
        (settings.output / "extra.txt").write_text(article_text("https://ignored.example.com/"))
        (settings.state / "x.txt").write_text(article_text("https://ignored.example.com/"))
        write_article(settings.input, "real.txt", "https://real.example.com/")
        wait_for(listed(settings, "https://real.example.com/", "all"), "the real file")
        assert daemon.wait_idle(TIMEOUT)
        # Only the real file started builds: one at its close (the leading edge), and maybe
        # one more for the mtime write_article sets after it.
        later = spy(daemon).batches[builds:]
        assert set(later) == {frozenset({"real.txt"})}
        assert recorder.builds == 1 + len(later)
        assert "https://ignored.example.com/" not in entries(settings)


def test_an_unexpected_error_in_a_build_is_logged_and_retried(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = "https://a.example.com/first", "https://a.example.com/second"
    with running(settings, builder=SpyBuilder) as (daemon, _):
        spy(daemon).fail_next = 1
        write_article(settings.input, "first.txt", first)
        wait_for(
            lambda: [r for r in caplog.records if r.getMessage().startswith("build failed")],
            "the logged failure",
        )
        (record,) = [r for r in caplog.records if r.getMessage().startswith("build failed")]
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None  # with its traceback
        assert first not in entries(settings)
        write_article(settings.input, "second.txt", second)
        wait_for(listed(settings, first, "all"), "the failed batch retried")
        wait_for(listed(settings, second, "all"), "the next batch")


def test_a_failing_sink_never_breaks_a_build(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ChangeEvent) -> None:
        raise RuntimeError("the chat webhook is down")

    url = "https://a.example.com/notified"
    with running(settings, sinks=[broken]) as (_, recorder):
        write_article(settings.input, "a.txt", url)
        wait_for(listed(settings, url, "all"), "the article")
        wait_for(lambda: recorder.of(ArticleAdded, since=0), "the event at the next sink")
        failures = [r for r in caplog.records if "notification sink" in r.getMessage()]
        assert failures
        assert all(r.exc_info for r in failures)
        write_article(settings.input, "b.txt", url + "/2")
        wait_for(listed(settings, url + "/2", "all"), "the next article")


def test_an_unwritable_feed_folder_is_logged_and_retried(settings: Settings) -> None:
    # Root may write anywhere, so chmod proves nothing: a file where the topics folder
    # should be makes every topic feed fail to write, for any user.
    settings.output.mkdir()
    (settings.output / "topics").write_text("in the way")
    url = "https://a.example.com/blocked"
    with running(settings, retry=replace(BUILD_RETRY, first=0.1)) as (daemon, recorder):
        write_article(settings.input, "a.txt", url, topics=["Ethics"])
        wait_for(listed(settings, url, "all"), "the article in the writable feed")
        assert daemon.wait_idle(TIMEOUT)
        failed = {Path(e.path).name for e in recorder.of(WriteFailed)}
        assert "ethics.atom.xml" in failed
        (settings.output / "topics").unlink()
        wait_for(listed(settings, url, "topics/ethics"), "the topic feed, once writable")
        assert daemon.wait_idle(TIMEOUT)
        assert any(str(e.feed) == "topics/ethics" for e in recorder.of(FeedWritten))


# --- watching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        ("schedule", errno.ENOSPC, "max_user_watches=524288"),
        ("start", errno.EMFILE, "max_user_instances"),
    ],
    ids=["watch-limit", "instance-limit"],
)
def test_an_inotify_limit_falls_back_to_polling(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, int, str],
) -> None:
    from watchdog.observers.inotify import InotifyObserver

    method, code, setting = case

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, "inotify limit reached")

    monkeypatch.setattr(InotifyObserver, method, refuse)
    settings = replace(settings, poll_seconds=0.1)
    url = "https://a.example.com/polled"
    with running(settings) as (daemon, _):
        assert daemon.watcher is not None
        assert daemon.watcher.polling
        (record,) = [r for r in caplog.records if "refused an inotify" in r.getMessage()]
        assert record.levelno == logging.ERROR
        assert f"sysctl fs.inotify.{setting}" in record.getMessage()
        assert "/etc/sysctl.d/" in record.getMessage()
        write_article(settings.input, "a.txt", url)
        wait_for(listed(settings, url, "all"), "the article, seen by polling")


def test_a_folder_that_cannot_be_watched_is_a_clean_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.observers.inotify import InotifyObserver

    from aggregator.errors import AggregatorError

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(InotifyObserver, "schedule", refuse)
        daemon = Daemon(settings)
        with pytest.raises(AggregatorError, match=r"cannot watch .*Permission denied"):
            daemon.start()
    # Nothing left behind: no thread (the autouse fixture checks), and the lock is free.
    with running(settings):
        pass


def test_poll_mode_watches_without_inotify(settings: Settings) -> None:
    settings = replace(settings, poll=True, poll_seconds=0.1)
    url = "https://a.example.com/network-mount"
    with running(settings) as (daemon, _):
        assert daemon.watcher is not None
        assert daemon.watcher.mode == "polling every 0.1 s"
        write_article(settings.input, "a.txt", url)
        wait_for(listed(settings, url, "all"), "the article, seen by polling")
        (settings.input / "a.txt").unlink()
        wait_for(not_listed(settings, url, "all"), "the article gone")


def test_the_reconcile_scan_catches_what_the_watcher_missed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator")
    monkeypatch.setattr(ChangeHandler, "on_any_event", lambda self, event: None)
    settings = replace(settings, reconcile_seconds=0.3)
    url = "https://a.example.com/missed"
    with running(settings):
        write_article(settings.input, "a.txt", url)
        wait_for(listed(settings, url, "all"), "the reconcile scan")
    assert any("reconcile" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


def test_a_restart_publishes_what_changed_while_stopped(settings: Settings) -> None:
    a, b, c = (f"https://a.example.com/{n}" for n in "abc")
    with running(settings):
        write_article(settings.input, "a.txt", a, title="A")
        write_article(settings.input, "b.txt", b, title="B")
        wait_for(listed(settings, a, "all"), "a")
        wait_for(listed(settings, b, "all"), "b")
    write_article(settings.input, "a.txt", a, title="A, edited while down")
    (settings.input / "b.txt").unlink()
    write_article(settings.input, "c.txt", c, title="C")
    with running(settings) as (_, recorder):
        assert entries(settings).get(a) == "A, edited while down"
        assert b not in entries(settings)
        assert entries(settings).get(c) == "C"
        events = recorder.events
        assert kinds_for(events, "a.txt") == ["article_updated"]
        assert kinds_for(events, "b.txt") == ["article_removed"]
        assert kinds_for(events, "c.txt") == ["article_added"]


def test_a_second_daemon_on_the_same_state_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.errors import AggregatorError
    from aggregator.pipeline import BuildLock

    with running(settings):
        # Fail fast rather than after the builder's 30 s wait for the lock.
        original = BuildLock.acquire
        monkeypatch.setattr(BuildLock, "acquire", lambda self, timeout=30.0: original(self, 0.1))
        other = Daemon(settings)
        with pytest.raises(AggregatorError, match="another aggregator process"):
            other.start()


# --- the real process -------------------------------------------------------------------


class Process(Aggregator):
    """`python -m aggregator run …` with its stderr lines gathered on a thread."""

    def __init__(self, settings: Settings, *extra: str) -> None:
        super().__init__(
            [
                "run",
                "--input",
                str(settings.input),
                "--output",
                str(settings.output),
                "--state",
                str(settings.state),
                "--base-url",
                BASE,
                *extra,
            ],
            cwd=settings.input.parent,  # no config/aggregator.yaml there
        )

    def terminate(self) -> tuple[int, float]:
        started = time.monotonic()
        code = self.stop(timeout=10)
        return code, time.monotonic() - started


def test_sigterm_during_a_build_exits_0_quickly_and_cleanly(
    settings: Settings, corpus: list[Path]
) -> None:
    for path in corpus:
        shutil.copyfile(path, settings.input / path.name)
    process = Process(settings, "--log-level", "DEBUG")
    process.wait_line("rebuild: full scan")
    code, seconds = process.terminate()
    log = "\n".join(process.lines)
    assert code == 0, log
    assert seconds < 5, log
    assert "SIGTERM received: stopping" in log
    # The signal landed while the first build ran (no build had finished before it).
    signalled = next(i for i, x in enumerate(process.lines) if "SIGTERM received" in x)
    assert not [x for x in process.lines[:signalled] if "build finished" in x], log
    assert "stopped" in process.lines[-1]
    # Either the build was abandoned before writing, or it finished: never half of a file.
    assert "build abandoned" in log or "build finished" in log
    written = list(settings.output.rglob("*")) if settings.output.exists() else []
    assert not [p for p in written if p.name.startswith(".")]  # no temp file
    for feed in written:
        if feed.suffix == ".xml":
            ET.parse(feed)
    # The next start finishes the job.
    process = Process(settings)
    process.wait_line("build finished")
    code, _ = process.terminate()
    assert code == 0
    assert len(entries(settings)) == 50  # max_items: the default, as no config was given


def test_json_log_lines_parse_as_json(settings: Settings) -> None:
    process = Process(settings, "--log-format", "json")
    try:
        process.wait_line('"build_finished"')
        write_article(settings.input, "a.txt", "https://a.example.com/json", title="JSON")
        process.wait_line('"article_added"', '"a.txt"')
    finally:
        code, _ = process.terminate()
    assert code == 0
    records = [json.loads(line) for line in process.lines]
    (added,) = [r for r in records if r.get("event") == "article_added" and r["title"] == "JSON"]
    assert added["source"] == "a.txt"
    assert added["title"] == "JSON"
    assert "all" in added["feeds"]
    assert added["level"] == "info"
    assert added["message"].startswith("added a.txt")
    assert records[-1]["message"] == "stopped"
