"""What the catalog stores and how: the records, the sync of a batch of files, the SQLite and
PostgreSQL backends.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.catalog.cluster import ChangeListener, Leadership, lease_holds
    from aggregator.catalog.inspect_records import (
        FileRecord,
        IdentityRecord,
        ItemRecord,
        LeaderRecord,
    )
    from aggregator.catalog.maintenance import Salvage, check_catalog, rebuild_catalog
    from aggregator.catalog.owed_records import DueItem, OwedPing
    from aggregator.catalog.records import (
        FeedRecord,
        FileChange,
        StoredArticle,
        StoredFields,
        SyncResult,
        format_date,
        parse_date,
    )
    from aggregator.catalog.rendered import StoredFile, digest
    from aggregator.catalog.roster_records import ChangeLog, NodeRecord, NodeRemoved
    from aggregator.catalog.store import Catalog, is_shared

__all__ = [
    "Catalog",
    "ChangeListener",
    "ChangeLog",
    "DueItem",
    "FeedRecord",
    "FileChange",
    "FileRecord",
    "IdentityRecord",
    "ItemRecord",
    "LeaderRecord",
    "Leadership",
    "NodeRecord",
    "NodeRemoved",
    "OwedPing",
    "Salvage",
    "StoredArticle",
    "StoredFields",
    "StoredFile",
    "SyncResult",
    "check_catalog",
    "digest",
    "format_date",
    "is_shared",
    "lease_holds",
    "parse_date",
    "rebuild_catalog",
]

_HOME = {
    "Catalog": "aggregator.catalog.store",
    "ChangeListener": "aggregator.catalog.cluster",
    "ChangeLog": "aggregator.catalog.roster_records",
    "DueItem": "aggregator.catalog.owed_records",
    "FeedRecord": "aggregator.catalog.records",
    "FileChange": "aggregator.catalog.records",
    "FileRecord": "aggregator.catalog.inspect_records",
    "IdentityRecord": "aggregator.catalog.inspect_records",
    "ItemRecord": "aggregator.catalog.inspect_records",
    "LeaderRecord": "aggregator.catalog.inspect_records",
    "Leadership": "aggregator.catalog.cluster",
    "NodeRecord": "aggregator.catalog.roster_records",
    "NodeRemoved": "aggregator.catalog.roster_records",
    "OwedPing": "aggregator.catalog.owed_records",
    "Salvage": "aggregator.catalog.maintenance",
    "StoredArticle": "aggregator.catalog.records",
    "StoredFields": "aggregator.catalog.records",
    "StoredFile": "aggregator.catalog.rendered",
    "SyncResult": "aggregator.catalog.records",
    "check_catalog": "aggregator.catalog.maintenance",
    "digest": "aggregator.catalog.rendered",
    "format_date": "aggregator.catalog.records",
    "is_shared": "aggregator.catalog.store",
    "lease_holds": "aggregator.catalog.cluster",
    "parse_date": "aggregator.catalog.records",
    "rebuild_catalog": "aggregator.catalog.maintenance",
}

__getattr__ = resolver(__name__, _HOME, globals())
