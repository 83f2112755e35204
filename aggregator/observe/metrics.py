"""The daemon's Prometheus metrics: counted from the change events and the daemon's hooks as
they happen, and read from the catalog (read-only, its own connection) when scraped. The
only user of prometheus_client.

    change events (a sink)  → rejected files, pings sent / failed per hub, feeds written
    daemon hooks            → builds by result, build duration, drop-to-published latency,
                              the next release time, this node's leadership
    the feed server         → HTTP responses by status (its counts, read when scraped)
    the catalog, at scrape  → items and feeds listed, files rejected now, pings owed per
                              hub, the leader and each node's lag behind the change log

Each metric has its own registry (not the library's global one), so two daemons in one
process (the tests) do not mix.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.events import (
    ArticleRejected,
    ChangeEvent,
    FeedWritten,
    HubPinged,
    HubPingFailed,
    WriteFailed,
)
from aggregator.observe.health import Health
from aggregator.observe.reading import CatalogFigures, read_figures

LOGGER = logging.getLogger("aggregator.observe")

# Drop to published: from a few tens of milliseconds (the debounce) to the ceiling and
# beyond (a cold build on a big corpus).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BUILD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

Statuses = Callable[[], dict[int, int]]


class _Scraped(Collector):
    """What is read when scraped: the catalog's figures and the feed server's counts."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        observer = self.observer
        figures = observer.figures()
        up = GaugeMetricFamily(
            "aggregator_catalog_up", "1 when the catalog answered this scrape, else 0"
        )
        up.add_metric([], 0.0 if figures is None else 1.0)
        yield up
        if figures is not None:
            yield from _catalog_families(figures, observer.settings.node)
        statuses = observer.statuses
        if statuses is not None:
            requests = CounterMetricFamily(
                "aggregator_http_requests",
                "HTTP responses the feed server sent, by status",
                labels=["status"],
            )
            for status, count in sorted(statuses().items()):
                requests.add_metric([str(status)], float(count))
            yield requests


def _catalog_families(figures: CatalogFigures, node: str) -> Iterator[GaugeMetricFamily]:
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc)
        family.add_metric([], value)
        return family

    yield gauge("aggregator_items_listed", "Items the feeds list now", figures.items)
    yield gauge("aggregator_feeds_listed", "Feeds written so far", figures.feeds)
    yield gauge("aggregator_files_rejected", "Article files rejected now", figures.rejected)
    owed = GaugeMetricFamily(
        "aggregator_pings_owed", "WebSub pings owed (not yet accepted), by hub", labels=["hub"]
    )
    for hub, count in sorted(figures.owed.items()):
        owed.add_metric([hub], float(count))
    yield owed
    if figures.lags is not None:
        leader = GaugeMetricFamily(
            "aggregator_cluster_leader",
            "1 for the node last elected leader of the shared catalog",
            labels=["node"],
        )
        if figures.leader is not None:
            leader.add_metric([figures.leader], 1.0)
        yield leader
        lag = GaugeMetricFamily(
            "aggregator_cluster_lag",
            "Versions of the cluster's rendered set each node has not copied yet",
            labels=["node"],
        )
        for name, behind in sorted(figures.lags.items()):
            lag.add_metric([name], float(behind))
        yield lag


class Observer:
    """The daemon's observer (`DaemonHooks`): the metrics and the health they imply.

    `statuses`: the feed server's responses by status (with `run --serve`), set by
    `watch_server`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.statuses: Statuses | None = None
        self.health = Health(settings, self.figures)
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.builds = Counter(
            "aggregator_builds", "Builds by how they ended", ["result"], registry=registry
        )
        for result in ("ok", "write_failed", "failed", "cancelled"):
            self.builds.labels(result)
        self.build_seconds = Histogram(
            "aggregator_build_seconds",
            "How long a build took",
            buckets=BUILD_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "aggregator_drop_to_published_seconds",
            "From the first file event of a batch to its feeds renamed into place",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rejections = Counter(
            "aggregator_rejections", "Article files rejected (each time)", registry=registry
        )
        self.feeds_written = Counter(
            "aggregator_feeds_written", "Feeds whose files were rewritten", registry=registry
        )
        self.write_failures = Counter(
            "aggregator_write_failures",
            "Output files that could not be written",
            registry=registry,
        )
        self.pings = Counter(
            "aggregator_pings",
            "WebSub pings by hub and outcome",
            ["hub", "outcome"],
            registry=registry,
        )
        self.next_release = Gauge(
            "aggregator_next_release_timestamp_seconds",
            "When the next embargoed article falls due or an item ages out (Unix time; "
            "NaN: nothing scheduled)",
            registry=registry,
        )
        self.next_release.set(math.nan)
        self.leader = Gauge(
            "aggregator_leader", "1 when this node does the once-only work", registry=registry
        )
        self.last_build = Gauge(
            "aggregator_last_build_timestamp_seconds",
            "When the last build ended (Unix time)",
            registry=registry,
        )
        registry.register(_Scraped(self))
        self._lock = threading.Lock()

    # --- DaemonHooks -------------------------------------------------------------------------

    def attach(self, daemon: object) -> None:
        self.health.attach(daemon)  # type: ignore[arg-type]
        self.leader.set_function(lambda: 1.0 if self.health.leading() else 0.0)

    def on_event(self, event: ChangeEvent) -> None:
        match event:
            case ArticleRejected():
                self.rejections.inc()
            case FeedWritten():
                self.feeds_written.inc()
            case WriteFailed():
                self.write_failures.inc()
            case HubPinged():
                self.pings.labels(event.hub, "sent").inc()
            case HubPingFailed():
                self.pings.labels(event.hub, "given_up" if event.given_up else "failed").inc()
            case _:
                pass

    def build_done(
        self, result: str, seconds: float, latency: float | None, reason: str = ""
    ) -> None:
        self.builds.labels(result).inc()
        if result != "cancelled":
            self.build_seconds.observe(seconds)
            self.last_build.set(time.time())
            self.health.build_ended(result, reason)
        if latency is not None:
            self.latency.observe(latency)

    def release_armed(self, due: datetime | None) -> None:
        self.next_release.set(math.nan if due is None else due.astimezone(UTC).timestamp())

    # --- the rest ------------------------------------------------------------------------------

    def watch_server(self, statuses: Statuses) -> None:
        """Count the feed server's responses (`run --serve`)."""
        self.statuses = statuses

    def figures(self) -> CatalogFigures | None:
        """The catalog's figures now, or None when it cannot be read (logged once per
        outage at WARNING, then at DEBUG)."""
        try:
            figures = read_figures(self.settings)
        except AggregatorError as exc:
            self.health.catalog_failed(str(exc))
            return None
        self.health.catalog_ok()
        return figures

    def exposition(self) -> tuple[bytes, str]:
        """The body and Content-Type of a `/metrics` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
