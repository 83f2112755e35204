"""Several nodes on one PostgreSQL catalog: namespaced paths, one item per webUrl, the change
log that brings every node's output to the same bytes, the doorbell, the leader."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
from articlefiles import bump_mtime, write_article
from building import folder_settings

from aggregator.catalog import Catalog, ChangeListener, Leadership, StoredFile
from aggregator.config import Settings
from aggregator.errors import CatalogError
from aggregator.events import ArticleAdded
from aggregator.pipeline import Builder


def node_settings(root: Path, url: str, node: str) -> Settings:
    return folder_settings(root / node, catalog=url, node=node)


def outputs(settings: Settings) -> dict[str, bytes]:
    return {
        str(p.relative_to(settings.output)): p.read_bytes()
        for p in sorted(settings.output.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def poll(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_the_same_path_on_two_nodes_is_two_files(tmp_path: Path, postgres_url: str) -> None:
    one = node_settings(tmp_path, postgres_url, "one")
    two = node_settings(tmp_path, postgres_url, "two")
    write_article(one.input, "a/x.txt", "https://e.org/from-one", title="From one")
    write_article(two.input, "a/x.txt", "https://e.org/from-two", title="From two")
    with Builder(one) as first:
        report = first.build()
        # Events and paths speak of this node's input folder, without the node's name.
        assert [e.source for e in report.events if isinstance(e, ArticleAdded)] == ["a/x.txt"]
        assert set(first.catalog.file_signatures()) == {"a/x.txt"}
    with Builder(two) as second:
        second.build()
        assert second.catalog.published_count() == 2
    with Catalog(postgres_url, node="one") as catalog:
        assert set(catalog.file_signatures()) == {"a/x.txt"}


def test_every_node_writes_the_same_bytes_from_the_change_log(
    tmp_path: Path, postgres_url: str
) -> None:
    one = node_settings(tmp_path, postgres_url, "one")
    two = node_settings(tmp_path, postgres_url, "two")
    write_article(one.input, "x.txt", "https://e.org/x", title="X", topics=["Science"])
    with Builder(one) as first, Builder(two) as second:
        first.build()
        # Node two has no file of its own: a build with no changed path catches up.
        second.build([])
        assert outputs(one) == outputs(two)
        titles = [e.title for e in feedparser.parse(two.output / "all.rss.xml").entries]
        assert titles == ["X"]
        # Node two's edit reaches node one the same way; nothing is pending afterwards.
        write_article(two.input, "y.txt", "https://e.org/y", title="Y", topics=["Art"])
        second.build()
        first.build([])
        assert outputs(one) == outputs(two)
        assert first.catalog.pending_feeds() == set()
        assert len(feedparser.parse(one.output / "all.atom.xml").entries) == 2


def test_one_webUrl_from_two_nodes_is_one_item_from_the_newest_file(
    tmp_path: Path, postgres_url: str
) -> None:
    one = node_settings(tmp_path, postgres_url, "one")
    two = node_settings(tmp_path, postgres_url, "two")
    write_article(one.input, "same.txt", "https://e.org/same", title="Old title")
    write_article(two.input, "same.txt", "https://e.org/same", title="New title")
    bump_mtime(two.input / "same.txt")  # the newer file
    results: list[BaseException] = []

    def build(settings: Settings) -> None:
        try:
            with Builder(settings) as builder:
                builder.build()
        except BaseException as exc:  # reported by the main thread
            results.append(exc)

    # At once: the syncs are serialised by the catalog, so the rule holds whatever the order.
    threads = [threading.Thread(target=build, args=(s,)) for s in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == []
    with Builder(one) as first, Builder(two) as second:
        first.build([])
        second.build([])
    for settings in (one, two):
        entries = feedparser.parse(settings.output / "all.rss.xml").entries
        assert [(e.title, e.id) for e in entries] == [("New title", "https://e.org/same")]


def test_the_listener_rings_for_other_nodes_commits_only(tmp_path: Path, postgres_url: str) -> None:
    one = node_settings(tmp_path, postgres_url, "one")
    two = node_settings(tmp_path, postgres_url, "two")
    with Builder(one) as first:
        first.build()  # creates the schema
        rings: list[str] = []
        connects = threading.Event()
        listener = ChangeListener(postgres_url, "one", lambda: rings.append("ring"), connects.set)
        listener.start()
        try:
            assert connects.wait(10)
            write_article(one.input, "mine.txt", "https://e.org/mine", title="Mine")
            first.build()
            write_article(two.input, "theirs.txt", "https://e.org/theirs", title="Theirs")
            with Builder(two) as second:
                second.build()  # rings twice: its sync, then its render (no leader runs)
            assert poll(lambda: rings == ["ring", "ring"])
        finally:
            listener.stop()
    assert rings == ["ring", "ring"]  # this node's own commits (sync, render) did not ring it


def test_a_dead_leader_is_replaced_and_fenced_off(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator.catalog")
    Catalog(postgres_url, node="a").close()  # creates the schema
    first, second = Leadership(postgres_url, "a"), Leadership(postgres_url, "b")
    first.start()
    try:
        assert poll(lambda: first.epoch is not None)
        second.start()
        epoch = first.epoch
        assert epoch is not None
        assert first.still_leader(epoch)
        # b campaigns every second, in vain while a holds the lock.
        assert not poll(lambda: second.epoch is not None, 2.5)
        first.stop()  # its session ends: the lock is free
        assert poll(lambda: second.epoch is not None, 5)
        assert second.epoch == epoch + 1
        assert not second.still_leader(epoch)  # the old leader's token is stale
    finally:
        first.stop()
        second.stop()
    assert "leader: b took over from a (epoch" in caplog.text


def test_an_unreachable_database_is_a_catalog_error_saying_what_to_do() -> None:
    with pytest.raises(CatalogError) as caught:
        Catalog("postgresql://nobody@127.0.0.1:9/feeds", node="n")
    message = str(caught.value)
    assert "postgresql://127.0.0.1:9/feeds" in message
    assert "is PostgreSQL running?" in message


def test_once_only_work_runs_on_the_leader_alone(tmp_path: Path, postgres_url: str) -> None:
    from aggregator.daemon import Daemon

    def leads(daemon: Daemon) -> bool:
        leadership = daemon.cluster.leadership
        return bool(leadership and leadership.epoch)

    done: list[str] = []
    daemons = [Daemon(node_settings(tmp_path, postgres_url, name)) for name in ("a", "b")]
    try:
        for daemon in daemons:
            daemon.start()
        assert poll(lambda: any(leads(d) for d in daemons))
        for daemon in daemons:
            daemon.as_leader("ping", lambda d=daemon: done.append(d.settings.node))
        leader = next(d for d in daemons if leads(d))
        assert done == [leader.settings.node]
    finally:
        for daemon in daemons:
            daemon.stop()


def test_a_stale_leaders_render_is_refused(tmp_path: Path, postgres_url: str) -> None:
    from aggregator.errors import FencedOut
    from aggregator.model import RenderedFile

    settings = node_settings(tmp_path, postgres_url, "one")
    write_article(settings.input, "a.txt", "https://e.org/a", title="A")
    with Builder(settings) as builder:
        report = builder.build()  # no daemon leads: it takes the lead for its run
    assert report.written > 0
    assert report.copied > 0
    stray = {"stray.xml": RenderedFile("stray.xml", b"<stale/>")}
    leadership = Leadership(postgres_url, "one")
    leadership.start()
    try:
        assert poll(lambda: leadership.epoch is not None)
        epoch = leadership.epoch
        assert epoch is not None
        with Catalog(postgres_url, node="one") as catalog:
            before = catalog.rendered_version()
            with pytest.raises(FencedOut, match="no longer the leader's"):
                catalog.store_rendered(stray, (), epoch - 1, "one")  # the build's epoch
            assert catalog.rendered_version() == before
            assert "stray.xml" not in catalog.stored_digests()
            assert catalog.store_rendered(stray, (), epoch, "one") == before + 1
            assert "stray.xml" in catalog.stored_digests()
    finally:
        leadership.stop()
    # The lease went with the stop: the same epoch is refused now.
    with Catalog(postgres_url, node="one") as catalog, pytest.raises(FencedOut):
        catalog.store_rendered(stray, (), epoch, "one")


def test_the_renderer_copies_what_it_stored_from_memory_and_fetches_what_it_did_not(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[tuple[str | None, int]] = []
    real = Catalog.rendered_since

    def rendered_since(catalog: Catalog, mark: int) -> Iterator[list[StoredFile]]:
        fetched.append((catalog._keys.prefix[:-1] or None, mark))
        return real(catalog, mark)

    monkeypatch.setattr(Catalog, "rendered_since", rendered_since)
    one = node_settings(tmp_path, postgres_url, "one")
    two = node_settings(tmp_path, postgres_url, "two")
    write_article(one.input, "x.txt", "https://e.org/x", title="X", topics=["Science"])
    write_article(one.input, "y.txt", "https://e.org/y", title="Y", topics=["Art"])
    with Builder(one) as first, Builder(two) as second:
        # Each one-shot build takes the lead for its run (no daemon leads): it renders.
        assert first.build().copied > 0
        write_article(one.input, "x.txt", "https://e.org/x", title="X2")
        (one.input / "y.txt").unlink()  # the Art feed's files go: rows without bytes
        assert first.build().copied > 0
        # The versions it stored came straight from memory: nothing fetched back.
        assert [f for f in fetched if f[0] == "one"] == []
        second.build()  # a node that renders nothing fetches every version
        assert [f[0] for f in fetched] == ["two"]
        assert outputs(one) == outputs(two)
        # Node two renders a version of its own (its sync): node one's next store is not
        # the next version after its mark, so it fetches both from the database.
        write_article(two.input, "z.txt", "https://e.org/z", title="Z", topics=["Art"])
        second.build()
        write_article(one.input, "w.txt", "https://e.org/w", title="W", topics=["Science"])
        first.build()
        assert fetched[-1][0] == "one"
        second.build([])
        assert outputs(one) == outputs(two)
        titles = [e.title for e in feedparser.parse(one.output / "all.rss.xml").entries]
        assert sorted(titles) == ["W", "X2", "Z"]
        # The digests each renderer remembers between builds (then reads only the versions
        # since) are the set's, removals and the other node's version included.
        with Catalog(postgres_url, node="three") as fresh:
            assert first.catalog.stored_digests() == fresh.stored_digests()
            assert second.catalog.stored_digests() == fresh.stored_digests()
            remembered = first.catalog._digests_at
            assert remembered is not None
            assert remembered[0] == fresh.rendered_version()
