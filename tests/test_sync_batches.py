"""A sync in several batches, as a first build runs it: what an empty catalog lets the sync
skip (lookups of keys it never wrote) and hold back (the membership rows, inserted sorted as
it ends) changes nothing it decides, on both backends.

The same batches are synced into an empty catalog and into one that already knew an
unrelated article (so nothing is skipped there); the two must end with the same rows and
say the same events, and every catalog's memberships must be exactly its items' feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.catalog import Catalog
from aggregator.catalog.records import FileChange, StoredArticle
from aggregator.catalog.rows import MemberRows
from aggregator.model import Article, Provider
from aggregator.reading import FileStat

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = datetime(2025, 6, 1, tzinfo=UTC)
OTHER = "z/other.txt"


def change(path: str, url: str, mtime: int, topics: tuple[str, ...], day: int = 0) -> FileChange:
    article = Article(
        source=path,
        url=url,
        title=f"{path} on {url}",
        published=True,
        published_at=DAY + timedelta(days=day),
        provider=Provider("Daily", "daily.example"),
        topics=topics,
    )
    return FileChange(path, FileStat(100, mtime), StoredArticle.of(article))


U1, U2, U3 = (f"https://news.example/{n}" for n in ("one", "two", "three"))
BATCHES = [
    [change("a.txt", U1, 1, ("Energy",)), change("b.txt", U2, 1, ("Sport",))],
    # A newer file wins U1 (its GUID stays), listed in one more feed: its rows go and come.
    [change("c.txt", U1, 2, ("Energy", "Rail")), change("d.txt", U3, 1, ("Rail",))],
    # An older copy of U2 loses; U1 again, newest, with another date: its rows move.
    [change("e.txt", U2, 0, ("Sport",)), change("f.txt", U1, 3, ("Energy",), day=1)],
    # The winner of U3 is withdrawn, then its file comes back under the same name.
    [FileChange("d.txt", None), change("g.txt", U3, 2, ("Rail",))],
]


def rows(catalog: Catalog) -> dict[str, list[Any]]:
    db = catalog._db
    keep = f"%{OTHER}"
    return {
        "files": list(
            db.execute(
                "SELECT path, mtime_ns, url FROM files WHERE path NOT LIKE ? ORDER BY path",
                (keep,),
            )
        ),
        "items": list(
            db.execute(
                "SELECT guid, url, path, date, feeds FROM items WHERE path NOT LIKE ? "
                "ORDER BY guid",
                (keep,),
            )
        ),
        "identities": list(
            db.execute(
                "SELECT guid, url, path FROM identities WHERE url != ? ORDER BY guid",
                ("https://news.example/other",),
            )
        ),
        "memberships": list(
            db.execute(
                "SELECT feed, date, guid FROM memberships WHERE guid != ? ORDER BY 1, 2, 3",
                ("https://news.example/other",),
            )
        ),
    }


def sync_all(catalog: Catalog) -> list[tuple[str, ...]]:
    """One sync of all the batches, as a first build's; its events, in short."""
    result = catalog.sync(BATCHES, lambda: NOW)
    return [
        (type(e).__name__, *(str(getattr(e, a, "")) for a in ("source", "url", "winner")))
        for e in result.events
    ]


def open_catalog(tmp_path: Path, backend: str | None, name: str) -> Catalog:
    """A catalog with no files, items or identities: on PostgreSQL the one database of the
    test, emptied (the same node name each time, so the stored paths compare)."""
    if not backend:
        return Catalog(tmp_path / f"{name}.sqlite3")
    catalog = Catalog(backend, node="n1")
    with catalog.transaction():
        catalog._db.execute("TRUNCATE files, items, identities, memberships, feeds")
    return catalog


@pytest.mark.parametrize("held", [MemberRows.limit, 1], ids=["held-to-the-end", "flushed"])
def test_a_sync_on_an_empty_catalog_decides_as_on_a_known_one(
    tmp_path: Path, catalog_backend: str | None, held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flushed: every batch's rows written as it ends, so later batches take stored ones away.
    monkeypatch.setattr(MemberRows, "limit", held)
    results = {}
    for name, known in (("fresh", False), ("known", True)):
        with open_catalog(tmp_path, catalog_backend, name) as catalog:
            if known:
                catalog.sync(
                    [[change(OTHER, "https://news.example/other", 1, ("Energy",))]],
                    lambda: NOW,
                )
            events = sync_all(catalog)
            # Every item's feeds, and nothing else, are its memberships.
            expected = sorted(
                (feed, date, guid)
                for guid, date, feeds in catalog._db.execute("SELECT guid, date, feeds FROM items")
                for feed in feeds.split("\n")
            )
            stored = catalog._db.execute("SELECT feed, date, guid FROM memberships")
            assert sorted(tuple(r) for r in stored) == expected
            results[name] = (events, rows(catalog))
    assert results["fresh"] == results["known"]
    events, got = results["fresh"]
    assert [guid for guid, *_ in got["items"]] == sorted([U1, U2, U3])
    assert {path.rpartition("/")[2] for _, _, path, *_ in got["items"]} == {
        "f.txt",
        "b.txt",
        "g.txt",
    }
    kinds = [kind for kind, *_ in events]
    assert kinds.count("DuplicateUrl") >= 3  # the batches saw each other's files
