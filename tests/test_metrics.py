"""`aggregator run --metrics-port`: the real daemon process, scraped over HTTP on 127.0.0.1
and parsed with prometheus_client's own text parser; `/healthz` healthy, then made
unhealthy for real (the output folder replaced by a file, the catalog moved away, the watcher
stopped) and healthy again."""

from __future__ import annotations

import http.client
import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from articlefiles import write_article
from building import BASE, DAEMON, folder_settings
from processes import Aggregator
from prometheus_client.parser import text_string_to_metric_families
from waiting import TIMEOUT, Recorder, wait_for

from aggregator.config import Settings
from aggregator.daemon import Daemon
from aggregator.errors import AggregatorError
from aggregator.observe import MetricsServer, Observer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, kind, text = get(port, "/metrics")
    assert status == 200, status
    assert kind.startswith("text/plain"), kind
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Run(Aggregator):
    """`python -m aggregator run --metrics-port 0 …`; the port read from its log."""

    def __init__(self, settings: Settings, *extra: str) -> None:
        super().__init__(
            [
                "run",
                "--input", str(settings.input), "--output", str(settings.output),
                "--state", str(settings.state), "--base-url", BASE,
                "--metrics-port", "0", "--log-format", "json", *extra,
            ],
            cwd=settings.input.parent,
        )  # fmt: skip
        self.port = self.port_in(r"metrics at http://127\.0\.0\.1:(\d+)/metrics")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path, **DAEMON)


@pytest.fixture
def daemon(settings: Settings) -> Iterator[Run]:
    run = Run(settings, "--serve", "--port", "0")
    try:
        yield run
    finally:
        code = run.stop()
        assert code == 0, "\n".join(run.lines)
        assert all(json.loads(line) for line in run.lines)  # every line JSON, no traceback


def healthz(port: int) -> tuple[int, str]:
    status, _, text = get(port, "/healthz")
    return status, text


def test_a_drop_moves_the_counters_and_the_latency_histogram(
    settings: Settings, daemon: Run
) -> None:
    wait_for(lambda: healthz(daemon.port)[0] == 200, "healthy after the first build")
    before = scrape(daemon.port)
    assert value(before, "aggregator_builds_total", result="ok") >= 1
    assert value(before, "aggregator_catalog_up") == 1
    assert math.isnan(value(before, "aggregator_next_release_timestamp_seconds"))

    write_article(settings.input, "a.md", "https://example.com/a", title="A")
    write_article(settings.input, "bad.md", "not a url")
    write_article(
        settings.input, "later.md", "https://example.com/later", date="2999-01-01T00:00:00Z"
    )

    def published() -> bool:
        samples = scrape(daemon.port)
        return (
            value(samples, "aggregator_items_listed") == 1
            and value(samples, "aggregator_files_rejected") == 1
            and value(samples, "aggregator_drop_to_published_seconds_count") >= 1
            # counted from the build's events, which the daemon hands on just after it
            # records the build (whose latency and catalog figures the others read)
            and value(samples, "aggregator_rejections_total") >= 1
            # the three files may come in two builds (the first starts on the first drop)
            and value(samples, "aggregator_next_release_timestamp_seconds") == 32472144000.0
        )

    wait_for(published, "the drop published and counted")
    after = scrape(daemon.port)
    assert value(after, "aggregator_builds_total", result="ok") > value(
        before, "aggregator_builds_total", result="ok"
    )
    assert value(after, "aggregator_build_seconds_count") >= 2
    latency_sum = value(after, "aggregator_drop_to_published_seconds_sum")
    assert 0 < latency_sum < TIMEOUT
    assert value(after, "aggregator_drop_to_published_seconds_bucket", le="+Inf") >= 1
    assert value(after, "aggregator_rejections_total") >= 1
    assert value(after, "aggregator_feeds_listed") >= 3  # all, a topic, a provider
    assert value(after, "aggregator_feeds_written_total") >= 3
    due = value(after, "aggregator_next_release_timestamp_seconds")
    assert due == pytest.approx(32472144000.0)  # 2999-01-01T00:00:00Z
    assert value(after, "aggregator_leader") == 1
    assert value(after, "aggregator_pings_owed") == 0

    # The feed server's responses, by status.
    conn = http.client.HTTPConnection("127.0.0.1", _feed_port(daemon), timeout=TIMEOUT)
    for path in ("/all.rss.xml", "/nope.xml"):
        conn.request("GET", path)
        conn.getresponse().read()
    conn.close()
    wait_for(
        lambda: value(scrape(daemon.port), "aggregator_http_requests_total", status="404") == 1,
        "the 404 counted",
    )
    assert value(scrape(daemon.port), "aggregator_http_requests_total", status="200") >= 1


def _feed_port(run: Run) -> int:
    for line in run.lines:
        match = re.search(r"serving .* at http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return int(match.group(1))
    raise AssertionError("\n".join(run.lines))


def test_health_goes_503_with_the_reason_and_back(settings: Settings, daemon: Run) -> None:
    wait_for(lambda: healthz(daemon.port)[0] == 200, "healthy after the first build")
    assert healthz(daemon.port)[1] == "ok\n"

    # Builds that cannot write: the output folder is now a file (fails for root too).
    shutil.move(settings.output, settings.output.with_name("out-aside"))
    settings.output.write_text("not a folder")
    write_article(settings.input, "a.md", "https://example.com/a")
    wait_for(lambda: healthz(daemon.port)[0] == 503, "unhealthy once a build fails to write")
    # The watcher may be re-attaching to the replaced output root at first (said too).
    wait_for(lambda: "the last build failed" in healthz(daemon.port)[1], "the failed build")
    status, text = healthz(daemon.port)
    assert status == 503, text
    assert value(scrape(daemon.port), "aggregator_builds_total", result="write_failed") >= 1

    settings.output.unlink()
    shutil.move(settings.output.with_name("out-aside"), settings.output)
    wait_for(lambda: healthz(daemon.port)[0] == 200, "healthy once the retry wrote the feeds")

    # The catalog moved away: unreachable, said so, and the gauge drops to 0.
    catalog = settings.catalog_path
    catalog.rename(catalog.with_name("aside.sqlite3"))
    status, text = healthz(daemon.port)
    assert status == 503, text
    assert "the catalog cannot be read" in text, text
    assert str(catalog) in text
    assert value(scrape(daemon.port), "aggregator_catalog_up") == 0
    catalog.with_name("aside.sqlite3").rename(catalog)
    wait_for(lambda: healthz(daemon.port)[0] == 200, "healthy with the catalog back")

    status, _, _ = get(daemon.port, "/elsewhere")
    assert status == 404


def test_a_stopped_watcher_is_unhealthy(settings: Settings) -> None:
    observer = Observer(settings)
    recorder = Recorder()
    daemon = Daemon(settings, sinks=[recorder], hooks=observer)
    with MetricsServer(settings, observer) as server:
        daemon.start()
        try:
            wait_for(lambda: healthz(server.port)[0] == 200, "healthy after the first build")
            assert daemon.watcher is not None
            daemon.watcher.stop()  # as if its thread had died
            status, text = healthz(server.port)
            assert status == 503, text
            assert "file watcher" in text
            assert str(settings.input) in text
        finally:
            assert daemon.stop()


def test_a_taken_metrics_port_is_a_clear_error(settings: Settings) -> None:
    observer = Observer(settings)
    with MetricsServer(settings, observer) as first:
        taken = folder_settings(settings.input.parent, metrics_port=first.port)
        with pytest.raises(AggregatorError, match=r"already in use.*--metrics-port"):
            MetricsServer(taken, Observer(taken)).start()


def test_starting_is_not_healthy_yet(settings: Settings) -> None:
    observer = Observer(settings)
    with MetricsServer(settings, observer) as server:
        status, text = healthz(server.port)
        assert status == 503
        assert "starting: the first build has not finished yet" in text
        assert "file watcher" in text


def test_a_cluster_shows_its_leader_and_each_nodes_lag(tmp_path: Path, postgres_url: str) -> None:
    from aggregator.pipeline import Builder

    one = folder_settings(tmp_path / "one", catalog=postgres_url, node="one")
    two = folder_settings(tmp_path / "two", catalog=postgres_url, node="two")
    # No daemon leads: each one-shot build takes the lead for its run, renders, copies.
    write_article(one.input, "a.md", "https://example.com/a")
    with Builder(one) as builder:
        builder.build()
    with Builder(two) as builder:
        builder.build()  # copies what one rendered: two is caught up
    write_article(one.input, "b.md", "https://example.com/b", topics=["Robots"])
    with Builder(one) as builder:
        builder.build()  # two has not copied this yet
    observer = Observer(two)
    with MetricsServer(two, observer) as server:
        samples = scrape(server.port)
    assert value(samples, "aggregator_cluster_leader", node="one") == 1
    assert value(samples, "aggregator_cluster_lag", node="one") == 0
    assert value(samples, "aggregator_cluster_lag", node="two") >= 1
    assert value(samples, "aggregator_catalog_up") == 1
