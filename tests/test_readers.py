"""A real reader (newsboat) subscribed the way the README says: `index.opml` imported, every
feed fetched from `aggregator serve` on 127.0.0.1, and every feed shows all its items.

newsboat keeps one copy of an item per id across all its feeds (newsboat issue #898): with
one id per article in the all, topic and provider feeds, the topic and provider feeds came
out empty. docs/readers.md has the decision (per-feed ids) and the evidence.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import feedparser
import pytest
from building import build, folder_settings
from corpus import write_corpus
from services import service_missing
from waiting import TIMEOUT

from aggregator.config import Settings
from aggregator.serve import FeedServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def newsboat() -> str:
    found = shutil.which("newsboat")
    if found is None:
        service_missing("newsboat is not installed (apt-get install newsboat)")
    return found


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Settings]:
    """A 160-file corpus built for, and served on, one port of 127.0.0.1."""
    port = free_port()
    settings = folder_settings(tmp_path, base_url=f"http://127.0.0.1:{port}/", port=port)
    write_corpus(settings.input, 160, seed=17)
    build(settings)
    with FeedServer(settings):
        yield settings


def run_newsboat(newsboat: str, home: Path, *args: str) -> None:
    """newsboat with its own files (never the user's), non-interactive."""
    files = ["-u", str(home / "urls"), "-c", str(home / "cache.db"), "-C", str(home / "config")]
    done = subprocess.run(
        [newsboat, *files, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 10,  # a bound on a hang, not a speed check
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"},
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def items_listed(settings: Settings, url: str) -> int:
    """How many items the feed file behind `url` lists."""
    path = settings.output / url.removeprefix(settings.base_url)
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, (url, parsed.get("bozo_exception"))
    return len(parsed.entries)


def test_newsboat_shows_every_feed_of_index_opml_with_all_its_items(
    newsboat: str, site: Settings, tmp_path: Path
) -> None:
    home = tmp_path / "newsboat"
    home.mkdir()
    # Every feed in one go, as many as the reader wants, and nothing kept back as "read".
    (home / "config").write_text("reload-threads 4\nmax-items 0\n", encoding="utf-8")
    (home / "urls").write_text("", encoding="utf-8")
    with urllib.request.urlopen(site.base_url + "index.opml", timeout=TIMEOUT) as response:
        (home / "index.opml").write_bytes(response.read())
    run_newsboat(newsboat, home, "-i", str(home / "index.opml"))
    run_newsboat(newsboat, home, "-x", "reload")

    outlines = ET.parse(home / "index.opml").getroot().iter("outline")
    feeds = [o.get("xmlUrl") for o in outlines if o.get("xmlUrl")]
    assert len(feeds) >= 80  # the all feed, topics and providers
    expected = {url: items_listed(site, url) for url in feeds if url}
    with sqlite3.connect(home / "cache.db") as cache:
        got = dict(cache.execute("SELECT feedurl, count(*) FROM rss_item GROUP BY feedurl"))
    assert {url: got.get(url, 0) for url in expected} == expected
    assert all(count > 0 for count in expected.values())
