"""Folders swapped and deleted under the daemon, with the real watchdog observer and real
`mv` / `rm -r`: the watcher follows the input folder's path, not its old inode (a drop into the
new folder is published without waiting for the reconcile, which is 300 s here), the log says
so, and a deleted output folder or deleted feed files are written again at once."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from articlefiles import write_article
from building import DAEMON, folder_settings
from waiting import Recorder, wait_for
from watchdog.events import FileSystemEvent

from aggregator.config import Settings
from aggregator.daemon import Daemon
from aggregator.daemon.watch import RootEvents
from aggregator.events import ArticleRemoved


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """in/ and out/ side by side (the usual layout), the reconcile far away."""
    settings = folder_settings(tmp_path, **DAEMON, reconcile_seconds=300.0)
    write_article(settings.input, "a.txt", "https://x.test/a", title="A")
    write_article(settings.input, "b.txt", "https://x.test/b", title="B", topics=["Robots"])
    return settings


@contextmanager
def running(settings: Settings) -> Iterator[tuple[Daemon, Recorder]]:
    recorder = Recorder()
    daemon = Daemon(settings, sinks=[recorder])
    daemon.start()
    try:
        wait_for(lambda: recorder.builds >= 1, "the first full build")
        yield daemon, recorder
    finally:
        assert daemon.stop(), "the daemon did not stop in time"


def titles(settings: Settings, feed: str = "all") -> set[str]:
    try:
        data = (settings.output / f"{feed}.atom.xml").read_bytes()
    except FileNotFoundError:
        return set()
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {e.title for e in parsed.entries}


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=60)


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_a_deploy_swap_is_followed_at_once(
    settings: Settings, caplog: pytest.LogCaptureFixture, poll: bool
) -> None:
    settings = replace(settings, poll=poll, poll_seconds=0.2)
    inp = settings.input
    new = inp.with_name("in.new")
    shutil.copytree(inp, new)
    write_article(new, "c.txt", "https://x.test/c", title="C")
    caplog.set_level(logging.INFO, logger="aggregator")
    with running(settings) as (daemon, _):
        sh("mv", str(inp), str(inp.with_name("in.old")))
        sh("mv", str(new), str(inp))
        wait_for(lambda: "C" in titles(settings), "the swapped-in folder's new article")
        wait_for(lambda: "watching it now" in caplog.text, "the log line of the new folder")
        # A drop into the new folder is seen by the watcher (the reconcile is 300 s away).
        write_article(inp, "d.txt", "https://x.test/d", title="D")
        wait_for(lambda: "D" in titles(settings), "a drop into the new folder")
        # And nothing dropped into the old one is: it is not the input folder any more.
        write_article(inp.with_name("in.old"), "x.txt", "https://x.test/x", title="X")
        write_article(inp, "e.txt", "https://x.test/e", title="E")
        wait_for(lambda: "E" in titles(settings), "another drop")
        assert titles(settings) == {"A", "B", "C", "D", "E"}
        assert daemon.watcher is not None
        assert daemon.watcher.alive()
        assert daemon.watcher.polling is poll


def test_an_input_folder_deleted_and_created_again(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    inp = settings.input
    caplog.set_level(logging.INFO, logger="aggregator")
    with running(settings) as (daemon, _):
        sh("rm", "-r", str(inp))
        wait_for(lambda: "is gone" in caplog.text, "the log line saying the folder is gone")
        inp.mkdir()
        write_article(inp, "a.txt", "https://x.test/a", title="A again")
        wait_for(lambda: titles(settings) == {"A again"}, "the new folder's article alone")
        write_article(inp, "f.txt", "https://x.test/f", title="F")
        wait_for(lambda: "F" in titles(settings), "a drop into the re-created folder")
        assert daemon.watcher is not None
        assert daemon.watcher.alive()


def test_an_input_folder_moved_away_withdraws_nothing(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The first half of a swap, or a mount that vanished: no folder at the path is not an
    empty folder. Edits in the folder moved away are not the input's any more."""
    inp, away = settings.input, settings.input.with_name("in.away")
    caplog.set_level(logging.INFO, logger="aggregator")
    with running(settings) as (_, recorder):
        sh("mv", str(inp), str(away))
        wait_for(lambda: "is gone" in caplog.text, "the log line saying the folder is gone")
        (away / "b.txt").unlink()
        write_article(away, "a.txt", "https://x.test/a", title="A edited away")
        sh("mv", str(away), str(inp))
        wait_for(lambda: "is back" in caplog.text, "the log line saying the folder is back")
        wait_for(lambda: titles(settings) == {"A edited away"}, "the folder as it came back")
        write_article(inp, "g.txt", "https://x.test/g", title="G")
        wait_for(lambda: "G" in titles(settings), "a drop into the folder back in place")
    # Nothing left while the folder was away: B left when it came back without it.
    removed = [e.source for e in recorder.of(ArticleRemoved)]
    assert removed == ["b.txt"]


def test_a_deleted_output_folder_is_written_again_at_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator")
    with running(settings):
        files = sorted(p.relative_to(settings.output) for p in settings.output.rglob("*.xml"))
        assert len(files) >= 6  # all, topics/ai, topics/robots, providers…, each RSS and Atom
        sh("rm", "-r", str(settings.output))
        wait_for(
            lambda: all((settings.output / f).is_file() for f in files)
            and (settings.output / "index.html").is_file()
            and (settings.output / "index.opml").is_file(),
            "every feed and index written again",
        )
        assert "the output folder" in caplog.text
        assert titles(settings) == {"A", "B"}
        assert titles(settings, "topics/robots") == {"B"}


def test_deleted_feed_files_are_written_again_at_once(settings: Settings) -> None:
    with running(settings):
        robots = [settings.output / f"topics/robots.{ext}" for ext in ("rss.xml", "atom.xml")]
        assert all(path.is_file() for path in robots)
        sh("rm", *map(str, robots), str(settings.output / "index.html"))
        wait_for(
            lambda: all(path.is_file() for path in robots)
            and (settings.output / "index.html").is_file(),
            "the deleted feed files written again",
        )
        assert titles(settings, "topics/robots") == {"B"}


def test_an_output_folder_inside_the_input_is_followed_too(tmp_path: Path) -> None:
    settings = folder_settings(
        tmp_path, **DAEMON, output=tmp_path / "in" / "feeds", reconcile_seconds=300.0
    )
    write_article(settings.input, "a.txt", "https://x.test/a", title="A")
    with running(settings):
        atom = settings.output / "all.atom.xml"
        assert atom.is_file()
        atom.unlink()
        wait_for(atom.is_file, "the deleted feed inside the input folder written again")
        sh("rm", "-r", str(settings.output))
        wait_for(atom.is_file, "the deleted output folder inside the input written again")
        assert titles(settings) == {"A"}


def test_the_output_watch_hears_only_of_losses_not_of_each_feed_written(
    settings: Settings,
) -> None:
    # Unfiltered, each feed the daemon wrote came back from the output folder's watch as 4
    # to 6 events (created, modified, closed, attrib, moved) for the observer to handle.
    with running(settings) as (daemon, recorder):
        assert daemon.watcher is not None
        roots = daemon.watcher.roots
        heard: list[str] = []
        output = str(settings.output)

        def hear(event: FileSystemEvent) -> None:
            if os.fsdecode(event.src_path).startswith(output):
                heard.append(type(event).__name__)
            RootEvents.on_any_event(roots, event)

        roots.on_any_event = hear  # type: ignore[method-assign]
        builds = recorder.builds
        write_article(settings.input, "c.txt", "https://x.test/c", title="C", topics=["Robots"])
        wait_for(lambda: "C" in titles(settings, "topics/robots"), "the drop published")
        wait_for(lambda: recorder.builds > builds, "the drop's build finished")
        assert heard, "the output folder is not watched"  # the temp files renamed into place
        assert set(heard) <= {"FileMovedEvent", "FileDeletedEvent", "DirDeletedEvent"}, heard
