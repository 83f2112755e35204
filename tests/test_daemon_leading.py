"""The debounce's leading edge with the real observer on real folders: after a quiet spell,
a file its writer has closed is built at once; a file still being written is not read then,
and a file read half-written is looked at again once it is complete.

The leading edge is told apart from the quiet interval by making that interval far longer
than any wait here (10 x TIMEOUT, set by a reload once the first build is done): a build
that comes within TIMEOUT can only be the leading edge's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from articlefiles import article_text, write_article
from building import DAEMON, folder_settings
from waiting import TIMEOUT, Recorder, wait_for

from aggregator.config import Settings
from aggregator.daemon import Daemon
from aggregator.events import ArticleAdded, ArticleRejected
from aggregator.pipeline import Builder, BuildReport, Progress

LONG = 10 * TIMEOUT


class BatchSpy(Builder):
    """The real builder, recording the paths of each batch it is given; `hold_next` makes
    the next build wait (once `entered` is set) until the test sets the gate it returns."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._batches: list[frozenset[str] | None] = []
        self._lock = threading.Lock()
        self._gate: threading.Event | None = None
        self.entered = threading.Event()

    def hold_next(self) -> threading.Event:
        gate = threading.Event()
        with self._lock:
            self._gate = gate
        return gate

    @property
    def batches(self) -> list[frozenset[str] | None]:
        with self._lock:
            return list(self._batches)

    def build(
        self,
        changed: Iterable[str] | None = None,
        progress: Progress | None = None,
        render_progress: Progress | None = None,
    ) -> BuildReport:
        with self._lock:
            self._batches.append(None if changed is None else frozenset(changed))
            gate, self._gate = self._gate, None
        if gate is not None:
            self.entered.set()
            assert gate.wait(TIMEOUT), "the test never let the held build go on"
        return super().build(changed, progress, render_progress)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path, seeds=True, **DAEMON)


@contextmanager
def running(settings: Settings, *, quiet: float | None = None) -> Iterator[tuple[Daemon, Recorder]]:
    """A started daemon whose first full build is done; with `quiet`, reloaded to that quiet
    interval (and ceiling) and idle again."""
    recorder = Recorder()
    daemon = Daemon(settings, sinks=[recorder], builder_factory=BatchSpy)
    daemon.start()
    try:
        wait_for(lambda: recorder.builds >= 1, "the first full build")
        if quiet is not None:
            daemon.reconfigure(
                replace(settings, debounce_seconds=quiet, debounce_max_seconds=quiet)
            )
            wait_for(lambda: recorder.builds >= 2, "the reload's build")
        assert daemon.wait_idle(TIMEOUT)
        yield daemon, recorder
    finally:
        assert daemon.stop(), "the daemon did not stop in time"


def batches(daemon: Daemon) -> list[frozenset[str] | None]:
    assert isinstance(daemon.builder, BatchSpy)
    return daemon.builder.batches


def titles(settings: Settings) -> dict[str, str]:
    """link → title of the `all` feed's Atom entries."""
    try:
        data = (settings.output / "all.atom.xml").read_bytes()
    except FileNotFoundError:
        return {}
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {e.link: e.title for e in parsed.entries}


def drop(folder: Path, name: str, url: str, title: str = "A title") -> None:
    """An article saved the way an editor saves: written and closed, and nothing after.
    (write_article then sets a newer mtime: an attribute change of its own, which can reach
    the daemon after the leading build took the file, and begins a batch of its own.)"""
    (folder / name).write_text(article_text(url, title), encoding="utf-8")


def rejected(recorder: Recorder, source: str) -> list[ArticleRejected]:
    return [e for e in recorder.of(ArticleRejected) if e.source == source]


def test_a_lone_drop_is_built_at_once_and_what_follows_is_debounced(settings: Settings) -> None:
    url = "https://lead.example.com/first"
    with running(settings, quiet=LONG) as (daemon, recorder):
        assert isinstance(daemon.builder, BatchSpy)
        before, mark = len(batches(daemon)), len(recorder.events)
        drop(settings.input, "first.txt", url, title="First")
        wait_for(lambda: url in titles(settings), "the drop, long before the quiet interval")
        assert daemon.wait_idle(TIMEOUT)
        assert batches(daemon)[before:] == [frozenset({"first.txt"})]
        assert [e.source for e in recorder.of(ArticleAdded, since=mark)] == ["first.txt"]

        # The next drop follows the first well within the quiet interval, but the daemon is
        # idle again (nothing came while the first was built): it leads too.
        second = "https://lead.example.com/second"
        gate = daemon.builder.hold_next()
        drop(settings.input, "second.txt", second, title="Second")
        wait_for(daemon.builder.entered.is_set, "the second drop's build, at once")

        # A drop while that build runs is gathered, to be built once the folder has been
        # quiet for that long (far beyond this test): a build in flight is no idle daemon.
        drop(settings.input, "third.txt", "https://lead.example.com/third")
        wait_for(lambda: daemon.debouncer.pending, "the third drop's event")
        gate.set()
        wait_for(lambda: second in titles(settings), "the second drop's feeds")
        due = daemon.debouncer.due_at()
        assert due is not None
        assert due > time.monotonic() + TIMEOUT
        assert batches(daemon)[before:] == [frozenset({"first.txt"}), frozenset({"second.txt"})]


def test_a_file_still_being_written_is_left_out_of_the_leading_build(
    settings: Settings,
) -> None:
    slow = settings.input / "slow.txt"
    text = article_text("https://lead.example.com/slow", "Slowly written", excerpt="x" * 5000)
    url = "https://lead.example.com/done"
    with running(settings, quiet=LONG) as (daemon, recorder):
        before = len(batches(daemon))
        with slow.open("w", encoding="utf-8") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
            wait_for(lambda: daemon.debouncer.pending, "the half-written file's events")
            write_article(settings.input, "done.txt", url, title="Done")
            wait_for(lambda: url in titles(settings), "the closed file, built at once")
            # Built without the open file: it was never read half-written.
            assert batches(daemon)[before:] == [frozenset({"done.txt"})]
            assert not rejected(recorder, "slow.txt")
            assert daemon.debouncer.pending  # slow.txt waits for the quiet interval
            handle.write(text[len(text) // 2 :])


def test_a_file_written_in_two_halves_is_checked_again_once_complete(
    settings: Settings,
) -> None:
    """Written and closed half done (an appending writer): the leading edge reads the half
    and rejects it; the re-check waits out the quiet interval instead of leading, and the
    second half, appended, is what gets published."""
    url = "https://lead.example.com/halves"
    text = article_text(url, "Written in halves", excerpt="y" * 5000)
    path = settings.input / "halves.txt"
    with running(settings) as (daemon, recorder):
        before = len(batches(daemon))
        path.write_text(text[: len(text) // 2], encoding="utf-8")
        wait_for(lambda: rejected(recorder, "halves.txt"), "the first half's rejection")
        # The half was read by a build of its own: the leading edge's.
        assert batches(daemon)[before] == frozenset({"halves.txt"})
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text[len(text) // 2 :])
        wait_for(lambda: titles(settings).get(url) == "Written in halves", "the whole file")
        assert daemon.wait_idle(TIMEOUT)
        # One rejection (of the half), one addition (of the whole), nothing in between.
        assert len(rejected(recorder, "halves.txt")) == 1
        added = [e for e in recorder.of(ArticleAdded) if e.source == "halves.txt"]
        assert len(added) == 1
        assert all(batch == frozenset({"halves.txt"}) for batch in batches(daemon)[before:])


def test_a_burst_after_a_quiet_spell_is_folded_into_few_builds(tmp_path: Path) -> None:
    # A quiet interval that a pause of the writing loop on a busy machine does not reach.
    settings = folder_settings(
        tmp_path, seeds=True, **{**DAEMON, "debounce_seconds": 0.5, "debounce_max_seconds": 2.0}
    )
    urls = [f"https://burst.example.com/{i}" for i in range(300)]
    with running(settings) as (daemon, recorder):
        before, mark = len(batches(daemon)), len(recorder.events)
        for i, url in enumerate(urls):
            write_article(settings.input, f"b{i:03d}.txt", url, title=f"B{i}")
        wait_for(lambda: set(urls) <= set(titles(settings)), "every file of the burst")
        assert daemon.wait_idle(TIMEOUT)
        built = batches(daemon)[before:]
        # The leading edge takes what had arrived (often the first file alone); the rest of
        # the burst is gathered as before, not built a file at a time.
        assert len(built) < len(urls) // 10, f"{len(built)} builds for {len(urls)} files"
        assert {p for batch in built if batch for p in batch} == {
            f"b{i:03d}.txt" for i in range(len(urls))
        }
        assert len(recorder.of(ArticleAdded, since=mark)) == len(urls)


def test_a_burst_written_while_a_build_runs_is_built_whole(tmp_path: Path) -> None:
    """A burst that begins after a quiet spell, while a build holds the writer: its first
    file closed would lead, but the rest is seen before that build ends, so the burst is
    no lone change: it is due once it has gone quiet (not at once) and built in one go."""
    quiet = 0.5  # a pause of the writing loop on a busy machine does not reach it
    settings = folder_settings(
        tmp_path, seeds=True, **{**DAEMON, "debounce_seconds": quiet, "debounce_max_seconds": LONG}
    )
    burst = {f"w{i:02d}.txt": f"https://held.example.com/{i}" for i in range(12)}
    with running(settings) as (daemon, recorder):
        assert isinstance(daemon.builder, BatchSpy)
        before, builds = len(batches(daemon)), recorder.builds
        gate = daemon.builder.hold_next()
        drop(settings.input, "lone.txt", "https://held.example.com/lone")
        wait_for(daemon.builder.entered.is_set, "the lone drop's build, held")
        # A quiet spell since the lone drop's events (all seen before its build began):
        # the burst's first file closed would be due at once.
        time.sleep(2 * quiet)
        names = sorted(burst)
        for name in names[:-1]:
            drop(settings.input, name, burst[name])
        last_write = time.monotonic()
        drop(settings.input, names[-1], burst[names[-1]])
        wait_for(lambda: daemon.debouncer.gathered == len(burst), "the burst's events")
        # Due after its last change and the quiet interval: after the last write began,
        # whereas a leading edge is due from the first file's close.
        due = daemon.debouncer.due_at()
        assert due is not None
        assert due >= last_write
        gate.set()
        wait_for(lambda: set(burst.values()) <= set(titles(settings)), "the whole burst")
        assert daemon.wait_idle(TIMEOUT)
        assert batches(daemon)[before:] == [frozenset({"lone.txt"}), frozenset(burst)]
        assert recorder.builds == builds + 2
