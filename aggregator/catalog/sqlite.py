"""The catalog's SQLite backend: one node's catalog in a file beside its output (WAL, its
pragmas, the checkpoint thread), and SQLite's errors said so that a user can act on them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from aggregator.catalog.base import Backend
from aggregator.catalog.schema import PENDING_FEEDS, Meta, damaged, schema_problems
from aggregator.errors import CatalogError
from aggregator.model import FeedKey

LOGGER = logging.getLogger("aggregator.catalog")

# The page cache, in KiB: enough for a daemon's small syncs, whose memory must stay flat.
_CACHE_KIB = 16 * 1024
# Big syncs insert hundreds of thousands of rows into several b-trees at once: a large page
# cache keeps them in memory while they run (measured at 100,000 articles: -2.5 s).
_BULK_CACHE_KIB = 256 * 1024


class SqliteBackend(Backend):
    """A catalog file. One writer at a time: the build lock sees to that."""

    shared: ClassVar[bool] = False
    start_over: ClassVar[str] = "delete the state folder to start over"
    errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)
    quiet: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)
    db: sqlite3.Connection

    def __init__(self, path: Path, where: str, *, readonly: bool) -> None:
        self.path = path
        self.where = where
        self._checkpointer: threading.Thread | None = None
        try:
            if readonly:
                # Worker processes that render feeds only read; WAL lets them read while
                # nothing else writes, without taking any write lock.
                uri = f"file:{path.resolve()}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, isolation_level=None)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            # Checkpoints run in a thread after each sync (see `synced`), not inside the
            # commit of the sync, which would make the build wait for them.
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            self.migrate()
            # A damaged file must fail here, with what to do, not halfway through a build.
            missing = schema_problems(self.db)
            if missing:
                raise CatalogError(str(path), damaged("; ".join(missing)))
        except sqlite3.Error as exc:
            self.close_quietly()
            raise CatalogError(str(path), storage_reason(exc)) from exc
        except CatalogError:
            self.close_quietly()
            raise
        except OSError as exc:
            raise CatalogError(str(path), f"cannot create its folder: {exc.strerror}") from exc

    def begin_write(self, *, exclusive: bool = True) -> None:
        self.db.execute("BEGIN IMMEDIATE")  # one node: every write transaction is exclusive

    def storage_error(self, exc: Exception) -> CatalogError | None:
        # A closed database is a caller's mistake a user can still be told about; any other
        # misuse of the API is a bug in this package, and must not read as advice.
        if isinstance(exc, sqlite3.ProgrammingError) and "closed database" not in str(exc):
            return None
        assert isinstance(exc, sqlite3.Error)
        return CatalogError(self.where, storage_reason(exc))

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version = {int(version)}")

    def pending_feeds(self, stored: set[FeedKey], meta: Meta) -> set[FeedKey]:
        return stored

    def add_pending(self, keys: Collection[FeedKey], meta: Meta) -> None:
        text = meta.meta(PENDING_FEEDS)
        pending = {str(FeedKey.parse(f)) for f in json.loads(text)} if text else set()
        pending |= {str(k) for k in keys}
        meta.set_meta(PENDING_FEEDS, json.dumps(sorted(pending)))

    @contextmanager
    def bulk(self) -> Iterator[None]:
        self.db.execute(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self.db.execute("PRAGMA shrink_memory")

    def synced(self) -> None:
        """Copy the write-ahead log into the database file, in a thread of its own.

        A big sync leaves tens of MB in the log; copying them takes a fifth of a second
        that the build can spend rendering instead (render workers only read).
        """
        self._join_checkpoint()

        def run() -> None:
            try:
                with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # the next one catches up; nothing is lost
                LOGGER.debug("catalog checkpoint failed: %s", exc)

        self._checkpointer = threading.Thread(target=run, name="aggregator-checkpoint")
        self._checkpointer.start()

    def _join_checkpoint(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None

    def close(self) -> None:
        self._join_checkpoint()
        self.db.close()


def storage_reason(exc: sqlite3.Error) -> str:
    """Storage errors a user can act on, said so that they can."""
    message = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or ("disk" in message and "full" in message):
        return (
            "the disk holding the catalog is full; free some space (what failed was not "
            "saved: the next build does it again)"
        )
    if "locked" in message or "busy" in message:
        return "the database is locked by another process; wait for it or stop it"
    if (
        "not a database" in message
        or "malformed" in message
        or "no such table" in message
        or "no such column" in message
        or "decode" in message
        or code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    ):
        return damaged(message)
    if "readonly" in message or "unable to open" in message:
        return f"cannot open it for writing ({message}); check the state folder's permissions"
    if "disk I/O" in message:
        return f"the disk failed to read or write it ({message}); check the disk and its space"
    return message
