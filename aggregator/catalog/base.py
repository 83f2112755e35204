"""What every catalog backend does the same way (transactions that nest, migrations, the error
boundary), what each must say for itself (`Backend`), and the base of the `Catalog`'s mixins.

A backend is chosen once, when a `Catalog` opens its location: SQLite for a file, PostgreSQL
for a `postgresql://` URL. The catalog's methods never ask which one they have.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Concatenate, ParamSpec, TypeVar

from aggregator.catalog.nodes import NodeKeys
from aggregator.catalog.records import FileChange
from aggregator.catalog.schema import MIGRATIONS, SCHEMA_VERSION, Connection, Meta, damaged
from aggregator.errors import AggregatorError, CatalogError
from aggregator.membership import FeedRules
from aggregator.model import FeedKey

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="CatalogBase")


class Backend:
    """An open database: its connection, its transactions, and its errors in words.

    Subclasses give `begin_write`, `storage_error`, the schema version and the pending feeds;
    the rest has defaults that suit a database with nothing more to do (PostgreSQL).
    """

    db: Connection
    where: str  # for messages: the file, or the URL without password
    shared: ClassVar[bool]  # whether several nodes share it
    start_over: ClassVar[str]  # the advice for a catalog made by a newer aggregator
    errors: ClassVar[tuple[type[Exception], ...]]  # the errors of the database's library
    quiet: ClassVar[tuple[type[Exception], ...]]  # what closing or rolling back may raise
    # Opens a transaction that only reads (`Catalog.snapshot`): one moment, no lock taken.
    begin_read: ClassVar[str] = "BEGIN"
    _savepoints = 0

    def begin_write(self, *, exclusive: bool = True) -> None:
        """Begin the one write transaction the catalog allows at a time (`exclusive`: it
        writes rows other nodes share, so it also waits for their writers; a shared
        catalog only)."""
        raise NotImplementedError

    def lock_shared(self) -> None:
        """Inside a transaction: take the lock `exclusive` would have (a shared catalog)."""

    def identity_lost(self) -> AggregatorError | None:
        """Why this process may no longer write as its node (another took the name over
        while it was cut off), or None: always None for a catalog of one node."""
        return None

    def storage_error(self, exc: Exception) -> CatalogError | None:
        """`exc` (one of `errors`) as what to do about it; None if it is a bug (re-raised)."""
        raise NotImplementedError

    def schema_version(self) -> int:
        """The migration the database is at (0: none)."""
        raise NotImplementedError

    def set_schema_version(self, version: int) -> None:
        """Record a migration (inside its transaction)."""
        raise NotImplementedError

    def pending_feeds(self, stored: set[FeedKey], meta: Meta) -> set[FeedKey]:
        """The feeds pending a render: `stored` (the catalog's own list), and any more."""
        raise NotImplementedError

    def add_pending(self, keys: Collection[FeedKey], meta: Meta) -> None:
        """Mark feeds (not empty) as needing a render."""
        raise NotImplementedError

    def rendered(self, meta: Meta) -> None:
        """Remember that the feeds `pending_feeds` last returned were written."""

    def leader_lease_live(self) -> bool:
        """Whether the cluster leader's lease is unexpired (one node: never asked)."""
        return False

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Room for a big sync while it runs."""
        yield

    def batches(
        self, batches: Iterable[Sequence[FileChange]], *, bulk: bool
    ) -> Iterable[Sequence[FileChange]]:
        """The batches of a sync as it should see them (read ahead, or as they come)."""
        return batches

    def synced(self) -> None:
        """After a sync commits: housekeeping that must not hold the build up."""

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def close_quietly(self) -> None:
        """Close, on the way out of a failure that says more than the close could."""
        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(*self.quiet):
                db.close()

    def boundary(self) -> _Boundary:
        """Storage errors (and undecodable stored JSON) as a `CatalogError` that says what to
        do; bugs pass as they are. (A plain object, not a generator: every public method of
        the catalog enters it.)"""
        return _Boundary(self)

    @contextmanager
    def transaction(self, *, exclusive: bool = True) -> Iterator[None]:
        """`begin_write` … COMMIT, or ROLLBACK on any error: all of it or none. Inside a
        transaction already: a savepoint, so that it composes.

        Storage errors become a `CatalogError` naming the real cause: some (a full disk)
        roll the transaction back themselves, and a second ROLLBACK would fail with "no
        transaction is active", hiding it.
        """
        if self.db.in_transaction:
            if exclusive:
                with self.boundary():
                    self.lock_shared()  # an outer transaction may not have needed it
            with self._savepoint():
                yield
            return
        with self.boundary():
            self.begin_write(exclusive=exclusive)
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:
                with contextlib.suppress(*self.quiet, CatalogError):
                    self.db.execute("ROLLBACK")
            error = self.storage_error(exc) if isinstance(exc, self.errors) else None
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"catalog_{self._savepoints}"
        try:
            with self.boundary():
                self.db.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if self.db.in_transaction:
                    with contextlib.suppress(*self.quiet, CatalogError):
                        self.db.execute(f"ROLLBACK TO SAVEPOINT {name}")
                        self.db.execute(f"RELEASE SAVEPOINT {name}")
                raise
            with self.boundary():
                self.db.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._savepoints -= 1

    def migrate(self) -> None:
        """Bring the schema up to `SCHEMA_VERSION`, one migration per transaction."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise CatalogError(
                self.where,
                f"made by a newer aggregator (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade, or {self.start_over}",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.set_schema_version(target)


class _Boundary:
    __slots__ = ("backend",)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        backend = self.backend
        if isinstance(exc, backend.errors):
            error = backend.storage_error(exc)
            if error is not None:
                raise error from exc
        elif isinstance(exc, json.JSONDecodeError):
            raise CatalogError(backend.where, damaged(f"a stored record: {exc}")) from exc


class CatalogBase:
    """What the `Catalog`'s mixins share: the backend, this node's keys, the feed rules."""

    rules: FeedRules
    location: str  # what a worker process opens again
    path: Path  # the SQLite file; a shared catalog has none (messages name `where`)
    where: str  # for messages: the file, or the URL without password
    _backend: Backend
    _keys: NodeKeys
    # The keys of the rendered set's bookkeeping (feed records, settings): the cluster's
    # one set on a shared catalog (the renderer's, whichever node leads), else `_keys`.
    _render_keys: NodeKeys

    @property
    def _db(self) -> Connection:
        return self._backend.db

    @property
    def shared(self) -> bool:
        """Whether several nodes share this catalog (PostgreSQL)."""
        return self._backend.shared

    def transaction(self, *, exclusive: bool = True) -> contextlib.AbstractContextManager[None]:
        """BEGIN … COMMIT, or ROLLBACK on any error: all of a sync or none. On PostgreSQL,
        `exclusive` holds the cluster-wide write lock: leave it only for a transaction that
        writes this node's own rows (never the shared ones, never the change log). Nested:
        a savepoint."""
        return self._backend.transaction(exclusive=exclusive)

    def identity_lost(self) -> AggregatorError | None:
        """Why this process must stop writing as its node (its name was taken over), or
        None (see `aggregator.catalog.claim`)."""
        return self._backend.identity_lost()


def storage_errors(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """The catalog's public methods are its boundary: storage errors leave them as a
    `CatalogError` that says what to do; nothing above sees sqlite3 or psycopg."""

    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._backend.boundary():
            return method(self, *args, **kwargs)

    functools.update_wrapper(wrapper, method)
    return wrapper
