"""The catalog: the database that remembers articles between runs.

It is the only state. It knows every article file (size, mtime, last good version), the
permanent GUID of every article ever published, which items each feed lists, and what each
feed looked like when it was last written. `Catalog.sync` applies one batch of file changes
and answers which feeds they touched; `Catalog.newest` answers what a feed lists now.
`Catalog` is a data access object split into per-domain mixins (files, feeds, pending,
pings, meta, inspect, the roster of nodes) over one backend, SQLite or PostgreSQL, chosen
when it opens.
"""

from __future__ import annotations

from pathlib import Path

from aggregator.catalog.base import Backend
from aggregator.catalog.inspect import InspectMixin
from aggregator.catalog.nodes import CLUSTER_KEYS, NodeKeys
from aggregator.catalog.pings import PingsMixin
from aggregator.catalog.rendered import RenderedMixin
from aggregator.catalog.roster import RosterMixin
from aggregator.catalog.sqlite import SqliteBackend
from aggregator.errors import MissingExtra
from aggregator.membership import DEFAULT_RULES, FeedRules


def is_shared(location: Path | str) -> bool:
    """Whether a catalog location is a PostgreSQL URL (shared by nodes), not a SQLite file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def _open_backend(location: Path | str, path: Path, node: str, *, readonly: bool) -> Backend:
    """The backend for a location, chosen here once: the methods never ask again."""
    if is_shared(location):
        # Imported here: a SQLite user never loads psycopg (an optional extra).
        try:
            from aggregator.catalog.postgres import PostgresBackend
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] != "psycopg":
                raise
            raise MissingExtra(
                "catalog",
                "a postgresql:// catalog needs the PostgreSQL driver (psycopg 3), which is "
                "not installed here: pip install 'aggregator[postgresql]' (the exact "
                "versions tested: pip install psycopg==3.3.9 psycopg-binary==3.3.9, as in "
                "requirements.lock), then run again",
            ) from None

        return PostgresBackend(str(location), node, readonly=readonly)
    return SqliteBackend(path, str(location), readonly=readonly)


class Catalog(RosterMixin, RenderedMixin, PingsMixin, InspectMixin):
    """An open catalog. One writer at a time (the build lock sees to that; on PostgreSQL,
    also a transaction-level advisory lock shared by every node).

    `location` is the SQLite file, or a `postgresql://` URL. On PostgreSQL, `node` names
    this machine: its file paths and feed records are stored under `<node>/`, so nodes share
    articles and GUIDs but each has its own files and its own output. The paths given to and
    returned by the methods are always relative to this node's input folder.

    Any method can raise `CatalogError`, saying what to do.
    """

    def __init__(
        self,
        location: Path | str,
        *,
        readonly: bool = False,
        node: str = "",
        rules: FeedRules = DEFAULT_RULES,
    ) -> None:
        self.rules = rules
        self.location = str(location)  # what a worker process opens again
        shared = is_shared(location)
        # The SQLite file; a shared catalog has none (its messages name `where` instead).
        self.path = Path(location) if not shared else Path(node or "catalog")
        self._keys = NodeKeys(node if shared else None)
        self._render_keys = NodeKeys(CLUSTER_KEYS if shared else None)
        self._backend = _open_backend(location, self.path, node, readonly=readonly)
        self.where = self._backend.where  # for messages: the file, or the URL without password

    def close(self) -> None:
        """Close the file; the catalog cannot be used afterwards."""
        self._backend.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
