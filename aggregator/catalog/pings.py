"""WebSub pings owed: which hubs were not yet told that a feed file has new bytes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.catalog.base import CatalogBase, storage_errors
from aggregator.catalog.records import format_date, parse_date
from aggregator.catalog.schema import chunks, marks

if TYPE_CHECKING:
    from aggregator.catalog.owed_records import OwedPing


class PingsMixin(CatalogBase):
    """The pings owed, kept across crashes until they are sent or given up."""

    @storage_errors
    def owe_pings(self, pings: Collection[tuple[str, str]], since: datetime) -> None:
        """Record that each (hub, topic) must be pinged; replaces an older obligation."""
        if not pings:
            return
        with self.transaction():
            for hub, topic in pings:
                self._db.execute(
                    "DELETE FROM pending_pings WHERE hub = ? AND topic = ?", (hub, topic)
                )
                self._db.execute(
                    "INSERT INTO pending_pings (hub, topic, since) VALUES (?, ?, ?)",
                    (hub, topic, format_date(since)),
                )

    @storage_errors
    def owed_pings(self) -> list[OwedPing]:
        """Every ping still owed, oldest first."""
        rows = self._db.execute(
            "SELECT id, hub, topic, since FROM pending_pings ORDER BY id"
        ).fetchall()
        if not rows:  # nearly every build
            return []
        from aggregator.catalog.owed_records import OwedPing

        return [OwedPing(i, h, t, parse_date(s)) for i, h, t, s in rows]

    @storage_errors
    def forget_pings(self, ids: Collection[int]) -> None:
        """Drop owed pings that were sent (or given up); unknown ids are ignored."""
        if not ids:
            return
        # Deleting by id cannot conflict with another node's obligations: no cluster lock.
        with self.transaction(exclusive=False):
            for chunk in chunks(ids):
                self._db.execute(
                    f"DELETE FROM pending_pings WHERE id IN ({marks(len(chunk))})", chunk
                )
