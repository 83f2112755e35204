"""`aggregator status` and `aggregator explain`: against a real `aggregator run` process on
both catalog backends (while it runs, after a clean stop, after a kill), and the deciding
half of `explain` on evidence given directly (no disk)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from articlefiles import SECRET, write_article
from waiting import wait_for

from aggregator.catalog import FileRecord, ItemRecord
from aggregator.catalog.records import article_to_json
from aggregator.cli.explain import Evidence, explain
from aggregator.config import Settings
from aggregator.daemon.status import process_start
from aggregator.membership import parse_feed_definitions
from aggregator.model import Article, FeedKey, FeedKind, Provider

BASE = "https://feeds.example.org/"
URL = "https://news.example.com/"
PASSWORD = "pw-that-must-never-show-0451"
# A hub nobody listens on: every ping fails and stays owed (retried for an hour).
DEAD_HUB = "http://127.0.0.1:9/hub"


# --- the deciding half, without disk ----------------------------------------------------


def _article(path: str, url: str, **fields: Any) -> Article:
    values: dict[str, Any] = {
        "source": path,
        "url": url,
        "title": "T",
        "excerpt": "E",
        "published": True,
        "published_at": datetime(2021, 1, 1, tzinfo=UTC),
        "provider": Provider("Forbes", "forbes.com"),
        "topics": ("AI",),
        "images": (),
        "related": (),
    }
    values.update(fields)
    return Article(**values)


def _file(
    path: str, article: Article | None, mtime: int = 1, error: str | None = None
) -> FileRecord:
    text = None if article is None else article_to_json(article)
    return FileRecord(path, 10, mtime, None if article is None else article.url, text, error)


def _settings(feeds: list[dict[str, Any]] | None = None, **fields: Any) -> Settings:
    definitions, problems = parse_feed_definitions(feeds or [])
    assert not problems
    return Settings(feeds=definitions, **fields)


CUT = datetime(2022, 1, 1, tzinfo=UTC)
ALL, AI = FeedKey.everything(), FeedKey(FeedKind.TOPIC, "ai")


def test_a_listed_item_and_one_cut_by_max_items_and_by_a_window() -> None:
    article = _article("a.txt", URL)
    custom = FeedKey(FeedKind.CUSTOM, "recent")
    item = ItemRecord(URL, URL, "a.txt", datetime(2021, 1, 1, tzinfo=UTC), (ALL, AI, custom))
    evidence = Evidence(
        "a.txt", "a.txt", _file("a.txt", article), URL, (_file("a.txt", article),), item,
        positions={ALL: 3, AI: 1, custom: 1}, written={ALL: None, AI: 1, custom: None},
        cutoff=CUT,
    )  # fmt: skip
    settings = _settings([{"name": "recent", "max_age_days": 30}], max_items=2)
    answer = explain(evidence, settings)
    verdicts = {v.feed: v for v in answer.feeds}
    assert verdicts["topics/ai"].listed
    assert verdicts["topics/ai"].position == 1
    assert not verdicts["all"].listed
    assert verdicts["all"].reason == "max_items: 2: it is #3 (2 newer items)"
    assert not verdicts["custom/recent"].listed
    assert verdicts["custom/recent"].reason is not None
    assert verdicts["custom/recent"].reason.startswith("max_age_days: 30: dated 2021-01-01")
    assert answer.summary == "listed in 1 feed, left out of 2"
    assert answer.guid == URL


def test_a_duplicate_with_the_same_mtime_goes_to_the_first_path() -> None:
    first, second = _article("a.txt", URL), _article("b.txt", URL)
    rivals = (_file("a.txt", first, mtime=5), _file("b.txt", second, mtime=5))
    item = ItemRecord(URL, URL, "a.txt", datetime(2021, 1, 1, tzinfo=UTC), (ALL,))
    answer = explain(
        Evidence("b.txt", "b.txt", rivals[1], URL, rivals, item, cutoff=CUT), _settings()
    )
    assert answer.summary == (
        "not in any feed: a.txt has the same webUrl and wins (same mtime, first path)"
    )
    assert answer.duplicate == {
        "winner": "a.txt",
        "losers": ["b.txt"],
        "reason": "same mtime, first path",
    }
    assert not answer.listed


def test_an_unpublished_winner_lists_nothing_for_its_url() -> None:
    hidden = _article("new.txt", URL, published=False)
    rivals = (_file("new.txt", hidden, mtime=9), _file("old.txt", _article("old.txt", URL)))
    answer = explain(Evidence(URL, None, None, URL, rivals, None, cutoff=CUT), _settings())
    assert answer.published is False
    assert answer.summary.startswith("not in any feed: it is not published")


def test_a_rejected_file_keeps_its_last_good_version() -> None:
    article = _article("a.txt", URL)
    record = _file("a.txt", article, error="malformed YAML")
    item = ItemRecord(URL, URL, "a.txt", datetime(2021, 1, 1, tzinfo=UTC), (ALL,))
    answer = explain(
        Evidence(
            "a.txt",
            "a.txt",
            record,
            URL,
            (record,),
            item,
            positions={ALL: 1},
            written={ALL: 1},
            cutoff=CUT,
        ),
        _settings(),
    )
    assert answer.error == "malformed YAML"
    assert answer.kept_version
    assert answer.listed


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        (
            {"topics_any": ["Space", "Go"]},
            "topics_any: it names none of go and space (its topics: ai)",
        ),
        ({"topics_all": ["AI", "ML"]}, "topics_all: it does not name ml"),
        ({"topics_none": ["ai"]}, "topics_none: it names ai"),
        ({"providers": ["wired.com"]}, "providers: its provider (forbes-com) is not wired-com"),
        ({"has_image": True}, "has_image: true, and it has no image"),
        ({"title_matches": "^Z"}, "title_matches: '^Z' is not found in its title"),
        ({"excerpt_matches": "x+"}, "excerpt_matches: 'x+' is not found in its excerpt"),
        ({"topics_any": ["ai"], "providers": ["forbes.com"]}, None),
    ],
)
def test_a_config_feeds_refusal_names_its_key_and_agrees_with_the_filter(
    definition: dict[str, Any], reason: str | None
) -> None:
    (feed,), problems = parse_feed_definitions([{"name": "f", **definition}])
    assert not problems
    article = _article("a.txt", URL)
    assert feed.refusal(article) == reason
    assert feed.matches(article) is (reason is None)


# --- against the real daemon -------------------------------------------------------------


class Site:
    """A config, its folders and the article files of every case `explain` must answer."""

    def __init__(self, root: Path, catalog: str | None) -> None:
        self.root = root
        self.input = root / "in"
        self.state = root / "state"
        self.catalog = catalog
        config: dict[str, Any] = {
            "input": str(self.input),
            "output": str(root / "out"),
            "state": str(self.state),
            "base_url": BASE,
            "feeds": [
                {"name": "newest-ai", "topics_any": ["AI"], "max_items": 1},
                {"name": "wired-only", "providers": ["wired.com"]},
            ],
            "websub": {"hubs": [DEAD_HUB]},
        }
        if catalog is not None:
            config["catalog"] = catalog
            config["node"] = "n1"
        self.config = root / "aggregator.yaml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        for name, url, fields in [
            ("dup-old.txt", URL + "listed", {"title": "Listed, older copy"}),
            ("listed.txt", URL + "listed", {"title": "Listed", "date": "2021-12-22T13:00:00Z"}),
            ("older.txt", URL + "older", {"title": "Older", "date": "2021-01-01T00:00:00Z"}),
            ("hidden.txt", URL + "hidden", {"published": False}),
            ("future.txt", URL + "future", {"title": "Future", "date": "2099-01-01T00:00:00Z"}),
        ]:
            write_article(self.input, name, url, **fields)
        (self.input / "bad.txt").write_text("---\ntitle: [broken\n---\n", encoding="utf-8")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", *args, "--config", str(self.config)],
            capture_output=True, text=True, timeout=60, check=False, cwd=self.root,
        )  # fmt: skip
        assert PASSWORD not in done.stdout + done.stderr
        assert SECRET not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def status(self) -> tuple[int, dict[str, Any]]:
        done = self.cli("status", "--json")
        assert done.returncode in (0, 1, 3), done.stderr
        return done.returncode, json.loads(done.stdout)

    def explain(self, target: str) -> dict[str, Any]:
        done = self.cli("explain", "--json", target)
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def start(self) -> subprocess.Popen[bytes]:
        with (self.root / "log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "aggregator", "run", "--config", str(self.config)],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip


@pytest.fixture
def site(tmp_path: Path, catalog_backend: str | None) -> Iterator[Site]:
    catalog = catalog_backend
    if catalog is not None:  # a password in the URL: trust auth ignores it; no output shows it
        catalog = catalog.replace("aggregator@", f"aggregator:{PASSWORD}@")
    return Site(tmp_path, catalog)


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=30)


def _feeds(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["feed"]: f for f in answer["feeds"]}


def test_status_and_explain_beside_a_running_daemon_then_stopped_then_killed(site: Site) -> None:
    proc = site.start()
    try:

        def built() -> bool:
            code, report = site.status()
            return code == 0 and report["last_build"] is not None and bool(report["pings_owed"])

        wait_for(built, "the daemon's first build in `status`")
        code, report = site.status()
        daemon = report["daemon"]
        assert daemon["running"]
        assert daemon["pid"] == proc.pid
        assert report["last_build"]["result"] == "ok"
        assert report["last_build"]["published"] == 2  # listed, older: the future one waits
        assert [r["path"] for r in report["rejected"]] == ["bad.txt"]
        assert "malformed YAML" in report["rejected"][0]["reason"]
        assert [s["path"] for s in report["scheduled"]["next"]] == ["future.txt"]
        assert report["next_due"] == "2099-01-01T00:00:00Z"
        assert [p["hub"] for p in report["pings_owed"]] == [DEAD_HUB]
        assert report["subscribers"] is None
        if site.catalog is not None:
            assert daemon["node"] == "n1"
            assert PASSWORD not in report["catalog"]["where"]
            wait_for(lambda: site.status()[1]["cluster"]["leading_now"], "n1 leading")
            assert site.status()[1]["cluster"]["leader"] == "n1"
        else:
            assert report["cluster"] is None
        text = site.cli("status").stdout
        assert f"running, PID {proc.pid}" in text
        assert "bad.txt" in text

        listed = site.explain("listed.txt")
        assert listed["listed"]
        assert listed["guid"] == URL + "listed"
        assert listed["duplicate"] == {"winner": "listed.txt", "losers": ["dup-old.txt"],
                                       "reason": "newest mtime"}  # fmt: skip
        feeds = _feeds(listed)
        assert feeds["all"]["listed"]
        assert feeds["all"]["position"] == 1
        assert feeds["custom/newest-ai"]["listed"]
        assert feeds["custom/newest-ai"]["max_items"] == 1
        assert feeds["custom/wired-only"]["reason"] == (
            "feeds: wired-only: providers: its provider (forbes-com) is not wired-com"
        )
        # Asked by absolute path and by URL: the same article.
        assert site.explain(str(site.input / "listed.txt"))["guid"] == URL + "listed"
        assert site.explain(URL + "listed")["guid"] == URL + "listed"

        older = _feeds(site.explain("older.txt"))
        assert older["topics/ai"]["listed"]
        assert older["topics/ai"]["position"] == 2
        assert not older["custom/newest-ai"]["listed"]
        assert older["custom/newest-ai"]["reason"] == "max_items: 1: it is #2 (1 newer item)"

        loser = site.explain("dup-old.txt")
        assert not loser["listed"]
        assert loser["guid"] is None
        assert "listed.txt has the same webUrl and wins (newest mtime)" in loser["summary"]

        hidden = site.explain("hidden.txt")
        assert hidden["published"] is False
        assert not hidden["listed"]

        future = site.explain("future.txt")
        assert future["embargoed_until"] == "2099-01-01T00:00:00Z"
        assert not future["listed"]
        assert all(f["reason"].startswith(("embargo:", "feeds: ")) for f in future["feeds"])

        bad = site.explain("bad.txt")
        assert "malformed YAML" in bad["error"]
        assert not bad["kept_version"]

        unknown = site.explain("nope.txt")
        assert not unknown["known"]
        assert "no such file" in unknown["notes"][0]
        outside = site.cli("explain", "/etc/passwd")
        assert outside.returncode == 2
        assert "not inside the input folder" in outside.stderr
    finally:
        _stop(proc, signal.SIGTERM)
    code, report = site.status()
    assert code == 3
    assert not report["daemon"]["running"]
    assert report["daemon"]["stopped"] is not None
    assert "not running (stopped " in site.cli("status").stdout
    # The catalog is still read: the article is explained with no daemon.
    assert site.explain("listed.txt")["listed"]

    proc = site.start()
    try:
        wait_for(lambda: site.status()[1]["daemon"]["pid"] == proc.pid, "the second start")
    finally:
        _stop(proc, signal.SIGKILL)
    code, report = site.status()
    assert code == 3
    assert report["daemon"]["stopped"] is None
    assert "is gone: killed or crashed" in site.cli("status").stdout


def test_a_record_whose_pid_is_another_process_is_not_running(tmp_path: Path) -> None:
    """A PID reused after a reboot or a kill: alive, but not the process that wrote it."""
    state = tmp_path / "state"
    state.mkdir()
    start = process_start(os.getpid())
    assert start is not None
    record = {"version": 1, "pid": os.getpid(), "process_start": start - 1, "stopped": None,
              "updated": "2024-01-01T00:00:00Z", "started": "2024-01-01T00:00:00Z"}  # fmt: skip
    (state / "status.json").write_text(json.dumps(record), encoding="utf-8")
    from aggregator.daemon import daemon_state

    assert not daemon_state(state).running
    record["process_start"] = start
    (state / "status.json").write_text(json.dumps(record), encoding="utf-8")
    assert daemon_state(state).running
    (state / "status.json").write_text("{torn", encoding="utf-8")
    torn = daemon_state(state)
    assert not torn.running
    assert torn.problem is not None
    assert "unreadable" in torn.problem
