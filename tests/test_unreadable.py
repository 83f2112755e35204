"""A folder that cannot be listed is not a deleted folder: real permission bits (with the
capability that lets root read anything dropped when the tests run as root), a folder replaced
by an unreadable one (a failing mount), the input folder itself, in `build` and in the daemon.

What is checked each time: nothing below the folder is withdrawn (no `removed`, the feeds still
list it), the summary and the log say which folder and why, `build` exits 1 (a partial scan
is not a success), the rest of the input is still built, and once the folder is readable again
nothing comes back as `added`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from articlefiles import write_article
from processes import Aggregator
from services import service_missing
from waiting import TIMEOUT, wait_for

BASE = "https://feeds.example.org/"
# Run as root, the CLI keeps CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, which read through any
# permission bits: they are dropped from its bounding set, so root is held to the bits.
_DROP = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture(scope="module")
def held_to_bits(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command prefix under which a process cannot read what the bits forbid (empty
    when the tests do not run as root); checked on a real folder of mode 000."""
    prefix = _DROP if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        service_missing("setpriv is not installed (apt-get install util-linux)")
    probe = tmp_path_factory.mktemp("probe") / "closed"
    probe.mkdir()
    probe.chmod(0)
    try:
        listed = subprocess.run(
            [*prefix, sys.executable, "-c", f"import os; os.listdir({str(probe)!r})"],
            capture_output=True,
            check=False,
            timeout=TIMEOUT,
        )
    finally:
        probe.chmod(0o755)
    if listed.returncode == 0:
        service_missing(f"cannot drop the capability to read through permission bits ({prefix})")
    return prefix


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[Path]:
    """in/ with two top-level articles and two in in/team/; permissions restored at the end
    (pytest must be able to delete the folder)."""
    inp = tmp_path / "in"
    write_article(inp, "a.txt", "https://x.test/a", title="A")
    write_article(inp, "b.txt", "https://x.test/b", title="B")
    write_article(inp, "team/c.txt", "https://x.test/c", title="C")
    write_article(inp, "team/d.txt", "https://x.test/d", title="D")
    yield tmp_path
    for path in (tmp_path, *tmp_path.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def folder_flags(root: Path) -> list[str]:
    return [
        *("--input", str(root / "in"), "--output", str(root / "out")),
        *("--state", str(root / "state"), "--base-url", BASE),
    ]


def build(prefix: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "aggregator", "build", "-v", *folder_flags(root)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )


def titles(root: Path, feed: str = "all") -> set[str]:
    parsed = feedparser.parse((root / "out" / f"{feed}.atom.xml").read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {e.title for e in parsed.entries}


def changes(done: subprocess.CompletedProcess[str], kind: str) -> list[str]:
    return [line for line in done.stderr.splitlines() if f" {kind} " in f" {line}"]


@pytest.mark.parametrize(
    ("how", "mode"),
    [("cannot be listed", 0), ("can be listed but not searched", 0o644)],
)
def test_a_sub_folder_that_cannot_be_read_keeps_its_articles(
    held_to_bits: list[str], folders: Path, how: str, mode: int
) -> None:
    assert build(held_to_bits, folders).returncode == 0
    assert titles(folders) == {"A", "B", "C", "D"}
    (folders / "in/team").chmod(mode)
    write_article(folders / "in", "e.txt", "https://x.test/e", title="E")
    (folders / "in/b.txt").unlink()
    done = build(held_to_bits, folders)
    assert done.returncode == 1, done.stderr
    # The rest of the input is built: E added, B removed; team's two are kept.
    assert titles(folders) == {"A", "C", "D", "E"}
    assert [line for line in changes(done, "removed") if "team/" in line] == []
    assert "cannot list folder team: Permission denied" in done.stderr
    assert "2 article file(s) stay listed" in done.stderr
    assert "INCOMPLETE: 1 folder(s) could not be listed (team)" in done.stdout
    assert "Traceback" not in done.stderr
    # Readable again: nothing comes back as added, nothing is said about team.
    (folders / "in/team").chmod(0o755)
    again = build(held_to_bits, folders)
    assert again.returncode == 0, again.stderr
    assert changes(again, "added") == []
    assert "INCOMPLETE" not in again.stdout
    assert titles(folders) == {"A", "C", "D", "E"}


def test_check_says_what_it_could_not_list(held_to_bits: list[str], folders: Path) -> None:
    (folders / "in/team").chmod(0)
    done = subprocess.run(
        [
            *held_to_bits,
            sys.executable,
            "-m",
            "aggregator",
            "check",
            "--input",
            str(folders / "in"),
        ],
        cwd=folders,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot list team: Permission denied; its article files were not checked" in done.stdout
    assert "2 article files checked: 2 published, 0 rejected" in done.stdout


def test_an_input_folder_that_cannot_be_listed_empties_no_feed(
    held_to_bits: list[str], folders: Path
) -> None:
    assert build(held_to_bits, folders).returncode == 0
    before = {feed: titles(folders, feed) for feed in ("all", "topics/ai")}
    (folders / "in").chmod(0)
    done = build(held_to_bits, folders)
    assert done.returncode == 1, done.stderr
    assert "cannot list the input folder: Permission denied" in done.stderr
    assert "4 article file(s) stay listed" in done.stderr
    assert "INCOMPLETE: 1 folder(s) could not be listed (the input folder)" in done.stdout
    assert changes(done, "removed") == []
    assert "no file in" not in done.stderr  # not the "nothing matches the patterns" warning
    assert {feed: titles(folders, feed) for feed in before} == before
    (folders / "in").chmod(0o755)
    again = build(held_to_bits, folders)
    assert again.returncode == 0, again.stderr
    assert changes(again, "added") == []
    assert {feed: titles(folders, feed) for feed in before} == before


def test_a_folder_replaced_by_an_unreadable_one_is_a_failing_mount(
    held_to_bits: list[str], folders: Path
) -> None:
    """The mount point left behind when a share drops: the folder is there, and cannot be
    read. When the share comes back, the articles are the same ones."""
    assert build(held_to_bits, folders).returncode == 0
    team = folders / "in/team"
    team.rename(folders / "team.share")
    team.mkdir()
    team.chmod(0)
    done = build(held_to_bits, folders)
    assert done.returncode == 1, done.stderr
    assert "cannot list folder team" in done.stderr
    assert titles(folders) == {"A", "B", "C", "D"}
    team.rmdir()
    (folders / "team.share").rename(team)
    again = build(held_to_bits, folders)
    assert again.returncode == 0, again.stderr
    assert changes(again, "added") == []
    assert changes(again, "updated") == []


def test_the_daemon_keeps_an_unreadable_folder_listed_and_says_so(
    held_to_bits: list[str], folders: Path
) -> None:
    daemon = Aggregator(["run", *folder_flags(folders)], cwd=folders, prefix=held_to_bits)
    proc, lines = daemon.proc, daemon.lines
    try:
        wait_for(lambda: any("build finished" in x for x in lines), "the first build")
        (folders / "in/team").chmod(0)
        # A folder created asks the daemon for a full scan (as the reconcile would later).
        (folders / "in/new").mkdir()
        write_article(folders / "in/new", "e.txt", "https://x.test/e", title="E")
        wait_for(lambda: any("cannot list folder team" in x for x in lines), "the error line")
        wait_for(lambda: "E" in titles(folders), "the new article")
        assert titles(folders) >= {"A", "B", "C", "D"}
        assert not [x for x in lines if "removed team/" in x]
        (folders / "in/team").chmod(0o755)
        write_article(folders / "in/team", "f.txt", "https://x.test/f", title="F")
        wait_for(lambda: "F" in titles(folders), "a new article in the folder readable again")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=TIMEOUT)
    finally:
        daemon.stop()  # reaps, or kills what is left, and joins the reader
    log = "\n".join(lines)
    assert code == 0, log
    assert not [x for x in lines if "added team/c.txt" in x or "added team/d.txt" in x], log
    assert "Traceback" not in log
