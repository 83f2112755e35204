"""Looking after a catalog file: `check_catalog` says what is wrong with it, `rebuild_catalog`
replaces a damaged one with what can still be read of it (the GUIDs, the feed records).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.catalog.schema import (
    PENDING_FEEDS,
    PENDING_INDEXES,
    SCHEMA_VERSION,
    TABLES,
    schema_problems,
)
from aggregator.catalog.store import Catalog


def check_catalog(path: Path) -> list[str]:
    """Everything wrong with a catalog file (SQLite's integrity check, then the schema);
    an empty list means it is sound. Reads only; never changes the file."""
    if not path.exists():
        return [f"{path} does not exist (the next build makes a new one)"]
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None)
        ) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                return [f"made by a newer aggregator (schema {version}); upgrade to check it"]
            problems = [
                str(row[0]) for row in db.execute("PRAGMA integrity_check") if str(row[0]) != "ok"
            ]
            if version < SCHEMA_VERSION:
                return problems  # older: the next build migrates it (columns, tables added)
            problems += schema_problems(db)
            if not problems:
                # Reading every stored text catches bytes that are not UTF-8.
                for table, columns in TABLES.items():
                    for _ in db.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                        pass
            return problems
    except sqlite3.Error as exc:
        return [str(exc)]


@dataclass(frozen=True, slots=True)
class Salvage:
    """What `rebuild_catalog` kept from a damaged catalog."""

    moved_to: Path | None
    identities: int
    feeds: int
    problems: tuple[str, ...]


def rebuild_catalog(path: Path, stamp: str) -> Salvage:
    """Replace a (damaged) catalog with a new one holding what can still be read of it.

    The GUIDs (`identities`) are carried over, so articles keep their ids; so are the feed
    records, and every feed is marked pending, so a feed that now lists nothing is written
    empty rather than left stale. Everything else comes back from the article files at the
    next full build. The new catalog is made beside the old one and renamed into place
    after the old one is moved aside (as `<name>.damaged-<stamp>`): a crash leaves one or
    the other, never neither. The caller holds the build lock.
    """
    identities: list[tuple[Any, ...]] = []
    feeds: list[tuple[Any, ...]] = []
    problems: list[str] = []
    if path.exists():
        identities = _salvage_rows(path, "identities", problems)
        feeds = _salvage_rows(path, "feeds", problems)
    fresh = path.with_name(f"{path.name}.new")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    catalog = Catalog(fresh)
    try:
        with catalog.transaction():
            catalog._backend.db.executemany(
                "INSERT OR IGNORE INTO identities (guid, url, path, first_published, modified) "
                "VALUES (?, ?, ?, ?, ?)",
                identities,
            )
            catalog._backend.db.executemany(
                "INSERT OR IGNORE INTO feeds (feed, name, updated, guids) VALUES (?, ?, ?, ?)",
                feeds,
            )
            catalog.set_meta(PENDING_FEEDS, json.dumps(sorted({str(f[0]) for f in feeds})))
            catalog.set_meta(PENDING_INDEXES, "1")
    finally:
        catalog.close()  # the last connection: its write-ahead log is merged and removed
    moved_to = None
    if path.exists():
        moved_to = path.with_name(f"{path.name}.damaged-{stamp}")
        # The log first: a new catalog must never find an old log beside it.
        for suffix in ("-wal", "-shm", ""):
            source = Path(f"{path}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{moved_to}{suffix}"))
    os.replace(fresh, path)
    return Salvage(moved_to, len(identities), len(feeds), tuple(problems))


def _salvage_rows(path: Path, table: str, problems: list[str]) -> list[tuple[Any, ...]]:
    """The rows of `table` that a damaged file still gives, in order, up to the first bad
    one; rows whose values are not all text are skipped."""
    rows: list[tuple[Any, ...]] = []
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None)
        ) as db:
            # A column a migration added may be missing from an old catalog: read as NULL.
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            columns = [c if c in present or not present else "NULL" for c in TABLES[table]]
            cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table}")
            while True:
                try:
                    row = cursor.fetchone()
                except sqlite3.Error as exc:
                    problems.append(f"{table}: stopped reading at a bad row ({exc})")
                    break
                if row is None:
                    break
                if all(isinstance(v, str) or v is None for v in row):
                    rows.append(tuple(row))
    except sqlite3.Error as exc:
        problems.append(f"{table}: unreadable ({exc})")
    return rows
