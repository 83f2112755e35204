"""The watcher's parts without threads: debouncing on a fake clock, event routing, imports."""

from __future__ import annotations

import ast
import errno
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from aggregator.daemon import ChangeBatch, ChangeHandler, Debouncer, inotify_limit_message
from aggregator.daemon.debounce import LEAD_PATHS
from aggregator.reading import SourceFilter

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_is_due_after_a_quiet_interval() -> None:
    clock = Clock()
    calls: list[str] = []
    debouncer = Debouncer(0.2, 2.0, clock=clock, on_pending=lambda: calls.append("pending"))
    assert debouncer.due_at() is None
    assert debouncer.take() is None
    debouncer.add(["a.txt"])
    debouncer.add(["b.txt"])
    assert calls == ["pending"]  # once per batch, not once per event
    assert debouncer.due_at() == pytest.approx(100.2)
    clock.now = 100.1
    debouncer.add(["a.txt"])  # a new event pushes the quiet interval back
    clock.now = 100.25
    assert debouncer.take() is None
    clock.now = 100.3
    assert debouncer.take() == ChangeBatch(frozenset({"a.txt", "b.txt"}))
    assert not debouncer.pending
    debouncer.add(["c.txt"])
    assert calls == ["pending", "pending"]


def test_a_steady_stream_is_cut_at_the_ceiling() -> None:
    clock = Clock()
    debouncer = Debouncer(0.2, 1.0, clock=clock)
    for step in range(20):  # one event every 0.1 s: never quiet for 0.2 s
        clock.now = 100.0 + step * 0.1
        debouncer.add([f"{step}.txt"])
        if clock.now >= 101.0:
            break
        assert debouncer.take() is None
    batch = debouncer.take()
    assert batch is not None
    assert len(batch.paths) == 11  # 100.0 … 101.0


def test_full_scans_kicks_and_held_paths() -> None:
    clock = Clock()
    debouncer = Debouncer(0.1, 1.0, clock=clock)
    debouncer.hold(ChangeBatch(frozenset({"failed.txt"})))
    assert not debouncer.pending  # held paths alone never start a batch
    debouncer.add(full_scan=True)
    clock.now += 0.1
    batch = debouncer.take()
    assert batch is not None
    assert batch.full_scan
    assert batch.changed is None
    assert batch.paths == {"failed.txt"}
    debouncer.kick()
    batch = debouncer.take(force=True)
    assert batch == ChangeBatch(frozenset())
    assert batch.changed == frozenset()
    debouncer.add([])  # nothing: no batch
    assert not debouncer.pending


def test_after_a_quiet_spell_a_completed_file_is_due_at_once() -> None:
    clock = Clock()
    calls: list[str] = []
    debouncer = Debouncer(0.2, 2.0, clock=clock, on_pending=lambda: calls.append("pending"))
    debouncer.add(["a.txt"])  # created: maybe mid-write, so the quiet interval holds
    assert debouncer.due_at() == pytest.approx(100.2)
    debouncer.add(["a.txt"], complete=True)  # closed: due now, and the caller is told
    assert calls == ["pending", "pending"]
    assert debouncer.due_at() == pytest.approx(100.0)
    assert debouncer.take() == ChangeBatch(frozenset({"a.txt"}))
    # What follows at once is the rest of a burst: debounced as before.
    clock.now = 100.05
    debouncer.add(["b.txt"], complete=True)
    assert debouncer.due_at() == pytest.approx(100.25)
    assert debouncer.take() is None
    clock.now = 100.25
    assert debouncer.take() == ChangeBatch(frozenset({"b.txt"}))
    # Quiet again for the interval: the next completed file leads again.
    clock.now = 100.5
    debouncer.add(["c.txt"], complete=True)
    assert debouncer.take() == ChangeBatch(frozenset({"c.txt"}))


def test_a_change_after_a_settled_build_leads_however_soon() -> None:
    """A build that ended with nothing gathered leaves an idle daemon: the next completed
    file leads even within the quiet interval; one that came while the build ran did not
    settle, and what follows it is debounced."""
    clock = Clock()
    debouncer = Debouncer(0.2, 2.0, clock=clock)
    debouncer.add(["a.txt"], complete=True)
    assert debouncer.take() == ChangeBatch(frozenset({"a.txt"}))
    clock.now = 100.1
    debouncer.settled()  # a.txt's build ended, nothing came meanwhile
    clock.now = 100.15
    debouncer.add(["b.txt"], complete=True)
    assert debouncer.due_at() == pytest.approx(100.15)
    assert debouncer.take() == ChangeBatch(frozenset({"b.txt"}))
    # c.txt comes while b.txt's build runs: the build's end does not settle the daemon.
    clock.now = 100.2
    debouncer.add(["c.txt"], complete=True)
    debouncer.settled()
    assert debouncer.due_at() == pytest.approx(100.4)
    clock.now = 100.4
    assert debouncer.take() == ChangeBatch(frozenset({"c.txt"}))


def test_the_leading_edge_leaves_files_still_being_written() -> None:
    clock = Clock()
    debouncer = Debouncer(0.2, 2.0, clock=clock)
    debouncer.add(["slow.txt"])  # opened and half written
    debouncer.add(["done.txt"])
    debouncer.add(["done.txt"], complete=True)
    assert debouncer.take() == ChangeBatch(frozenset({"done.txt"}))
    # slow.txt begins the next batch, due after the quiet interval (the re-check's window).
    assert debouncer.pending
    assert debouncer.due_at() == pytest.approx(100.2)
    clock.now = 100.2
    assert debouncer.take() == ChangeBatch(frozenset({"slow.txt"}))
    assert not debouncer.pending
    # Closed, then written to again before the build took it: nothing is complete.
    clock.now = 101.0
    debouncer.add(["again.txt"], complete=True)
    debouncer.add(["again.txt"])
    assert debouncer.take() is None
    assert debouncer.due_at() == pytest.approx(101.2)


def test_a_burst_loses_the_leading_edge_and_is_gathered_whole() -> None:
    """More paths than a lone change has, before the leading build is taken: a burst (a
    copy adds several files a millisecond). Its first files are not built alone."""
    clock = Clock()
    debouncer = Debouncer(0.2, 2.0, clock=clock)
    debouncer.add(["b0.txt"], complete=True)
    assert debouncer.due_at() == pytest.approx(100.0)  # alone so far: it leads
    for i in range(1, LEAD_PATHS + 1):
        clock.now = 100.0 + i * 0.001
        debouncer.add([f"b{i}.txt"])  # created, still being written
        debouncer.add([f"b{i}.txt"], complete=True)
    # One path too many: due after the quiet interval, as any batch, not at once.
    assert debouncer.due_at() == pytest.approx(clock.now + 0.2)
    assert debouncer.take() is None
    clock.now = 100.1
    debouncer.add(["b9.txt"], complete=True)  # the burst goes on: it joins the same batch
    clock.now = 100.29
    assert debouncer.take() is None
    clock.now = 100.3
    batch = debouncer.take()
    assert batch is not None
    assert batch.paths == {f"b{i}.txt" for i in range(LEAD_PATHS + 1)} | {"b9.txt"}
    assert not debouncer.pending
    # A steady stream after a quiet spell: its first file leads (it came alone), the rest
    # is cut by the ceiling as before.
    clock.now = 101.0
    debouncer.add(["s0.txt"], complete=True)
    assert debouncer.take() == ChangeBatch(frozenset({"s0.txt"}))
    for step in range(1, 40):  # one file every 0.1 s: never quiet for 0.2 s
        clock.now = 101.0 + step * 0.1
        debouncer.add([f"s{step}.txt"], complete=True)
        if clock.now >= 103.1 - 1e-9:
            break
        assert debouncer.take() is None
    batch = debouncer.take()
    assert batch is not None
    assert len(batch.paths) == 21  # s1 (101.1) … s21 (103.1)


def test_a_lone_change_of_a_few_paths_still_leads() -> None:
    clock = Clock()
    debouncer = Debouncer(0.2, 2.0, clock=clock)
    debouncer.add(["old.txt", "new.txt"], complete=True)  # a move: both paths at once
    assert debouncer.take() == ChangeBatch(frozenset({"old.txt", "new.txt"}))
    clock.now = 101.0
    few = [f"f{i}.txt" for i in range(LEAD_PATHS)]
    for path in few:
        debouncer.add([path], complete=True)
    assert debouncer.take() == ChangeBatch(frozenset(few))
    assert debouncer.gathered == 0


def test_a_full_scan_or_a_kick_never_leads() -> None:
    clock = Clock()
    debouncer = Debouncer(0.2, 2.0, clock=clock)
    debouncer.add(full_scan=True)
    debouncer.add(["a.txt"], complete=True)  # joins a batch that did not lead
    assert debouncer.due_at() == pytest.approx(100.2)
    clock.now = 100.2
    batch = debouncer.take()
    assert batch is not None
    assert batch.full_scan
    clock.now = 101.0
    debouncer.kick()  # a retry: no path of its own, so nothing leads it
    assert debouncer.due_at() == pytest.approx(101.2)


@pytest.fixture
def routed(tmp_path: Path) -> tuple[ChangeHandler, Debouncer, Path]:
    root = tmp_path / "in"
    root.mkdir()
    source_filter = SourceFilter(
        root, ("*.txt", "*.md"), excluded=(root / "feeds", root / ".state")
    )
    clock = Clock()
    debouncer = Debouncer(0.0, 0.0, clock=clock)
    return ChangeHandler(source_filter, debouncer), debouncer, root.resolve()


def _taken(debouncer: Debouncer) -> ChangeBatch | None:
    return debouncer.take(force=True)


def test_events_become_article_paths(routed: tuple[ChangeHandler, Debouncer, Path]) -> None:
    handler, debouncer, root = routed
    handler.dispatch(FileCreatedEvent(str(root / "a.txt")))
    handler.dispatch(FileModifiedEvent(str(root / "sub" / "b.md")))
    handler.dispatch(FileClosedEvent(str(root / "a.txt")))
    handler.dispatch(FileDeletedEvent(str(root / "c.txt")))
    assert _taken(debouncer) == ChangeBatch(frozenset({"a.txt", "sub/b.md", "c.txt"}))


def test_a_move_is_a_delete_and_an_upsert(routed: tuple[ChangeHandler, Debouncer, Path]) -> None:
    handler, debouncer, root = routed
    handler.dispatch(FileMovedEvent(str(root / "old.txt"), str(root / "new.txt")))
    assert _taken(debouncer) == ChangeBatch(frozenset({"old.txt", "new.txt"}))
    # An editor's save: its temp file renamed over the article is one change, the article.
    handler.dispatch(FileCreatedEvent(str(root / ".a.txt.swp")))
    handler.dispatch(FileMovedEvent(str(root / ".a.txt.swp"), str(root / "a.txt")))
    assert _taken(debouncer) == ChangeBatch(frozenset({"a.txt"}))


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.txt",
        "a.txt~",
        "a.txt.swp",
        ".a.txt.swx",
        "a.txt.tmp",
        "4913",
        ".#a.txt",
        "#a.txt#",
        "notes.pdf",
        "feeds/all.txt",
        "feeds/topics/ai.md",
        ".state/catalog.txt",
        ".git/a.txt",
    ],
)
def test_ignored_files_never_start_a_batch(
    routed: tuple[ChangeHandler, Debouncer, Path], name: str
) -> None:
    handler, debouncer, root = routed
    for event in (
        FileCreatedEvent(str(root / name)),
        FileModifiedEvent(str(root / name)),
        FileDeletedEvent(str(root / name)),
        FileMovedEvent(str(root / name), str(root / (name + ".bak"))),
    ):
        handler.dispatch(event)
    assert not debouncer.pending


def test_reads_and_folder_modifications_are_not_changes(
    routed: tuple[ChangeHandler, Debouncer, Path],
) -> None:
    handler, debouncer, root = routed
    handler.dispatch(FileOpenedEvent(str(root / "a.txt")))
    handler.dispatch(FileClosedNoWriteEvent(str(root / "a.txt")))
    handler.dispatch(DirModifiedEvent(str(root)))
    handler.dispatch(FileCreatedEvent(str(root.parent / "elsewhere.txt")))
    assert not debouncer.pending


def test_folder_events_ask_for_a_full_scan(
    routed: tuple[ChangeHandler, Debouncer, Path],
) -> None:
    handler, debouncer, root = routed
    for event in (
        DirCreatedEvent(str(root / "new")),
        DirDeletedEvent(str(root / "old")),
        DirMovedEvent(str(root / "old"), str(root / "new")),
        DirMovedEvent(str(root / ".hidden"), str(root / "visible")),
    ):
        handler.dispatch(event)
        batch = _taken(debouncer)
        assert batch is not None
        assert batch.full_scan
    for event in (
        DirCreatedEvent(str(root / "feeds" / "topics")),
        DirDeletedEvent(str(root / ".state")),
        DirCreatedEvent(str(root / ".git" / "objects")),
    ):
        handler.dispatch(event)
        assert not debouncer.pending


def test_inotify_limit_messages_say_how_to_raise_the_limit() -> None:
    watches = inotify_limit_message(OSError(errno.ENOSPC, "inotify watch limit reached"))
    assert watches is not None
    assert "sysctl fs.inotify.max_user_watches=524288" in watches
    assert "/etc/sysctl.d/" in watches
    instances = inotify_limit_message(OSError(errno.EMFILE, "inotify instance limit reached"))
    assert instances is not None
    assert "fs.inotify.max_user_instances" in instances
    assert inotify_limit_message(OSError(errno.EACCES, "denied")) is None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("library", "owner"), [("watchdog", "daemon/watch"), ("apscheduler", "daemon/jobs")]
)
def test_one_module_imports_each_scheduling_library(library: str, owner: str) -> None:
    importers = {
        p.relative_to(PACKAGE).with_suffix("").as_posix()
        for p in PACKAGE.rglob("*.py")
        if library in _imports(p)
    }
    assert importers == {owner}
