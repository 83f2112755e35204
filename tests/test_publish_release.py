"""publish: the old versions a commit replaces, freed on a thread in the daemon
(`release_in_background`), and the temp files, made without `tempfile`.

On or off, a commit gives the same files, bytes, modes and mtimes; on, the old version's
blocks are freed after the renames (the open old file below loses its last name only then),
and once it is turned off again no hidden name is left in the output folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.model import RenderedFile
from aggregator.output import publish_all, release_in_background, remove_stale_temps
from aggregator.output.publish import sidecar_of
from aggregator.output.temps import TEMP_NAME, temp_name, write_temp


@pytest.fixture
def background() -> Iterator[None]:
    release_in_background(True)
    try:
        yield
    finally:
        release_in_background(False)


def hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".*"))


def test_a_commit_frees_the_old_versions_after_the_renames(
    tmp_path: Path, background: None
) -> None:
    files = [RenderedFile("all.rss.xml", b"<rss>1</rss>"), RenderedFile("topics/a.xml", b"a1")]
    assert all(r.written for r in publish_all(tmp_path, files))
    old = os.open(tmp_path / "all.rss.xml", os.O_RDONLY)
    old_sidecar = os.open(sidecar_of(tmp_path / "all.rss.xml"), os.O_RDONLY)
    try:
        new = [RenderedFile("all.rss.xml", b"<rss>2</rss>"), RenderedFile("topics/a.xml", b"a2")]
        results = publish_all(tmp_path, new)
        assert [(r.path, r.written, r.error) for r in results] == [
            ("all.rss.xml", True, None),
            ("topics/a.xml", True, None),
        ]
        assert (tmp_path / "all.rss.xml").read_bytes() == b"<rss>2</rss>"
        assert (tmp_path / "topics" / "a.xml").read_bytes() == b"a2"
        release_in_background(False)  # waits for the thread's unlinks
        assert os.fstat(old).st_nlink == 0
        assert os.fstat(old_sidecar).st_nlink == 0
        assert hidden(tmp_path) == []
    finally:
        os.close(old)
        os.close(old_sidecar)


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_on_or_off_the_files_are_the_same(tmp_path: Path, on: bool) -> None:
    release_in_background(on)
    try:
        publish_all(tmp_path, [RenderedFile("index.html", b"one")])
        before = (tmp_path / "index.html").stat()
        publish_all(tmp_path, [RenderedFile("index.html", b"two")])
        publish_all(tmp_path, [RenderedFile("index.html", b"two")])  # unchanged: untouched
    finally:
        release_in_background(False)
    after = (tmp_path / "index.html").stat()
    assert (tmp_path / "index.html").read_bytes() == b"two"
    assert after.st_nlink == 1
    assert stat.S_IMODE(after.st_mode) == 0o644
    # The next whole second after the previous version's (`next_mtime_ns`), sidecar alike.
    assert after.st_mtime_ns // 10**9 > before.st_mtime_ns // 10**9
    assert sidecar_of(tmp_path / "index.html").stat().st_mtime_ns == after.st_mtime_ns
    assert hidden(tmp_path) == []


def test_a_second_name_left_by_a_kill_is_a_stale_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "all.atom.xml"
    target.write_bytes(b"old")
    second = temp_name(target)
    os.link(target, second)
    assert TEMP_NAME.match(os.path.basename(second))
    assert remove_stale_temps(tmp_path) == 1
    assert target.read_bytes() == b"old"
    assert hidden(tmp_path) == []


def test_temp_files_are_new_hidden_files_of_the_cleaned_shape(tmp_path: Path) -> None:
    target = tmp_path / "feed.json"
    old = os.umask(0o077)  # a strict umask must not change the mode
    try:
        names = {write_temp(target, b"x" * 10, 1_700_000_000 * 10**9) for _ in range(50)}
    finally:
        os.umask(old)
    assert len(names) == 50
    for name in names:
        status = os.stat(name)
        assert TEMP_NAME.match(os.path.basename(name))
        assert stat.S_IMODE(status.st_mode) == 0o644
        assert status.st_mtime_ns == 1_700_000_000 * 10**9
    assert remove_stale_temps(tmp_path) == 50


def test_a_forked_child_starts_with_the_release_off(background: None) -> None:
    """The child has no release thread: turning it off there must not wait for one."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: say whether it came back, then leave without cleanup
        try:
            release_in_background(False)
            os.write(write, b"ok")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 2) == b"ok"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
