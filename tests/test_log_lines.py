"""Log lines that cannot be forged or flooded, through the real CLI and the real daemon: a file
name holding a newline stays on one line, and a folder renamed is logged as one move.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from articlefiles import article_text, write_article
from waiting import TIMEOUT, wait_for

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MOVED = 1_050


def aggregator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=ENV,
    )


FOLDERS = ("--input", "in", "--output", "out", "--state", "st")


def many(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for n in range(count):
        (folder / f"{n:04}.txt").write_text(
            article_text(f"https://example.com/{n}", f"Article {n}"), encoding="utf-8"
        )


def test_a_file_name_with_a_newline_cannot_forge_a_log_line(tmp_path: Path) -> None:
    forged = "2026-01-01 00:00:00,000 ERROR forged line"
    write_article(tmp_path / "in", f"a\n{forged}.txt", "https://a.example.com/")
    write_article(tmp_path / "in", "esc\x1b[31mred.txt", "https://b.example.com/")
    (tmp_path / "in/bad\nname.txt").write_text("no front matter", encoding="utf-8")
    done = aggregator("build", *FOLDERS, "-v", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    lines = done.stderr.splitlines()
    assert not [line for line in lines if line.startswith(forged)], done.stderr
    assert "\x1b" not in done.stderr
    assert any("'a\\n2026-01-01" in line and line.startswith("20") for line in lines)
    assert any("'bad\\nname.txt'" in line and "WARNING" in line for line in lines)


def test_a_folder_renamed_is_one_move_line_in_a_build(tmp_path: Path) -> None:
    many(tmp_path / "in/a", MOVED)
    first = aggregator("build", *FOLDERS, "-v", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    feed = (tmp_path / "out/all.rss.xml").read_bytes()
    (tmp_path / "in/a").rename(tmp_path / "in/b")
    done = aggregator("build", *FOLDERS, "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{MOVED:,} articles moved from a/ to b/" in done.stderr, done.stderr[-2000:]
    for word in (" removed ", " added ", "unpublished "):
        assert word not in done.stderr.replace(", 0 removed", ""), done.stderr[-2000:]
    # -v shows DEBUG too: above it, the move is one line, not 2,100.
    above_debug = [line for line in done.stderr.splitlines() if " DEBUG " not in line]
    assert len(above_debug) < 10, above_debug
    # The GUIDs and the bytes are unchanged: the feed was not rewritten.
    assert (tmp_path / "out/all.rss.xml").read_bytes() == feed
    # Each file's move is at DEBUG.
    assert " DEBUG moved a/0007.txt to b/0007.txt: 'Article 7'" in done.stderr


def moves_logged(text: str) -> int:
    """Articles the INFO lines say moved from a/ to b/ (summaries and single moves)."""
    summaries = re.findall(r" INFO ([\d,]+) articles? moved from a/ to b/", text)
    singles = re.findall(r" INFO moved a/\S+ to b/", text)
    return sum(int(n.replace(",", "")) for n in summaries) + len(singles)


def test_a_folder_renamed_under_the_daemon_is_one_move_line(tmp_path: Path) -> None:
    many(tmp_path / "in/a", MOVED)
    log = tmp_path / "daemon.log"
    with log.open("w") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", *FOLDERS],
            cwd=tmp_path,
            stderr=sink,
            env=ENV,
        )
    try:
        wait_for(lambda: "catch-up scan" in log.read_text(), "the daemon's first build")
        wait_for(lambda: "build finished" in log.read_text(), "the first build to finish")
        (tmp_path / "in/a").rename(tmp_path / "in/b")
        # One line, unless the watcher's events reach two builds (a loaded machine): then
        # one line per build, the counts adding up, and still no removal or addition.
        wait_for(lambda: moves_logged(log.read_text()) == MOVED, "the move lines")
        assert f"{MOVED:,} articles moved from a/ to b/" in log.read_text() or (
            log.read_text().count(" moved from a/ to b/") <= 3
        )
        # Same file, a file that appears: the daemon carries on after the move.
        write_article(tmp_path / "in", "new.txt", "https://new.example.com/")
        wait_for(lambda: "added new.txt" in log.read_text(), "the next change")
        text = log.read_text()
        assert "removed a/" not in text
        assert "added b/" not in text
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(TIMEOUT) == 0, log.read_text()[-2000:]


def test_an_edit_and_a_move_say_which_feeds_the_article_entered_and_left(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in"
    write_article(source, "a.txt", "https://a.example.com/", title="A", topics=["Cats"])
    write_article(source, "b.txt", "https://b.example.com/", title="B", topics=["Owls"])
    assert aggregator("build", *FOLDERS, cwd=tmp_path).returncode == 0
    write_article(source, "a.txt", "https://a.example.com/", title="A", topics=["Dogs"])
    (source / "b.txt").unlink()
    write_article(source, "c.txt", "https://b.example.com/", title="B", topics=["Bats"])
    done = aggregator("build", *FOLDERS, "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    updated = [line for line in lines if "updated a.txt: 'A' in " in line]
    assert len(updated) == 1, done.stderr
    assert updated[0].endswith("; entered topics/dogs; left topics/cats"), updated
    moved = [line for line in lines if "moved b.txt to c.txt: 'B'" in line]
    assert len(moved) == 1, done.stderr
    assert moved[0].endswith("; entered topics/bats; left topics/owls"), moved
