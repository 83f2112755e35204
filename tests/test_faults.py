"""The fault suite: real `aggregator` processes killed, disks filled, catalogs damaged,
watchers flooded; after each, the next run must converge to a clean build's bytes and
leave no temp file. Run it alone with `./run.sh test -m faults`; docs/reliability.md
describes the method and the results.

Crashes at chosen points use `AGGREGATOR_FAULT` (aggregator/faults.py): the process SIGKILLs
itself there, so every point is hit on every run, not by luck of timing. Full disks are
small tmpfs mounts (root only: skipped with the reason elsewhere, failed under CI=true).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from articlefiles import article_text, write_article
from processes import stopped
from services import service_missing
from waiting import wait_for

from aggregator.config import Settings
from aggregator.daemon import Daemon
from aggregator.errors import AggregatorError, CatalogError
from aggregator.events import ArticleAdded, ChangeEvent
from aggregator.pipeline import Builder

pytestmark = pytest.mark.faults

BASE = "https://feeds.example.org/"


# --- helpers ------------------------------------------------------------------------------


def write_corpus(folder: Path, count: int, *, start: int = 0) -> None:
    """`count` article files across 20 topics and 10 providers (31 feeds: enough that
    both parsing and rendering run in worker processes), a ninth of them unpublished."""
    folder.mkdir(parents=True, exist_ok=True)
    # One YAML dump, then plain replacements: dumping each file is most of the cost.
    template = article_text(
        "https://news.example.com/@ID@",
        "Article @ID@",
        topics=["Topic @TOPIC@"],
        provider={"name": "Provider @PROVIDER@", "domain": "p@PROVIDER@.example.com"},
        date="@DATE@",
    )
    for i in range(start, start + count):
        date = f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
        text = (
            template.replace("@ID@", str(i))
            .replace("@TOPIC@", str(i % 20))
            .replace("@PROVIDER@", str(i % 10))
            .replace("@DATE@", f"'{date}'" if "'@DATE@'" not in template else date)
        )
        if i % 9 == 0:
            text = text.replace("published: true", "published: false")
        (folder / f"a{i:05d}.md").write_text(text, encoding="utf-8")


def edit_corpus(folder: Path) -> None:
    """Changes of every kind, none of which empties a feed: edits, deletions, unpublishing,
    additions (one in a new topic, so the indexes change), a move."""
    for i in range(1, 40, 4):
        text = (folder / f"a{i:05d}.md").read_text(encoding="utf-8")
        (folder / f"a{i:05d}.md").write_text(text.replace("Article", "Edited"), "utf-8")
        # A fixed mtime: an edit's date (Atom <updated>) is its file's mtime, and every run
        # of these edits must give the same bytes.
        os.utime(folder / f"a{i:05d}.md", (1_700_000_000 + i, 1_700_000_000 + i))
    for i in (2, 22, 42):
        (folder / f"a{i:05d}.md").unlink()
    for i in (3, 23, 43):
        path = folder / f"a{i:05d}.md"
        path.write_text(path.read_text("utf-8").replace("published: true", "published: false"))
    write_corpus(folder, 10, start=5000)
    (folder / "new-topic.md").write_text(
        article_text("https://news.example.com/new", "New", topics=["Brand New Topic"]), "utf-8"
    )
    (folder / "moved").mkdir()
    os.replace(folder / "a00005.md", folder / "moved" / "a00005.md")


@dataclass(frozen=True)
class Folders:
    """One input, output and state folder, as the command line takes them."""

    input: Path
    output: Path
    state: Path

    @classmethod
    def under(cls, root: Path, input_folder: Path | None = None) -> Folders:
        return cls(input_folder or root / "in", root / "out", root / "state")

    def args(self) -> list[str]:
        return [
            "--input",
            str(self.input),
            "--output",
            str(self.output),
            "--state",
            str(self.state),
            "--base-url",
            BASE,
        ]

    def settings(self, **changes: object) -> Settings:
        base = Settings(
            input=self.input,
            output=self.output,
            state=self.state,
            base_url=BASE,
            workers=2,
            debounce_seconds=0.05,
            debounce_max_seconds=0.5,
            reconcile_seconds=3600.0,
        )
        return replace(base, **changes)  # type: ignore[arg-type]


def aggregator(
    folders: Folders, *args: str, fault: str | None = None, tag: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m aggregator ARGS` to its end (or its crash), with its output.

    `tag` marks the process and every process it starts (workers, forkserver) in their
    environment, so a test can find any that outlive it. Returning at all means every
    holder of the output pipes is gone: a worker that outlived its build kept them open.
    """
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_FAULT"}
    if fault is not None:
        env["AGGREGATOR_FAULT"] = fault
    env["AGGREGATOR_TEST_TAG"] = tag or uuid.uuid4().hex
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args, *folders.args()],
        cwd=folders.input.parent,  # no config/aggregator.yaml there
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def build(
    folders: Folders, *extra: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    return aggregator(folders, "build", *extra, fault=fault)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (relative path → bytes)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*")] if folder.exists() else []


def clean_build(source: Path, root: Path) -> dict[str, bytes]:
    """The output of one uninterrupted build of a copy of `source`, in its own folders."""
    shutil.copytree(source, root / "in")
    folders = Folders.under(root)
    done = build(folders)
    assert done.returncode == 0, done.stderr
    return tree(folders.output)


def assert_converged(folders: Folders, expected: dict[str, bytes]) -> None:
    """The output is byte for byte a clean build's, and no temp file is left."""
    assert temp_files(folders.output) == []
    got = tree(folders.output)
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if got[name] != expected[name]]
    assert differing == [], f"differ from a clean build: {differing}"


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1 with one clear message (every needle in it), never a traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def tagged_processes(tag: str) -> list[int]:
    """PIDs of live processes whose environment carries `tag`."""
    marker = f"AGGREGATOR_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


# --- kills at chosen points -----------------------------------------------------------------

# Every step of a build where a crash leaves something half done.
COLD_POINTS = [
    "after-scan",
    "after-sync",
    "after-stage:all.rss.xml",
    "after-rename:all.rss.xml",
    "after-rename:topics/topic-7.atom.xml",
    "after-feeds-recorded",
    "after-stage:index.html",
    "after-rename:index.opml",  # between the two indexes
]
INCREMENTAL_POINTS = [
    "after-sync",
    "after-stage:all.atom.xml",
    "after-rename:all.rss.xml",
    "after-feeds-recorded",
    "after-rename:index.opml",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "in"
    write_corpus(folder, 300)
    return folder


@pytest.fixture(scope="module")
def clean(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return clean_build(corpus, tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="module")
def clean_edited(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """An uninterrupted build of the corpus, then one of its edits: what an interrupted
    build of the edits must converge to. (Not a build of the edited files from nothing: an
    edit's date, Atom <updated>, is known only to a catalog that saw the version before.)"""
    root = tmp_path_factory.mktemp("clean-edited")
    clean_build(corpus, root)
    folders = Folders.under(root)
    edit_corpus(folders.input)
    done = build(folders)
    assert done.returncode == 0, done.stderr
    return tree(folders.output)


@pytest.mark.parametrize("point", COLD_POINTS)
def test_a_cold_build_killed_at_any_step_converges(
    point: str, corpus: Path, clean: dict[str, bytes], tmp_path: Path
) -> None:
    shutil.copytree(corpus, tmp_path / "in")
    folders = Folders.under(tmp_path)
    killed = build(folders, fault=point)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    again = build(folders, "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert_converged(folders, clean)


@pytest.mark.parametrize("point", INCREMENTAL_POINTS)
def test_an_incremental_build_killed_at_any_step_converges(
    point: str,
    corpus: Path,
    clean_edited: dict[str, bytes],
    tmp_path: Path,
) -> None:
    shutil.copytree(corpus, tmp_path / "in")
    folders = Folders.under(tmp_path)
    assert build(folders).returncode == 0
    edit_corpus(folders.input)
    killed = build(folders, fault=point)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    again = build(folders, "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert_converged(folders, clean_edited)
    # And it stays converged: nothing left pending that a later build would still change.
    last = build(folders)
    assert "feeds: 0 written" in last.stdout, last.stdout
    assert_converged(folders, clean_edited)


def test_builds_killed_at_random_moments_converge(
    corpus: Path, clean_edited: dict[str, bytes], tmp_path: Path
) -> None:
    """Kills at moments no crash point names (seeded, so a failure can be replayed)."""
    pace = random.Random(6)
    for round_ in range(3):
        root = tmp_path / str(round_)
        shutil.copytree(corpus, root / "in")
        folders = Folders.under(root)
        assert build(folders).returncode == 0
        edit_corpus(folders.input)
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "build", *folders.args()],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # A random moment of the build (about 0.6 s here), not a wait for a condition.
        time.sleep(pace.uniform(0.1, 0.7))
        process.kill()
        process.wait()
        again = build(folders, "--wait", "0")
        assert again.returncode == 0, again.stderr
        assert_converged(folders, clean_edited)


# --- workers and the lock after a kill ----------------------------------------------------


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 files: parsing outlasts the first synced batch (1,000), so a kill there lands
    while the workers still parse."""
    folder = tmp_path_factory.mktemp("big") / "in"
    write_corpus(folder, 3000)
    return folder


@pytest.fixture(scope="module")
def clean_big(big_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return clean_build(big_corpus, tmp_path_factory.mktemp("clean-big"))


def test_workers_die_with_a_killed_build_and_never_hold_the_lock(
    big_corpus: Path, clean_big: dict[str, bytes], tmp_path: Path
) -> None:
    shutil.copytree(big_corpus, tmp_path / "in")
    folders = Folders.under(tmp_path)
    tag = uuid.uuid4().hex
    started = time.monotonic()
    # Returns only once every holder of the output pipes is gone, workers included.
    killed = aggregator(folders, "build", fault="after-first-sync-batch", tag=tag, timeout=30)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    assert time.monotonic() - started < 20
    wait_for(lambda: tagged_processes(tag) == [], "the workers to die")
    # The lock is free at once: no wait allowed.
    again = build(folders, "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert "3000 article files read" in again.stdout  # the killed sync was rolled back
    assert_converged(folders, clean_big)


def daemon_process(folders: Folders, tag: str, fault: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_FAULT"}
    env["AGGREGATOR_TEST_TAG"] = tag
    if fault is not None:
        env["AGGREGATOR_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", *folders.args(), "--log-level", "DEBUG"],
        cwd=folders.input.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize(
    ("point", "size"), [("after-first-sync-batch", "big"), ("after-rename:index.opml", "small")]
)
def test_a_killed_daemon_leaves_no_process_and_the_next_run_converges(
    point: str, size: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The daemon's workers come from a forkserver: it and they must go with the daemon."""
    source: Path = request.getfixturevalue("big_corpus" if size == "big" else "corpus")
    expected: dict[str, bytes] = request.getfixturevalue("clean_big" if size == "big" else "clean")
    shutil.copytree(source, tmp_path / "in")
    folders = Folders.under(tmp_path)
    tag = uuid.uuid4().hex
    process = daemon_process(folders, tag, fault=point)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, stderr
    wait_for(lambda: tagged_processes(tag) == [], "the forkserver and workers to die")
    again = build(folders, "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert_converged(folders, expected)


def test_a_deleted_lock_file_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    write_corpus(tmp_path / "in", 3)
    folders = Folders.under(tmp_path)
    with Builder(folders.settings()) as first:
        (folders.state / "lock").unlink()
        with pytest.raises(AggregatorError, match=r"holds the lock"):
            Builder(folders.settings(lock_wait_seconds=0.0))
        first.build()


def test_a_replaced_state_folder_stops_the_writer_that_held_it(tmp_path: Path) -> None:
    write_corpus(tmp_path / "in", 3)
    folders = Folders.under(tmp_path)
    builder = Builder(folders.settings())
    try:
        os.replace(folders.state, tmp_path / "moved-state")
        folders.state.mkdir()
        with pytest.raises(CatalogError, match="deleted or replaced"):
            builder.build()
    finally:
        builder.close()


def test_a_build_beside_the_daemon_says_at_once_that_the_daemon_holds_the_lock(
    tmp_path: Path,
) -> None:
    write_corpus(tmp_path / "in", 3)
    folders = Folders.under(tmp_path)
    tag = uuid.uuid4().hex
    daemon = daemon_process(folders, tag)
    try:
        assert daemon.stderr is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(daemon.stderr or ()))
        reader.start()
        wait_for(lambda: any("build finished" in x for x in lines), "the daemon's first build")
        other = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "build", *folders.args(), "--wait", "30"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert other.stderr is not None
        # The first line comes at once, long before the 30 s wait is over.
        started = time.monotonic()
        first = other.stderr.readline()
        assert time.monotonic() - started < 10
        assert f"the daemon (`aggregator run`, PID {daemon.pid})" in first, first
        assert "waiting up to 30 s" in first, first
        other.kill()
        other.wait()
        other.stderr.close()
        refused = build(folders, "--wait", "0.2")
        assert_clean_failure(refused, f"the daemon (`aggregator run`, PID {daemon.pid})")
        assert "stop it first" in refused.stderr
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        reader.join()
        if daemon.stderr is not None:
            daemon.stderr.close()


# --- full disks -------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where` (needs root). Skipped elsewhere, failed under CI."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        service_missing(f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the disk holding `folder` until at most `leave` bytes are free; the filler file."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with filler.open("wb") as out:
        block = b"\0" * 65536
        remaining = max(0, free - leave)
        try:
            while remaining > 0:
                remaining -= out.write(block[: min(len(block), remaining)])
            out.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def test_a_full_state_disk_is_a_clear_error_and_the_next_build_converges(
    corpus: Path, clean: dict[str, bytes], tmp_path: Path
) -> None:
    shutil.copytree(corpus, tmp_path / "in")
    with tmpfs(tmp_path / "state", "8m") as disk:
        folders = Folders.under(tmp_path)
        filler = fill(disk, leave=64 * 1024)
        full = build(folders)
        assert_clean_failure(full, "disk", "full", "free some space")
        filler.unlink()
        again = build(folders, "--wait", "0")
        assert again.returncode == 0, again.stderr
        assert_converged(folders, clean)


def test_a_build_failing_after_its_sync_committed_says_so_and_keeps_its_changes(
    corpus: Path, clean: dict[str, bytes], tmp_path: Path
) -> None:
    """The catalog took the changes in, then the render's own record could not be written
    (here: another process holds the catalog's write lock): the error says the changes are
    in, they are still logged, and the next build writes their feeds."""
    shutil.copytree(corpus, tmp_path / "in")
    folders = Folders.under(tmp_path)
    files = sum(1 for p in folders.input.rglob("*.md"))
    published = {f"a{i:05d}.md" for i in range(300) if i % 9 != 0}  # as write_corpus makes
    env = {**os.environ, "AGGREGATOR_FAULT": "stop-at:after-sync"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "build", "-v", *folders.args()],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: stopped(proc.pid), "the build to stop after its sync")
        other = sqlite3.connect(folders.state / "catalog.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a second writer, until the build has failed
        proc.send_signal(signal.SIGCONT)
        _, stderr = proc.communicate(timeout=120)
        other.execute("ROLLBACK")
        other.close()
    finally:
        proc.kill()
        proc.wait()
    assert_clean_failure(
        subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr),
        "locked",
        f"the catalog had already taken in the changes of {files} files",
        "written by the next build",
    )
    # Told once, here: the next build finds those files as the catalog has them.
    assert set(re.findall(r"\badded (a\d{5}\.md):", stderr)) == published, stderr
    again = build(folders, "-v", "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert re.findall(r"\badded (a\d{5}\.md):", again.stderr) == [], again.stderr
    assert_converged(folders, clean)


def test_a_new_state_folder_on_a_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    write_corpus(tmp_path / "in", 3)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        fill(disk)
        folders = Folders(tmp_path / "in", tmp_path / "out", disk / "new" / "state")
        assert_clean_failure(build(folders), "full", "free some space")


def test_a_full_output_disk_fails_the_feeds_cleanly_and_the_next_build_converges(
    corpus: Path, clean: dict[str, bytes], tmp_path: Path
) -> None:
    shutil.copytree(corpus, tmp_path / "in")
    with tmpfs(tmp_path / "out", "8m") as disk:
        folders = Folders.under(tmp_path)
        filler = fill(disk, leave=48 * 1024)
        full = build(folders)
        assert full.returncode == 1, full.stderr
        assert "Traceback" not in full.stderr
        assert "failed" in full.stdout
        assert temp_files(disk) == []
        filler.unlink()
        again = build(folders, "--wait", "0")
        assert again.returncode == 0, again.stderr
        assert_converged(folders, clean)


class Added:
    """A sink counting the distinct articles added (called on the daemon's build thread)."""

    def __init__(self) -> None:
        self.sources: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, event: ChangeEvent) -> None:
        if isinstance(event, ArticleAdded):
            with self._lock:
                self.sources.add(event.source)

    def __len__(self) -> int:
        with self._lock:
            return len(self.sources)


@contextlib.contextmanager
def daemon_running(settings: Settings, added: Added) -> Iterator[Daemon]:
    daemon = Daemon(settings, sinks=[added])
    daemon.start()
    try:
        yield daemon
    finally:
        assert daemon.stop(), "the daemon did not stop in time"


def test_the_daemon_retries_a_build_that_failed_on_a_full_state_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator")
    write_corpus(tmp_path / "in", 5, start=1)  # all five published
    later = sum(i % 9 != 0 for i in range(100, 400))
    with tmpfs(tmp_path / "state", "8m") as disk:
        folders = Folders.under(tmp_path)
        added = Added()
        with daemon_running(folders.settings(), added) as daemon:
            wait_for(lambda: len(added) == 5, "the first build")
            filler = fill(disk)
            write_corpus(folders.input, 300, start=100)
            wait_for(
                lambda: daemon.retries.build_failures >= 3,
                "three failed tries (1 s, then 2 s apart)",
            )
            failures = [r for r in caplog.records if "build failed" in r.getMessage()]
            assert len(failures) == 1, [r.getMessage() for r in failures]
            assert "full" in failures[0].getMessage()
            assert failures[0].exc_info is None  # a clear line, not a traceback
            filler.unlink()
            # The next try is at most 8 s away; no reconcile (an hour) is needed. (The wait
            # is the usual bound: 300 files on a loaded machine may take a while to build.)
            wait_for(lambda: len(added) == 5 + later, "the retried build")
        assert any("succeeded again" in r.getMessage() for r in caplog.records)


# --- damaged catalogs -------------------------------------------------------------------------


def damage(catalog: Path, how: str) -> None:
    """Damage a catalog file as a crash, a bad disk or a careless hand would."""
    if how == "truncated":
        with catalog.open("r+b") as db:
            db.truncate(catalog.stat().st_size // 2)
    elif how == "random-bytes":
        data = bytearray(catalog.read_bytes())
        noise = random.Random(10)
        # Page 1 (the schema) and a stretch of data pages.
        for start in (100, len(data) // 3):
            for i in range(start, min(len(data), start + 2048)):
                data[i] = noise.randrange(256)
        catalog.write_bytes(bytes(data))
    else:  # an SQL statement, run with the sqlite3 shell's library (through Python)
        script = (
            f"import sqlite3; db = sqlite3.connect({str(catalog)!r}); db.executescript({how!r})"
        )
        subprocess.run([sys.executable, "-c", script], check=True)


DAMAGE = {
    "truncated": "truncated",
    "random-bytes": "random-bytes",
    "dropped-table": "DROP TABLE feeds;",
    "not-utf8": "UPDATE files SET article = CAST(x'ff00fe' AS TEXT) WHERE rowid = 3;",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_catalog_is_a_clear_error_and_rebuild_converges(
    kind: str, corpus: Path, clean: dict[str, bytes], tmp_path: Path
) -> None:
    shutil.copytree(corpus, tmp_path / "in")
    folders = Folders.under(tmp_path)
    assert build(folders).returncode == 0
    damage(folders.state / "catalog.sqlite3", DAMAGE[kind])
    # Touch every file, so the build must read the catalog's rows for all of them.
    for path in folders.input.iterdir():
        os.utime(path)
    broken = build(folders)
    assert_clean_failure(broken, "catalog", "aggregator catalog rebuild")
    checked = aggregator(folders, "catalog", "check")
    assert checked.returncode == 1, checked.stdout
    assert "Traceback" not in checked.stderr
    rebuilt = aggregator(folders, "catalog", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "damaged-" in rebuilt.stdout
    assert_converged(folders, clean)
    assert aggregator(folders, "catalog", "check").returncode == 0


def test_catalog_check_of_a_state_folder_without_a_catalog_is_not_an_error(
    tmp_path: Path,
) -> None:
    write_corpus(tmp_path / "in", 1)
    checked = aggregator(Folders.under(tmp_path), "catalog", "check")
    assert checked.returncode == 0, checked.stderr
    assert "no catalog yet" in checked.stdout


def test_rebuild_keeps_the_guids_it_can_read(tmp_path: Path) -> None:
    """An article whose URL changed after publication keeps its first URL as GUID; a
    rebuild from the files alone would give it the new one."""
    write_corpus(tmp_path / "in", 30)
    folders = Folders.under(tmp_path)
    assert build(folders).returncode == 0
    write_article(folders.input, "a00004.md", "https://news.example.com/renamed", title="R")
    assert build(folders).returncode == 0
    before = tree(folders.output)
    assert b'<guid isPermaLink="false">https://news.example.com/4</guid>' in before["all.rss.xml"]
    damage(folders.state / "catalog.sqlite3", "DROP TABLE items;")
    rebuilt = aggregator(folders, "catalog", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert_converged(folders, before)


# --- a flooded watcher ------------------------------------------------------------------------


@contextlib.contextmanager
def inotify_queue(limit: int) -> Iterator[None]:
    """Lower the kernel's inotify queue (root only) while the block runs; restored after.

    An inotify instance takes the limit when it is created, so the block needs only to
    cover the watcher's start: other processes on the machine see the low value for a few
    milliseconds.
    """
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    try:
        previous = knob.read_text()
        knob.write_text(str(limit))
    except OSError as exc:
        service_missing(f"cannot set {knob} (root needed): {exc.strerror}")
    try:
        yield
    finally:
        knob.write_text(previous)


def test_an_inotify_overflow_starts_a_full_scan_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aggregator")
    write_corpus(tmp_path / "in", 1, start=1)
    sources = []
    for n in range(3):
        sources.append(tmp_path / f"source{n}")
        write_corpus(sources[-1], 1000, start=10_000 * (n + 1))
    expected = 1 + sum(
        i % 9 != 0 for n in range(3) for i in range(10_000 * (n + 1), 10_000 * (n + 1) + 1000)
    )
    folders = Folders.under(tmp_path)
    added = Added()
    with inotify_queue(64):
        daemon = Daemon(folders.settings(), sinks=[added])
        daemon.start()
    try:
        wait_for(lambda: len(added) == 1, "the first build")
        # Files only, into a folder already watched: no folder event asks for a scan, and
        # the reconcile is an hour away. Only the overflow can bring the lost files in.
        copies = [
            subprocess.Popen(["sh", "-c", f'cp "{source}"/* "{folders.input}"/'])
            for source in sources
        ]
        # The watcher must fall behind, whatever the machine's speed: this thread keeps the
        # GIL for a while (pure Python, no call that releases it, a long switch interval),
        # so watchdog's reader thread cannot drain the kernel's queue of 64 events while
        # the copies make thousands. (On a busy machine it fell behind by itself; on a
        # quiet one it once kept up, and nothing overflowed.)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(60.0)
        try:
            until = time.monotonic() + 2.0
            while time.monotonic() < until:
                pass
        finally:
            sys.setswitchinterval(interval)
        for copy in copies:
            assert copy.wait() == 0
        copied = time.monotonic()
        wait_for(lambda: len(added) == expected, "every copied file published", timeout=60)
        seconds = time.monotonic() - copied
    finally:
        assert daemon.stop(), "the daemon did not stop in time"
    assert daemon.watcher is not None
    assert daemon.watcher.overflows >= 1
    assert any("inotify queue overflowed" in r.getMessage() for r in caplog.records)
    overflows = daemon.watcher.overflows
    print(f"3,000 files, {overflows} overflow(s): all published {seconds:.2f} s after the copies")
