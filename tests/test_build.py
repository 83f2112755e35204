"""Builds on real folders: incremental work, GUIDs, duplicates, leaks, stability, atomicity."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from articlefiles import SECRET, bump_mtime, write_article
from building import BASE, SEEDS, build, folder_settings

from aggregator.config import Settings
from aggregator.events import (
    ArticleAdded,
    ArticleRejected,
    ArticleRemoved,
    ArticleUnpublished,
    ArticleUpdated,
    DuplicateUrl,
    FeedWritten,
)
from aggregator.model import FeedFormat, FeedKey, FeedKind
from aggregator.pipeline import Builder, BuildReport


@pytest.fixture
def folders(tmp_path: Path, catalog_backend: str | None) -> Iterator[Settings]:
    return folder_settings(tmp_path, catalog=catalog_backend, node="n1")


def entries(settings: Settings, feed: str = "all") -> list[feedparser.FeedParserDict]:
    """The entries of a feed's RSS and Atom files, checked to agree with each other."""
    rss = feedparser.parse((settings.output / f"{feed}.rss.xml").read_bytes())
    atom = feedparser.parse((settings.output / f"{feed}.atom.xml").read_bytes())
    assert not rss.bozo, rss.get("bozo_exception")
    assert not atom.bozo, atom.get("bozo_exception")
    assert [e.id for e in rss.entries] == [e.id for e in atom.entries]
    return list(atom.entries)


def written(report: BuildReport) -> set[str]:
    return {str(e.feed) for e in report.events if isinstance(e, FeedWritten)}


def all_output(settings: Settings) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(settings.output.rglob("*")) if p.is_file())


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_seeds_build_into_every_feed(folders: Settings) -> None:
    shutil.copytree(SEEDS, folders.input, dirs_exist_ok=True)
    report = build(folders)
    assert report.read == 5
    assert report.published == 1
    assert report.rejected == 0
    names = {str(p.relative_to(folders.output)) for p in folders.output.rglob("*.xml")}
    assert names == {
        f"{stem}.{fmt}.xml"
        for stem in ("all", "topics/ai", "topics/computer-vision", "providers/forbes-com")
        for fmt in ("rss", "atom")
    }
    (entry,) = entries(folders)
    assert entry.title == ("How Leaders Can Use Facial Recognition Technology As A Force For Good")
    assert (folders.output / "index.opml").is_file()
    assert (folders.output / "index.html").is_file()


def test_nothing_changed_rebuild_touches_nothing(folders: Settings) -> None:
    shutil.copytree(SEEDS, folders.input, dirs_exist_ok=True)
    build(folders)
    before = snapshot(folders.output)
    report = build(folders)
    assert report.read == 0
    assert report.written == 0
    assert snapshot(folders.output) == before


def test_an_open_catalog_copies_its_log_when_nothing_changed(tmp_path: Path) -> None:
    """The daemon's catalog stays open, and SQLite's write-ahead log is copied into the file
    after each sync only: a build that finds no file changed syncs nothing, but still writes
    (its cut-off), so it copies the log where the sync would have. Without that, builds
    with nothing to sync (embargo releases, windows expiring) grow the log for ever."""
    settings = folder_settings(tmp_path, seeds=True)
    log = Path(f"{settings.catalog_location}-wal")
    minutes = itertools.count()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with Builder(settings, now=lambda: start + timedelta(minutes=next(minutes))) as builder:
        builder.build()
        first = log.stat().st_size  # the first build's pages: some tens
        for _ in range(100):  # each at a new cut-off, which the catalog records
            assert builder.build().read == 0
        # A log copied whole starts again from its beginning. A copy still running when
        # the build writes leaves those pages to the next one: a few pages more at times
        # (up to 4 seen), against one page per build (100 here) left for ever uncopied.
        frame = 4096 + 24  # a page and its header
        assert log.stat().st_size < first + 40 * frame


def test_one_change_reads_one_file_and_renders_only_its_feeds(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1", topics=["AI"])
    write_article(
        folders.input,
        "b.txt",
        "https://b.example.com/1",
        topics=["Robotics"],
        provider={"name": "Wired", "domain": "wired.com"},
    )
    build(folders)
    write_article(folders.input, "a.txt", "https://a.example.com/1", title="New", topics=["AI"])
    report = build(folders)
    assert report.read == 1
    assert written(report) == {"all", "topics/ai", "providers/forbes-com"}
    updated = [e for e in report.events if isinstance(e, ArticleUpdated)]
    assert [(e.source, e.title) for e in updated] == [("a.txt", "New")]
    assert [e.title for e in entries(folders, "topics/ai")] == ["New"]


def test_guid_survives_edits_of_title_date_and_url(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1")
    build(folders)
    (first,) = entries(folders)
    write_article(
        folders.input,
        "a.txt",
        "https://a.example.com/renamed",
        title="Other title",
        date="2022-01-01T00:00:00Z",
    )
    report = build(folders)
    (again,) = entries(folders)
    assert again.id == first.id == "https://a.example.com/1"
    assert again.link == "https://a.example.com/renamed"
    assert again.title == "Other title"
    assert not [e for e in report.events if isinstance(e, ArticleAdded | ArticleRemoved)]


def test_guid_survives_a_move_and_an_unpublish_republish(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1")
    build(folders)
    (first,) = entries(folders)
    (folders.input / "a.txt").rename(folders.input / "sub-a.txt")
    report = build(folders)
    assert [e.id for e in entries(folders)] == [first.id]
    assert not [e for e in report.events if isinstance(e, ArticleAdded | ArticleRemoved)]

    write_article(folders.input, "sub-a.txt", "https://a.example.com/1", published=False)
    report = build(folders)
    assert entries(folders) == []
    assert [type(e) for e in report.events if isinstance(e, ArticleUnpublished)]
    write_article(folders.input, "sub-a.txt", "https://a.example.com/1")
    build(folders)
    assert [e.id for e in entries(folders)] == [first.id]


def test_deleted_article_leaves_and_returns_with_its_guid(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1", title="Kept id")
    write_article(folders.input, "b.txt", "https://b.example.com/1")
    build(folders)
    (folders.input / "a.txt").unlink()
    report = build(folders)
    removed = [e for e in report.events if isinstance(e, ArticleRemoved)]
    assert [(e.source, e.title) for e in removed] == [("a.txt", "Kept id")]
    assert [e.link for e in entries(folders)] == ["https://b.example.com/1"]
    write_article(folders.input, "again.txt", "https://a.example.com/1")
    build(folders)
    assert "https://a.example.com/1" in [e.id for e in entries(folders)]


def test_same_weburl_twice_gives_one_item_from_the_newest_file(folders: Settings) -> None:
    write_article(folders.input, "old.txt", "https://a.example.com/1", title="Old")
    write_article(folders.input, "new.txt", "https://a.example.com/1", title="New")
    report = build(folders)
    assert [e.title for e in entries(folders)] == ["New"]
    (clash,) = [e for e in report.events if isinstance(e, DuplicateUrl)]
    assert (clash.winner, clash.losers) == ("new.txt", ("old.txt",))
    bump_mtime(folders.input / "old.txt")
    build(folders)
    assert [e.title for e in entries(folders)] == ["Old"]


def test_unpublished_articles_and_secured_never_leak(folders: Settings) -> None:
    shutil.copytree(SEEDS, folders.input, dirs_exist_ok=True)
    write_article(
        folders.input,
        "x.txt",
        "https://x.example.com/secret-draft",
        title="Draft X",
        published=False,
        topics=["Draft Topic"],
    )
    write_article(folders.input, "y.txt", "https://y.example.com/1", published="true")
    write_article(folders.input, "z.txt", "https://z.example.com/1", title="Visible")
    build(folders)
    data = all_output(folders)
    assert b"Visible" in data
    for leak in (
        SECRET.encode(),
        b"secret-draft",
        b"Draft X",
        b"draft-topic",
        b"y.example.com",
        b"secured",
        b"14jCMZVnigTskCMEkoA",
    ):
        assert leak not in data
    for seed in SEEDS.iterdir():
        text = seed.read_text(encoding="utf-8")
        if "published: false" in text:
            url = next(line for line in text.splitlines() if line.startswith("webUrl:"))
            assert url.split('"')[1].encode() not in data


def test_a_bad_file_is_reported_and_the_rest_goes_on(folders: Settings) -> None:
    write_article(folders.input, "good.txt", "https://a.example.com/1")
    (folders.input / "bad.txt").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    report = build(folders)
    (rejected,) = [e for e in report.events if isinstance(e, ArticleRejected)]
    assert rejected.source == "bad.txt"
    # The event names the file in `source`; the reason does not say it again.
    assert "bad.txt" not in rejected.reason
    assert "YAML" in rejected.reason
    assert [e.link for e in entries(folders)] == ["https://a.example.com/1"]


def test_a_broken_edit_keeps_the_last_good_version_listed(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1", title="Good")
    build(folders)
    (folders.input / "a.txt").write_text("---\ntitle: [half-written\n", encoding="utf-8")
    report = build(folders)
    (rejected,) = [e for e in report.events if isinstance(e, ArticleRejected)]
    assert rejected.kept_previous
    assert [e.title for e in entries(folders)] == ["Good"]
    write_article(folders.input, "a.txt", "https://a.example.com/1", title="Fixed")
    build(folders)
    assert [e.title for e in entries(folders)] == ["Fixed"]


def test_a_feed_whose_last_item_left_stays_valid_and_empty(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1", topics=["Robotics"])
    write_article(folders.input, "b.txt", "https://b.example.com/1", topics=["AI"])
    build(folders)
    (folders.input / "a.txt").unlink()
    report = build(folders)
    assert "topics/robotics" in written(report)
    assert entries(folders, "topics/robotics") == []
    feed = feedparser.parse((folders.output / "topics/robotics.atom.xml").read_bytes())
    assert feed.feed.title == "Topic: Robotics"


def test_slugs_never_leave_the_output_folder(folders: Settings) -> None:
    write_article(
        folders.input,
        "a.txt",
        "https://a.example.com/1",
        topics=["../../../escape", "..", "/etc/passwd", "Réalité Augmentée", "東京"],
        provider={"name": "../../x", "domain": "../.."},
    )
    build(folders)
    outside = [
        p
        for p in folders.output.parent.rglob("*")
        if p.suffix in (".xml", ".json") and folders.output not in p.parents
    ]
    assert outside == []
    topics = sorted(
        p.name for p in (folders.output / "topics").iterdir() if p.suffix in (".xml", ".json")
    )
    assert topics == sorted(
        f"{slug}{suffix}"
        for slug in ("escape", "etc-passwd", "realite-augmentee", "dongjing")
        for suffix in (".rss.xml", ".atom.xml", ".json")
    )
    assert not (folders.output / "providers").exists()


def test_max_items_keeps_the_newest(folders: Settings) -> None:
    for day in range(1, 8):
        write_article(
            folders.input,
            f"{day}.txt",
            f"https://a.example.com/{day}",
            date=f"2021-01-0{day}T00:00:00Z",
        )
    settings = Settings(**{**_fields(folders), "max_items": 3})
    build(settings)
    assert [e.link for e in entries(settings)] == [
        "https://a.example.com/7",
        "https://a.example.com/6",
        "https://a.example.com/5",
    ]


def test_changed_base_url_rerenders_every_feed(folders: Settings) -> None:
    shutil.copytree(SEEDS, folders.input, dirs_exist_ok=True)
    build(folders)
    moved = Settings(**{**_fields(folders), "base_url": "https://other.example.net/f/"})
    report = build(moved)
    assert report.written == 4
    assert (
        b"https://other.example.net/f/all.atom.xml" in (moved.output / "all.atom.xml").read_bytes()
    )
    assert b"https://other.example.net/f/all.rss.xml" in (moved.output / "index.opml").read_bytes()


def test_a_deleted_feed_file_is_written_again(folders: Settings) -> None:
    shutil.copytree(SEEDS, folders.input, dirs_exist_ok=True)
    build(folders)
    before = (folders.output / "topics/ai.rss.xml").read_bytes()
    (folders.output / "topics/ai.rss.xml").unlink()
    report = build(folders)
    if folders.catalog is None:
        assert written(report) == {"topics/ai"}
    else:
        # A shared catalog: the cluster's rendered set still has it; the full scan copies
        # it back into this node's folder, with nothing rendered again.
        assert (written(report), report.copied) == (set(), 1)
    assert (folders.output / "topics/ai.rss.xml").read_bytes() == before


_READER = """
import sys, time, xml.etree.ElementTree as ET
from pathlib import Path
target, stop = Path(sys.argv[1]), Path(sys.argv[2])
reads = failures = 0
while not stop.exists():
    data = target.read_bytes()
    reads += 1
    try:
        ET.fromstring(data)
    except ET.ParseError:
        failures += 1
print(reads, failures)
"""


def test_readers_never_see_a_partial_file(folders: Settings, tmp_path: Path) -> None:
    """A reader in another process (a web server, say) reads the feed while it is rewritten."""
    for i in range(30):
        write_article(folders.input, f"{i}.txt", f"https://a.example.com/{i}")
    build(folders)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(folders.output / "all.rss.xml"), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for round_ in range(15):
            write_article(folders.input, "0.txt", "https://a.example.com/0", title=f"T{round_}")
            build(folders)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    reads, failures = map(int, out.split())
    assert reads > 0
    assert failures == 0
    assert not list(folders.output.rglob(".*.tmp"))


def test_feed_keys_of_the_seed(folders: Settings) -> None:
    shutil.copytree(SEEDS, folders.input, dirs_exist_ok=True)
    report = build(folders)
    (added,) = [e for e in report.events if isinstance(e, ArticleAdded)]
    assert added.feeds == (
        FeedKey.everything(),
        FeedKey(FeedKind.TOPIC, "computer-vision"),
        FeedKey(FeedKind.TOPIC, "ai"),
        FeedKey(FeedKind.PROVIDER, "forbes-com"),
    )


def _fields(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def test_parallel_build_gives_the_same_bytes_as_a_serial_one(tmp_path: Path) -> None:
    source = tmp_path / "in"
    topics = [f"Topic {n}" for n in range(30)]
    for i in range(260):
        write_article(
            source,
            f"{i:03}.txt",
            f"https://a.example.com/{i}",
            title=f"Article {i}",
            date=f"2021-03-{1 + i % 28:02}T{i % 24:02}:00:00Z",
            topics=[topics[i % 30], topics[(i * 7) % 30]],
            provider={"name": f"P{i % 5}", "domain": f"p{i % 5}.example.com"},
            published=i % 4 != 0,
        )
    outputs = []
    for workers in (1, 2):
        settings = Settings(
            input=source,
            output=tmp_path / f"out{workers}",
            state=tmp_path / f"state{workers}",
            base_url=BASE,
            workers=workers,
        )
        report = build(settings)
        assert report.read == 260
        assert report.written == 1 + 30 + 5
        outputs.append({k: v[0] for k, v in snapshot(settings.output).items()})
    assert outputs[0] == outputs[1]


def test_the_forkserver_preloads_modules_that_exist() -> None:
    """A stale name there fails silently, as a slower start of every daemon worker."""
    import importlib.util

    from aggregator.pipeline.workers import FORKSERVER_PRELOAD, _read_chunk, _render_chunk

    for name in FORKSERVER_PRELOAD:
        assert importlib.util.find_spec(name) is not None, name
    # The chunk functions the workers run live in a preloaded module.
    assert {_read_chunk.__module__, _render_chunk.__module__} <= set(FORKSERVER_PRELOAD)


def test_a_new_article_never_takes_a_guid_another_one_has(folders: Settings) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/x", title="A")
    build(folders)
    write_article(folders.input, "a.txt", "https://a.example.com/y", title="A")
    write_article(folders.input, "b.txt", "https://a.example.com/x", title="B")
    build(folders)
    ids = {e.title: e.id for e in entries(folders)}
    assert ids == {"A": "https://a.example.com/x", "B": "https://a.example.com/x#2"}


def test_every_feed_has_a_json_feed_and_a_format_turned_off_is_removed(
    folders: Settings,
) -> None:
    write_article(folders.input, "a.txt", "https://a.example.com/1", topics=["AI"])
    build(folders)
    for stem in ("all", "topics/ai"):
        for suffix in (".rss.xml", ".atom.xml", ".json"):
            assert (folders.output / (stem + suffix)).is_file()
    page = (folders.output / "index.html").read_text(encoding="utf-8")
    assert (
        f'type="application/feed+json" title="All articles (JSON)" href="{BASE}all.json"'
        in page
    )
    before = snapshot(folders.output)

    rss_only = replace(folders, formats=(FeedFormat.RSS,))
    report = build(rss_only)
    assert report.failed == 0
    after = snapshot(folders.output)
    assert sorted(after) == sorted(
        name
        for name in before
        if not name.endswith((".atom.xml", ".json", ".atom.xml.gz", ".json.gz"))
    )
    assert any(name.endswith(".json.gz") for name in before)  # the sidecars went too
    # The RSS files were re-rendered (the settings changed) to the same bytes: not rewritten.
    assert all(after[n] == before[n] for n in after if n.endswith(".rss.xml"))
    page = (folders.output / "index.html").read_text(encoding="utf-8")
    assert "atom" not in page
    assert ".json" not in page
    opml = (folders.output / "index.opml").read_text(encoding="utf-8")
    assert f'xmlUrl="{BASE}all.rss.xml"' in opml

    atom_only = replace(folders, formats=(FeedFormat.ATOM,))
    build(atom_only)
    assert not list(folders.output.rglob("*.rss.xml*"))  # files and sidecars
    opml = (folders.output / "index.opml").read_text(encoding="utf-8")
    assert f'xmlUrl="{BASE}all.atom.xml"' in opml

    build(folders)  # all three back
    assert sorted(snapshot(folders.output)) == sorted(before)


def test_a_link_to_an_article_outside_the_input_is_not_published(
    folders: Settings, tmp_path: Path
) -> None:
    outside = write_article(tmp_path, "elsewhere.txt", "https://a.example.com/outside")
    write_article(folders.input, "inside.txt", "https://a.example.com/inside")
    (folders.input / "link.txt").symlink_to(outside)
    build(folders)
    assert [e.link for e in entries(folders)] == ["https://a.example.com/inside"]
    # The setting lets it in.
    build(dataclasses.replace(folders, follow_external_links=True))
    assert sorted(e.link for e in entries(folders)) == [
        "https://a.example.com/inside",
        "https://a.example.com/outside",
    ]


def test_stale_temp_files_of_every_kind_are_removed_and_nothing_else(tmp_path: Path) -> None:
    """A kill after staging leaves temp files of feeds, sidecars and indexes; the next build
    removes exactly those (`remove_stale_temps`), never a file someone else put there."""
    from aggregator.model import RenderedFile
    from aggregator.output import PublishBatch, remove_stale_temps

    out = tmp_path / "out"
    batch = PublishBatch(out, gzip=True)
    for path in ("all.rss.xml", "topics/ai.atom.xml", "all.json", "index.opml", "index.html"):
        batch.stage(RenderedFile(path, b"<x/>\n"))
    staged = sorted(p.name for p in out.rglob(".*.tmp"))
    # Five files and five sidecars staged, never renamed: what a kill leaves behind.
    assert len(staged) == 10, staged
    assert any(name.startswith(".all.rss.xml.gz.") for name in staged)
    others = [out / ".keep.tmp", out / "notes.tmp", out / "topics" / ".x.xml.tmp"]
    for other in others:
        other.write_text("not ours")
    assert remove_stale_temps(out) == 10
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(others)
    batch.abandon()


def test_the_read_workers_wire_format_is_the_stored_article(tmp_path: Path) -> None:
    """What a read worker sends back (a plain tuple, cheaper than `astuple`) makes the same
    record again, field for field, for a published and an unpublished article."""
    from aggregator.catalog import StoredArticle
    from aggregator.membership import DEFAULT_RULES
    from aggregator.pipeline.workers import _read_chunk, read_stored

    write_article(tmp_path, "a.txt", "https://a.example.com/x", title="A")
    write_article(tmp_path, "b.txt", "https://b.example.com/y", title="B", published=False)
    wire = _read_chunk(str(tmp_path), ["a.txt", "b.txt"], 1 << 20, DEFAULT_RULES)
    for rel, fields, error, withdrawn in wire:
        stored = read_stored(str(tmp_path), rel, 1 << 20, DEFAULT_RULES)[1]
        assert stored is not None
        assert fields is not None
        assert (error, withdrawn) == (None, False)
        assert fields == dataclasses.astuple(stored)
        assert StoredArticle(*fields) == stored


def _imported(name: str) -> bool:
    return name in sys.modules


def test_workers_start_with_the_renderer_imported() -> None:
    """Forked from a process that imported it (or from the forkserver that preloads it), no
    worker imports feedgen itself; its first task finds it there."""
    from aggregator.pipeline.workers import Workers

    workers = Workers(2)
    try:
        assert workers.pool.submit(_imported, "aggregator.output.render").result()
        assert workers.pool.submit(_imported, "feedgen.feed").result()
    finally:
        workers.close()
