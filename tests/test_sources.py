"""Which files are article files: the rules a build and the watcher share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aggregator.sources import FileStat, SourceFilter, scan_sources, stat_source


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("article.txt", True),
        ("NOTES.TXT", True),
        ("post.md", True),
        ("post.markdown", False),
        ("image.png", False),
        (".hidden.txt", False),
        ("article.txt~", False),
        ("article.txt.swp", False),
        (".article.txt.swx", False),
        ("article.tmp", False),
        ("4913", False),
        (".#article.txt", False),
        ("#article.txt#", False),
    ],
)
def test_names(tmp_path: Path, name: str, wanted: bool) -> None:
    source_filter = SourceFilter(tmp_path, ["*.txt", "*.md"])
    assert source_filter.matches(name) is wanted
    assert source_filter.matches(f"sub/{name}") is wanted


def test_hidden_folders_and_the_output_and_state_folders_are_skipped(tmp_path: Path) -> None:
    for rel in (
        "a.txt",
        "sub/b.txt",
        ".git/c.txt",
        "feeds/d.txt",
        ".aggregator/e.txt",
        "sub/.cache/f.txt",
        "sub/deeper/g.md",
        "h.png",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x", encoding="utf-8")
    os.symlink(tmp_path / "sub", tmp_path / "loop")  # a folder link is not followed
    source_filter = SourceFilter(
        tmp_path, ["*.txt", "*.md"], excluded=(tmp_path / "feeds", tmp_path / ".aggregator")
    )
    found = scan_sources(source_filter)
    assert sorted(found) == ["a.txt", "sub/b.txt", "sub/deeper/g.md"]
    assert not source_filter.matches("feeds/d.txt")
    info = (tmp_path / "a.txt").stat()
    assert found["a.txt"] == FileStat(info.st_size, info.st_mtime_ns).signature
    assert FileStat.parse(found["a.txt"]) == stat_source(source_filter, "a.txt")
    assert stat_source(source_filter, "gone.txt") is None
    assert stat_source(source_filter, "sub") is None


def test_relative_paths(tmp_path: Path) -> None:
    source_filter = SourceFilter(tmp_path, ["*.txt"])
    assert source_filter.relative(tmp_path / "sub" / "a.txt") == "sub/a.txt"
    assert source_filter.relative("sub/a.txt") == "sub/a.txt"
    assert source_filter.relative(tmp_path.parent / "elsewhere.txt") is None
    assert source_filter.relative(tmp_path / ".." / "x.txt") is None
