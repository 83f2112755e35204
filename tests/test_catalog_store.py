"""The catalog's boundary and its small contracts, on both backends: storage errors leave as a
`CatalogError` with advice (owed pings included), bugs leave as themselves, transactions nest,
and the build's settings have typed methods."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.catalog import Catalog
from aggregator.errors import CatalogError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def open_catalog(tmp_path: Path, backend: str | None) -> Catalog:
    return Catalog(backend, node="n1") if backend else Catalog(tmp_path / "catalog.sqlite3")


def test_owed_pings_of_a_locked_database_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    # In WAL mode a writer never blocks a reader: a rollback journal lets another process
    # lock the file against readers too, as a stuck tool holding it would.
    other.execute("PRAGMA journal_mode=DELETE")
    catalog = Catalog(path, readonly=True)
    try:
        catalog._db.execute("PRAGMA busy_timeout = 50")  # not the default 5 s
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(CatalogError, match="locked by another process; wait for it"):
            catalog.owed_pings()
    finally:
        other.execute("ROLLBACK")
        other.close()
        catalog.close()


def test_a_closed_catalog_is_a_catalog_error_but_a_bug_is_itself(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    with catalog._backend.boundary(), pytest.raises(sqlite3.ProgrammingError, match="bindings"):
        catalog._db.execute("SELECT ?", ())  # our mistake: not advice for the user
    catalog.close()
    with pytest.raises(CatalogError, match="closed database"):
        catalog.owed_pings()


def test_a_bug_in_sql_on_postgresql_is_itself(postgres_url: str) -> None:
    import psycopg

    with Catalog(postgres_url, node="n1") as catalog:
        with catalog._backend.boundary(), pytest.raises(psycopg.ProgrammingError):
            catalog._db.execute("SELEC 1")
        with pytest.raises(CatalogError, match="no_such_table"):
            catalog._db.execute("SELECT * FROM no_such_table")


def set_then_fail(catalog: Catalog, key: str) -> None:
    with catalog.transaction():
        catalog.set_meta(key, "2")
        raise RuntimeError("undo it")


def test_transactions_nest_as_savepoints(tmp_path: Path, catalog_backend: str | None) -> None:
    with open_catalog(tmp_path, catalog_backend) as catalog:
        with catalog.transaction():
            catalog.set_meta("outer", "1")
            with pytest.raises(RuntimeError):
                set_then_fail(catalog, "inner")  # undoes the inner part only
            with catalog.transaction():
                catalog.set_meta("kept", "1")
        assert (catalog.meta("outer"), catalog.meta("inner"), catalog.meta("kept")) == (
            "1",
            None,
            "1",
        )
        with pytest.raises(RuntimeError):
            set_then_fail(catalog, "outer")
        assert catalog.meta("outer") == "1"


def test_the_builds_settings_have_typed_methods(
    tmp_path: Path, catalog_backend: str | None
) -> None:
    with open_catalog(tmp_path, catalog_backend) as catalog:
        assert catalog.cutoff() is None
        assert catalog.embargo()  # unless a build said otherwise
        assert catalog.render_settings() is None
        assert catalog.feed_definitions() is None
        assert catalog.index_renderer() is None
        catalog.set_cutoff(NOW)
        catalog.set_embargo(False)
        catalog.set_render_settings("abc")
        catalog.set_feed_definitions({"builtin": "True,True,True"})
        catalog.set_index_renderer("def")
        assert catalog.cutoff() == NOW
        assert not catalog.embargo()
        assert catalog.render_settings() == "abc"
        assert catalog.feed_definitions() == {"builtin": "True,True,True"}
        assert catalog.index_renderer() == "def"
        # The same keys as the build used through `meta`, in the same form.
        assert catalog.meta("cutoff") == "2026-03-01T12:00:00.000000+00:00"
        assert catalog.meta("embargo") == "off"
        assert catalog.meta("feed_definitions") == '{"builtin": "True,True,True"}'


def test_a_big_sync_collects_rarely_and_puts_the_collector_back(
    tmp_path: Path, catalog_backend: str | None
) -> None:
    """A sync of 5,000 changes freezes the heap before it and collects rarely while it runs
    (see `_fewer_collections`); afterwards, even when it fails, the collector is as it was."""
    import gc

    from aggregator.catalog import FileChange, StoredArticle
    from aggregator.model import Article
    from aggregator.reading import FileStat

    seen: list[tuple[tuple[int, int, int], int]] = []

    def batches(count: int, name: str, fail: bool = False) -> Iterator[list[FileChange]]:
        for start in range(0, count, 1000):
            seen.append((gc.get_threshold(), gc.get_freeze_count()))
            yield [
                FileChange(
                    f"{name}{n}.txt",
                    FileStat(10, n),
                    StoredArticle.of(
                        Article(
                            f"{name}{n}.txt",
                            f"https://a.example.com/{name}{n}",
                            "T",
                            published=True,
                        )
                    ),
                )
                for n in range(start, min(count, start + 1000))
            ]
        if fail:
            raise RuntimeError("the reading failed")

    before = gc.get_threshold(), gc.get_freeze_count()
    catalog = open_catalog(tmp_path, catalog_backend)
    try:
        catalog.sync(batches(100, "small"), lambda: NOW, expected=100)  # small: left alone
        assert seen == [before]
        seen.clear()
        result = catalog.sync(batches(5000, "big"), lambda: NOW, expected=5000)
        assert len(result.events) == 5000
        assert all(t[0] >= 100_000 and frozen > before[1] for t, frozen in seen)
        assert (gc.get_threshold(), gc.get_freeze_count()) == before
        with pytest.raises(RuntimeError, match="the reading failed"):
            catalog.sync(batches(5000, "failed", fail=True), lambda: NOW, expected=5000)
        assert (gc.get_threshold(), gc.get_freeze_count()) == before
    finally:
        catalog.close()


def test_feed_names_are_the_records_names_and_whether_they_list_something(
    tmp_path: Path, catalog_backend: str | None
) -> None:
    # What the render stage chooses by (`feed_names`, which reads no GUID list) says what
    # `feed_records` says: every feed in path order, named only if it listed something.
    from aggregator.catalog import FeedRecord
    from aggregator.model import FeedKey, FeedKind

    written = [
        FeedRecord(FeedKey(FeedKind.TOPIC, "ai"), "AI", NOW, ("g1", "g2")),
        FeedRecord(FeedKey.everything(), "", NOW, ("g1",)),
        FeedRecord(FeedKey(FeedKind.PROVIDER, "gone-com"), "gone.com", NOW, ()),
        FeedRecord(FeedKey(FeedKind.CUSTOM, "[]"), "[]", NOW, ("[]",)),
    ]
    with open_catalog(tmp_path, catalog_backend) as catalog:
        catalog.finish_feeds(written, [])
        records = catalog.feed_records()
        names = catalog.feed_names()
    assert list(names) == [r.key for r in records] == sorted((r.key for r in written), key=str)
    assert names == {r.key: r.name if r.guids else None for r in records}
    assert names[FeedKey(FeedKind.PROVIDER, "gone-com")] is None
