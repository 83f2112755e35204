"""What the metrics and the health check read from the catalog: a read-only connection of
their own, opened per scrape and closed (SQLite's WAL lets it read beside the writer; the
writer's connection belongs to its thread)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from aggregator.catalog import Catalog
from aggregator.config import Settings
from aggregator.errors import AggregatorError


@dataclass(frozen=True, slots=True)
class CatalogFigures:
    """The catalog's figures at one moment. `lags` is None on a catalog of one node."""

    items: int
    feeds: int
    rejected: int
    owed: dict[str, int]
    leader: str | None
    lags: dict[str, int] | None


def read_figures(settings: Settings) -> CatalogFigures:
    """Raises `AggregatorError` (saying what and where) when the catalog cannot be read."""
    if settings.catalog is None and not settings.catalog_path.is_file():
        raise AggregatorError(
            f"no catalog at {settings.catalog_path} (deleted or moved while the daemon runs?)"
        )
    catalog = Catalog(settings.catalog_location, readonly=True, node=settings.node)
    try:
        until = datetime.now(UTC) if settings.embargo else None
        items = catalog.published_count(until)
        feeds = catalog.feed_count()
        rejected = len(catalog.rejected_files())
        owed = Counter(ping.hub for ping in catalog.owed_pings())
        leader, lags = catalog.cluster_progress()
    finally:
        catalog.close()
    shared = settings.catalog is not None
    return CatalogFigures(items, feeds, rejected, dict(owed), leader, lags if shared else None)
