"""Which files are article files: the rules a build and the watcher share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aggregator.reading import FileStat, SourceFilter, scan_sources, stat_source


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


# --- symbolic links -----------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """An input folder with a file, a link to it, a link to a file outside, and a folder
    link leading outside."""
    root = tmp_path / "in"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "real.txt").write_text("inside")
    (outside / "secret.txt").write_text("outside")
    (root / "inner-link.txt").symlink_to(root / "real.txt")
    (root / "outer-link.txt").symlink_to(outside / "secret.txt")
    (root / "relative-escape.txt").symlink_to(Path("..") / "outside" / "secret.txt")
    (root / "folder-link").symlink_to(outside, target_is_directory=True)
    return root


def test_links_to_files_outside_the_input_are_never_listed(linked: Path) -> None:
    source_filter = SourceFilter(linked, ["*.txt"])
    assert sorted(scan_sources(source_filter)) == ["inner-link.txt", "real.txt"]
    assert stat_source(source_filter, "inner-link.txt") is not None
    assert stat_source(source_filter, "outer-link.txt") is None
    assert stat_source(source_filter, "relative-escape.txt") is None
    # The watcher hands paths to the build one by one: a folder link on the way counts too.
    assert stat_source(source_filter, "folder-link/secret.txt") is None


def test_links_outside_are_read_when_the_setting_allows_them(linked: Path) -> None:
    source_filter = SourceFilter(linked, ["*.txt"], follow_external_links=True)
    assert sorted(scan_sources(source_filter)) == [
        "inner-link.txt",
        "outer-link.txt",
        "real.txt",
        "relative-escape.txt",
    ]
    assert stat_source(source_filter, "outer-link.txt") is not None


def test_a_link_into_a_hidden_folder_of_the_input_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("hidden")
    (tmp_path / "link.txt").symlink_to(tmp_path / ".git" / "config.txt")
    source_filter = SourceFilter(tmp_path, ["*.txt"])
    assert scan_sources(source_filter) == {}
    assert stat_source(source_filter, "link.txt") is None
