"""An item's last edit as readers see it: Atom `<updated>` and JSON Feed `date_modified`,
from the data (the edited file's mtime), byte-stable, kept by `catalog rebuild`."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from articlefiles import bump_mtime, write_article
from building import build, folder_settings

from aggregator.catalog import rebuild_catalog
from aggregator.config import Settings

URL = "https://a.example.com/1"
PUBLISHED = "2021-12-22T13:00:00Z"


@pytest.fixture
def folders(tmp_path: Path, catalog_backend: str | None) -> Settings:
    return folder_settings(tmp_path, catalog=catalog_backend, node="n1")


def z(text: str) -> str:
    """An RFC 3339 date as JSON Feed writes it (UTC, `Z`)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atom_entry(settings: Settings, feed: str = "all") -> feedparser.FeedParserDict:
    """The one entry of a feed's Atom file, its dates spelled as JSON Feed spells them."""
    parsed = feedparser.parse((settings.output / f"{feed}.atom.xml").read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    (entry,) = parsed.entries
    entry["published"], entry["updated"] = z(entry.published), z(entry.updated)
    return entry


def json_item(settings: Settings, feed: str = "all") -> dict[str, str]:
    (item,) = json.loads((settings.output / f"{feed}.json").read_bytes())["items"]
    return dict(item)


def outputs(settings: Settings) -> dict[str, bytes]:
    return {
        str(p.relative_to(settings.output)): p.read_bytes()
        for p in sorted(settings.output.rglob("*"))
        if p.is_file() and p.suffix != ".gz"
    }


def stamp(path: Path) -> str:
    """The file's mtime as the feeds write it (whole seconds, UTC)."""
    return datetime.fromtimestamp(path.stat().st_mtime_ns // 10**9, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_an_unedited_item_is_updated_when_published(folders: Settings) -> None:
    write_article(folders.input, "a.txt", URL)
    build(folders)
    assert atom_entry(folders).updated == atom_entry(folders).published
    assert atom_entry(folders).updated == PUBLISHED
    assert "date_modified" not in json_item(folders)


@pytest.mark.parametrize(
    "edit",
    [
        {"title": "A better title"},
        {"excerpt": "A corrected excerpt."},
        {"images": [{"url": "https://img.example.com/b.jpg"}]},
        {"related": [{"title": "More", "webUrl": "https://b.example.com/2"}]},
    ],
)
def test_an_edit_readers_see_moves_updated_to_the_edit(
    folders: Settings, edit: dict[str, object]
) -> None:
    write_article(folders.input, "a.txt", URL)
    build(folders)
    path = write_article(folders.input, "a.txt", URL, **edit)
    build(folders)
    edited = stamp(path)
    assert edited > PUBLISHED
    for feed in ("all", "topics/ai", "providers/forbes-com"):
        entry = atom_entry(folders, feed)
        assert (entry.published, entry.updated) == (PUBLISHED, edited), feed
        item = json_item(folders, feed)
        assert (item["date_published"], item["date_modified"]) == (PUBLISHED, edited), feed
        # The feed changed with it: its own <updated> is the edit's too.
        feed_updated = feedparser.parse((folders.output / f"{feed}.atom.xml").read_bytes())
        assert z(feed_updated.feed.updated) == edited
    # Byte-stable: a build with nothing new, and a touch that changes nothing readers see.
    before = outputs(folders)
    build(folders)
    bump_mtime(path)
    build(folders)
    assert outputs(folders) == before


def test_a_link_edit_moves_updated_but_keeps_the_guid(folders: Settings) -> None:
    write_article(folders.input, "a.txt", URL)
    build(folders)
    path = write_article(folders.input, "a.txt", "https://a.example.com/moved")
    build(folders)
    entry = atom_entry(folders)
    assert (entry.id, entry.link, entry.updated) == (
        URL,
        "https://a.example.com/moved",
        stamp(path),
    )


def test_an_edit_with_an_old_mtime_still_moves_updated_forward(folders: Settings) -> None:
    # A copy that keeps an older mtime (rsync -a, cp -p, a restore) is still an edit.
    path = write_article(folders.input, "a.txt", URL)
    build(folders)
    write_article(folders.input, "a.txt", URL, title="Second")
    build(folders)
    second = atom_entry(folders).updated
    write_article(folders.input, "a.txt", URL, title="Third")
    os.utime(path, (1_600_000_000, 1_600_000_000))  # 2020: before even its publication
    build(folders)
    third = atom_entry(folders).updated
    assert third > second > PUBLISHED
    as_time = datetime.strptime(second, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert third == datetime.fromtimestamp(as_time.timestamp() + 1, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_catalog_rebuild_keeps_the_edit_and_a_clean_build_forgets_it(tmp_path: Path) -> None:
    folders = folder_settings(tmp_path)
    write_article(folders.input, "a.txt", URL)
    build(folders)
    path = write_article(folders.input, "a.txt", URL, title="Edited")
    build(folders)
    edited = outputs(folders)
    assert atom_entry(folders).updated == stamp(path)

    salvage = rebuild_catalog(folders.catalog_path, "test")
    assert salvage.identities == 1
    build(folders)
    assert outputs(folders) == edited

    # From nothing (no state at all), an edit before the first build is unknowable.
    shutil.rmtree(folders.state)
    shutil.rmtree(folders.output)
    build(folders)
    assert atom_entry(folders).updated == PUBLISHED
