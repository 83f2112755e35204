"""Feeds defined in the config: filters, membership as articles change, definition changes,
built-in groups switched off, and configuration errors (exit 2, nothing written)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import building
import feedparser
import pytest
import yaml
from articlefiles import write_article

from aggregator.cli import main
from aggregator.config import load_settings
from aggregator.errors import ConfigError
from aggregator.events import FeedWritten
from aggregator.membership import parse_feed_definitions
from aggregator.model import Article, Image, Provider
from aggregator.pipeline import BuildReport

BASE = "https://feeds.example.org/"

AI_AT_FORBES = {
    "name": "ai-at-forbes",
    "title": "AI at Forbes",
    "topics_any": ["AI"],
    "providers": ["forbes.com"],
}
ROBOTS = {
    "name": "robots",
    "title": "Robots, not ethics",
    "description": "Robot stories.",
    "title_matches": "(?i)robot",
    "topics_none": ["Ethics"],
    "max_items": 2,
}


def config(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Path:
    path = tmp_path / "aggregator.yaml"
    data = {
        "input": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "state": str(tmp_path / "state"),
        "base_url": BASE,
        "workers": 1,
        "feeds": feeds,
        **extra,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "in").mkdir(exist_ok=True)
    return path


def build(path: Path) -> BuildReport:
    return building.build(load_settings(path))


def links(out: Path, feed: str) -> list[str]:
    rss = feedparser.parse((out / f"{feed}.rss.xml").read_bytes())
    atom = feedparser.parse((out / f"{feed}.atom.xml").read_bytes())
    assert not rss.bozo, rss.get("bozo_exception")
    assert not atom.bozo, atom.get("bozo_exception")
    assert [e.link for e in rss.entries] == [e.link for e in atom.entries]
    return [e.link for e in atom.entries]


def written(report: BuildReport) -> set[str]:
    return {str(e.feed) for e in report.events if isinstance(e, FeedWritten)}


def test_a_custom_feed_is_built_titled_and_indexed(tmp_path: Path) -> None:
    path = config(tmp_path, [AI_AT_FORBES, ROBOTS])
    inp, out = tmp_path / "in", tmp_path / "out"
    write_article(inp, "a.txt", "https://x.test/a", topics=["AI"])
    write_article(inp, "b.txt", "https://x.test/b", topics=["ai", "Robotics"])
    write_article(inp, "c.txt", "https://x.test/c", topics=["AI"], provider={"name": "Wired"})
    build(path)
    assert sorted(links(out, "custom/ai-at-forbes")) == ["https://x.test/a", "https://x.test/b"]
    feed = feedparser.parse((out / "custom/ai-at-forbes.atom.xml").read_bytes()).feed
    assert feed.title == "AI at Forbes"
    assert links(out, "custom/robots") == []  # defined: exists before its first item
    # Its date is fixed (byte-stable) and plausible: validators warn before 1990.
    empty = feedparser.parse((out / "custom/robots.atom.xml").read_bytes()).feed
    assert 1990 <= empty.updated_parsed.tm_year <= 2000
    opml = ET.parse(out / "index.opml").getroot()
    urls = [o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")]
    assert BASE + "custom/ai-at-forbes.rss.xml" in urls
    assert BASE + "custom/robots.rss.xml" in urls
    (folder,) = [o for o in opml.iter("outline") if o.get("text") == "Selections"]
    assert sorted(o.get("xmlUrl") for o in folder) == [
        BASE + "custom/ai-at-forbes.rss.xml",
        BASE + "custom/robots.rss.xml",
    ]
    html = (out / "index.html").read_text()
    assert "AI at Forbes" in html
    assert "Robots, not ethics" in html
    # Byte-stable: a second build writes nothing.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert written(build(path)) == set()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_membership_follows_the_articles(tmp_path: Path) -> None:
    path = config(tmp_path, [AI_AT_FORBES, ROBOTS])
    inp, out = tmp_path / "in", tmp_path / "out"
    url = "https://x.test/r"
    write_article(inp, "r.txt", url, title="Robots at work", topics=["Robotics"])
    report = build(path)
    assert links(out, "custom/robots") == [url]
    assert links(out, "custom/ai-at-forbes") == []
    assert "custom/robots" in written(report)

    # A topic added: it enters the AI feed; the robots feed is touched (its item changed).
    write_article(inp, "r.txt", url, title="Robots at work", topics=["Robotics", "AI"])
    report = build(path)
    assert links(out, "custom/ai-at-forbes") == [url]
    assert {"custom/ai-at-forbes", "custom/robots"} <= written(report)

    # An excluded topic: it leaves the robots feed only.
    write_article(inp, "r.txt", url, title="Robots at work", topics=["AI", "Ethics"])
    build(path)
    assert links(out, "custom/robots") == []
    assert links(out, "custom/ai-at-forbes") == [url]

    # Another provider: it leaves the AI-at-Forbes feed.
    write_article(inp, "r.txt", url, title="Robots at work", topics=["AI"], provider="Wired")
    build(path)
    assert links(out, "custom/ai-at-forbes") == []
    assert links(out, "custom/robots") == [url]

    # The title no longer matches the pattern.
    write_article(inp, "r.txt", url, title="Machines at work", topics=["AI"], provider="Wired")
    build(path)
    assert links(out, "custom/robots") == []


def test_an_edit_rewrites_only_the_custom_feeds_it_is_in(tmp_path: Path) -> None:
    path = config(tmp_path, [AI_AT_FORBES, ROBOTS])
    inp = tmp_path / "in"
    write_article(inp, "a.txt", "https://x.test/a", title="Plain", topics=["AI"])
    write_article(inp, "r.txt", "https://x.test/r", title="Robot", topics=["Robotics"])
    build(path)
    write_article(inp, "a.txt", "https://x.test/a", title="Plain, edited", topics=["AI"])
    assert written(build(path)) == {
        "all",
        "topics/ai",
        "providers/forbes-com",
        "custom/ai-at-forbes",
    }


def test_per_feed_max_items_and_formats(tmp_path: Path) -> None:
    atom_only = {"name": "atom-only", "title": "Atom only", "formats": ["atom"]}
    path = config(tmp_path, [ROBOTS, atom_only])
    inp, out = tmp_path / "in", tmp_path / "out"
    for i in range(4):
        write_article(
            inp,
            f"{i}.txt",
            f"https://x.test/{i}",
            title=f"Robot {i}",
            date=f"2021-12-2{i}T13:00:00Z",
        )
    build(path)
    assert links(out, "custom/robots") == ["https://x.test/3", "https://x.test/2"]
    assert (out / "custom/atom-only.atom.xml").is_file()
    assert not (out / "custom/atom-only.rss.xml").exists()


def test_a_definition_change_re_renders_only_that_feed(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    path = config(tmp_path, [AI_AT_FORBES, ROBOTS])
    write_article(inp, "a.txt", "https://x.test/a", title="Robot AI", topics=["AI"])
    write_article(inp, "b.txt", "https://x.test/b", title="Other", topics=["Space"])
    build(path)
    robots_mtime = (out / "custom/robots.rss.xml").stat().st_mtime_ns

    changed = {**AI_AT_FORBES, "topics_any": ["Space"], "title": "Space at Forbes"}
    path = config(tmp_path, [changed, ROBOTS])
    report = build(path)
    assert written(report) == {"custom/ai-at-forbes"}
    assert links(out, "custom/ai-at-forbes") == ["https://x.test/b"]
    assert (out / "custom/robots.rss.xml").stat().st_mtime_ns == robots_mtime
    assert "Space at Forbes" in (out / "index.html").read_text()

    # A title-only change: that feed only, same items.
    path = config(tmp_path, [{**changed, "title": "Space news"}, ROBOTS])
    assert written(build(path)) == {"custom/ai-at-forbes"}

    # A feed removed: its files (and their gzip sidecars) go, and it leaves the indexes.
    assert (out / "custom/ai-at-forbes.rss.xml.gz").is_file()
    path = config(tmp_path, [ROBOTS])
    report = build(path)
    assert written(report) == set()
    for name in ("rss.xml", "atom.xml", "rss.xml.gz", "atom.xml.gz"):
        assert not (out / f"custom/ai-at-forbes.{name}").exists()
    assert "Space news" not in (out / "index.html").read_text()
    assert "custom/ai-at-forbes" not in (out / "index.opml").read_text()


def test_built_in_groups_can_be_switched_off(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_article(inp, "a.txt", "https://x.test/a", topics=["AI"])
    build(config(tmp_path, [AI_AT_FORBES]))
    assert (out / "topics/ai.rss.xml").is_file()
    groups = ("index-selections.opml", "index-topics.opml", "index-providers.opml")
    assert all((out / name).is_file() for name in groups)
    path = config(tmp_path, [AI_AT_FORBES], builtin_feeds={"topics": False, "providers": False})
    build(path)
    assert not (out / "topics/ai.rss.xml").exists()
    assert not (out / "providers/forbes-com.rss.xml").exists()
    assert links(out, "all") == ["https://x.test/a"]
    assert links(out, "custom/ai-at-forbes") == ["https://x.test/a"]
    html = (out / "index.html").read_text()
    assert "Topics" not in html
    assert "Providers" not in html
    # A group with no feed has no OPML left behind (nor its sidecar).
    assert [name for name in groups if (out / name).exists()] == ["index-selections.opml"]
    assert not (out / "index-topics.opml.gz").exists()
    # Switched back on: the feeds come back from the catalog, no file is read.
    report = build(config(tmp_path, [AI_AT_FORBES]))
    assert report.read == 0
    assert links(out, "topics/ai") == ["https://x.test/a"]


@pytest.mark.parametrize(
    ("feeds", "key"),
    [
        ([AI_AT_FORBES, {**ROBOTS, "name": "ai-at-forbes"}], "feeds[1] (ai-at-forbes).name"),
        ([{**ROBOTS, "title_matches": "robot("}], "feeds[0] (robots).title_matches"),
        ([{**ROBOTS, "colour": "red"}], "feeds[0] (robots).colour"),
        (
            [{**ROBOTS, "topic_any": ["AI"]}],
            "feeds[0] (robots).topic_any: unknown key; did you mean 'topics_any'?",
        ),
        (
            [{"name": "never", "topics_all": ["AI"], "topics_none": ["ai"]}],
            "feeds[0] (never).topics_none",
        ),
        ([{"name": "empty", "topics_any": []}], "feeds[0] (empty).topics_any"),
        ([{"name": "Not A Slug"}], "feeds[0] (Not A Slug).name"),
        ([{"name": "x", "has_image": "yes"}], "feeds[0] (x).has_image"),
    ],
)
def test_config_errors_exit_2_before_anything_is_written(
    tmp_path: Path, feeds: list[dict[str, Any]], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, feeds)
    write_article(tmp_path / "in", "a.txt", "https://x.test/a")
    assert main(["build", "--config", str(path)]) == 2
    assert key in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "state").exists()
    with pytest.raises(ConfigError):
        load_settings(path)


def test_filters_match_by_slug_provider_and_image() -> None:
    definitions, problems = parse_feed_definitions(
        [
            {"name": "a", "topics_all": ["Computer Vision", "ai"], "has_image": True},
            {"name": "b", "providers": ["Wired"], "excerpt_matches": "quantum"},
        ]
    )
    assert problems == []
    first, second = definitions
    article = Article(
        source="x",
        url="u",
        title="t",
        excerpt="about quantum things",
        published=True,
        topics=("computer-vision", "AI"),
        images=(Image("https://img.test/1.jpg"),),
        provider=Provider("Wired"),
    )
    assert first.matches(article)
    assert second.matches(article)
    assert not first.matches(Article(source="x", url="u", title="t", topics=("AI",)))
    assert not second.matches(
        Article(source="x", url="u", title="t", excerpt="quantum", provider=Provider("W", "w.com"))
    )
