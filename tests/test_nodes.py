"""A node's identity and the cluster's bounded waits, on a real PostgreSQL with real
`aggregator run` / `aggregator build` processes.

- a node name is exclusive: a second process with a live name is refused (exit 2, naming
  where the first runs); once the first is SIGKILLed, the name can be taken;
- a `postgresql://` catalog without psycopg installed says how to install it (exit 2);
- `aggregator config` never prints the database password;
- a node SIGSTOPped while it holds the cluster's write lock is cut off by the server: another
  node still publishes a drop within a bound, and once the paused one resumes it redoes its
  sync (same GUIDs, nothing lost or doubled) and both outputs converge;
- each class of PostgreSQL error the test server can produce gets its own hint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from articlefiles import write_article
from building import folder_settings
from processes import stop_process, stopped
from waiting import wait_for

from aggregator.catalog import Catalog
from aggregator.errors import NodeNameInUse
from aggregator.pipeline import Builder

BASE = "https://feeds.example.org/"
# A drop on a healthy node while another stalls holding the lock: published within this
# (the server cuts the stalled session off after 15 s idle in its transaction).
STALL_BOUND_SECONDS = 30.0


def outputs(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One `aggregator` command to its end: exit code, stdout and stderr."""
    return subprocess.run(args, check=False, cwd=cwd, capture_output=True, text=True, timeout=60)


class Node:
    """One `aggregator` process with its own input, output and state folders."""

    def __init__(self, root: Path, folder: str, url: str, name: str) -> None:
        self.name = name
        self.url = url
        self.input = root / folder / "in"
        self.output = root / folder / "out"
        self.state = root / folder / "state"
        self.log = root / folder / "log"
        self.input.mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self, command: str) -> list[str]:
        return [
            sys.executable, "-m", "aggregator", command,
            "--input", str(self.input), "--output", str(self.output),
            "--state", str(self.state), "--base-url", BASE,
            "--catalog", self.url, "--node", self.name,
        ]  # fmt: skip

    def start(self, **env: str) -> None:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                self.args("run"),
                cwd=self.input.parent,  # no config/aggregator.yaml there
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def watching(self) -> bool:
        """Started, and its first build is done."""
        return "build finished" in self.text()

    def stop(self) -> int | None:
        return stop_process(self.proc, 15)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.stop()


# --- a node's name is exclusive ---------------------------------------------------------------


def test_a_live_node_name_is_refused_and_a_killed_ones_is_taken_over(
    tmp_path: Path, postgres_url: str, nodes: list[Node]
) -> None:
    first = Node(tmp_path, "a", postgres_url, "n1")
    twin = Node(tmp_path, "b", postgres_url, "n1")  # a copied config: another folder
    nodes += [first, twin]
    write_article(first.input, "one.md", "https://example.com/one")
    write_article(twin.input, "two.md", "https://example.com/two")
    first.start()
    wait_for(first.watching, "the first n1 to start")
    assert first.proc is not None

    refused = cli(twin.args("run"), twin.input.parent)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    message = refused.stderr.strip()
    assert message.startswith("aggregator: node n1: is already running on host "), message
    assert f"(pid {first.proc.pid}, since " in message
    assert "--node NAME" in message
    # A one-shot build with the name is refused the same way: its scan would withdraw
    # every article of the live n1 that is not in this folder.
    build = cli(twin.args("build"), twin.input.parent)
    assert build.returncode == 2, build.stderr
    assert "node n1: is already running on host" in build.stderr
    # Nothing of the live node's was withdrawn by either attempt.
    with psycopg.connect(postgres_url) as conn:
        listed = conn.execute("SELECT url, path FROM items").fetchall()
    assert listed == [("https://example.com/one", "n1/one.md")]

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    # The dead node's session ended with it: the name is free to take over.
    twin.start()
    wait_for(twin.watching, "the second n1 to start once the first was killed")
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT pid FROM cluster_nodes WHERE name = 'n1'").fetchone()
    assert twin.proc is not None
    assert row == (twin.proc.pid,)
    assert twin.stop() == 0


def test_two_catalogs_of_one_node_in_one_process_are_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = folder_settings(tmp_path, catalog=postgres_url, node="n1")
    with Builder(settings):
        other = folder_settings(tmp_path / "other", catalog=postgres_url, node="n1")
        with pytest.raises(
            NodeNameInUse, match=r"node n1: is already running on host \S+ \(pid \d+, since "
        ):
            Builder(other)
        # A reader (render workers, health checks) claims nothing.
        Catalog(postgres_url, readonly=True, node="n1").close()
        # Another name is another node.
        with Builder(folder_settings(tmp_path / "n2", catalog=postgres_url, node="n2")):
            pass
    with Builder(other):  # released with the first
        pass


_BLOCK_PSYCOPG = textwrap.dedent(
    """
    import sys

    class NoPsycopg:  # as if the package were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "psycopg" or name.startswith("psycopg."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPsycopg())
    from aggregator.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_postgresql_catalog_without_psycopg_says_how_to_install_it(tmp_path: Path) -> None:
    node = Node(tmp_path, "a", "postgresql://feeds@127.0.0.1:9/feeds", "n1")
    for command in ("build", "run"):
        done = cli([sys.executable, "-c", _BLOCK_PSYCOPG, *node.args(command)[3:]], tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "needs the PostgreSQL driver (psycopg 3)" in done.stderr
        assert "pip install 'aggregator[postgresql]'" in done.stderr


def test_the_database_password_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql://feeds:s3cr3t-pw@db.example.org:5433/feeds?sslmode=require"
    shown = cli([sys.executable, "-m", "aggregator", "config", "--catalog", url], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "s3cr3t-pw" not in shown.stdout + shown.stderr
    assert "catalog: postgresql://feeds:***@db.example.org:5433/feeds?sslmode=require" in (
        shown.stdout
    )
    bad = cli(
        [sys.executable, "-m", "aggregator", "config", "--catalog", "mysql://u:s3cr3t-pw@h/x"],
        tmp_path,
    )
    assert bad.returncode == 2
    assert "s3cr3t-pw" not in bad.stdout + bad.stderr
    assert "mysql://u:***@h/x" in bad.stderr


# --- no lock can freeze the cluster -----------------------------------------------------------


def listed_urls(folder: Path) -> set[str]:
    path = folder / "all.json"
    if not path.exists():
        return set()
    import json

    return {item["url"] for item in json.loads(path.read_bytes())["items"]}


@pytest.mark.faults
def test_a_node_paused_holding_the_write_lock_freezes_nobody(
    tmp_path: Path, postgres_url: str, nodes: list[Node]
) -> None:
    healthy = Node(tmp_path, "n2", postgres_url, "n2")
    paused = Node(tmp_path, "n1", postgres_url, "n1")
    nodes += [healthy, paused]
    write_article(healthy.input, "first.md", "https://example.com/first")
    healthy.start()
    wait_for(healthy.watching, "n2 to start")
    for index in range(3):
        write_article(paused.input, f"p{index}.md", f"https://example.com/p{index}")
    # n1 stops itself (SIGSTOP) inside its first sync, holding the cluster-wide write lock.
    paused.start(AGGREGATOR_FAULT="stop-at:sync-locked")
    assert paused.proc is not None
    wait_for(lambda: stopped(paused.proc.pid), "n1 to stop while holding the write lock")
    with psycopg.connect(postgres_url) as conn:
        guids_before = dict(conn.execute("SELECT url, guid FROM items").fetchall())
        holders = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s",
            (0x61676772_0001 & 0xFFFFFFFF,),
        ).fetchone()
    assert holders == (1,), "n1 should hold the write lock while it is stopped"

    write_article(healthy.input, "second.md", "https://example.com/second")
    # The server ends n1's session (idle in its transaction); n2's sync then gets the lock.
    wait_for(
        lambda: "https://example.com/second" in listed_urls(healthy.output),
        "n2 to publish a drop while n1 is stopped",
        timeout=STALL_BOUND_SECONDS,
    )
    assert stopped(paused.proc.pid)

    paused.proc.send_signal(signal.SIGCONT)
    everything = {"https://example.com/first", "https://example.com/second"} | {
        f"https://example.com/p{i}" for i in range(3)
    }

    def converged() -> bool:
        return listed_urls(healthy.output) == everything and outputs(healthy.output) == outputs(
            paused.output
        )

    wait_for(converged, "both nodes to list everything, with the same bytes")
    assert paused.stop() == 0, paused.text()
    assert healthy.stop() == 0, healthy.text()
    # n1 noticed that its session was cut off, said why (the server's FATAL line, when the
    # driver read it before the link closed), and redid its sync.
    said = paused.text()
    assert (
        "sat idle inside a transaction longer than idle_in_transaction_session_timeout" in said
        or "the server closed this session" in said
    ), said
    assert "build succeeded again after 1 failed attempt" in said, said
    with psycopg.connect(postgres_url) as conn:
        items = conn.execute("SELECT url, guid, path FROM items").fetchall()
    assert sorted(url for url, _, _ in items) == sorted(everything)  # none lost, none twice
    for url, guid, _ in items:
        assert guids_before.get(url, guid) == guid, url  # no GUID changed


def test_a_node_whose_name_was_taken_over_while_it_was_cut_off_stops(
    tmp_path: Path, postgres_url: str, nodes: list[Node]
) -> None:
    first = Node(tmp_path, "a", postgres_url, "n1")
    twin = Node(tmp_path, "b", postgres_url, "n1")
    nodes += [first, twin]
    write_article(first.input, "one.md", "https://example.com/one")
    first.start()
    wait_for(first.watching, "the first n1 to start")
    # The first one is paused, and the server ends its claim (as it does once the paused
    # session sat idle for 30 s); the twin, started meanwhile, takes the free name.
    assert first.proc is not None
    first.proc.send_signal(signal.SIGSTOP)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'aggregator node n1'"
        ).fetchall()
    assert ended == [(True,)]
    twin.start()
    wait_for(twin.watching, "the twin to take the free name")
    assert twin.proc is not None
    # Resumed, the first one notices at its next heartbeat and stops, saying who has its
    # name now.
    first.proc.send_signal(signal.SIGCONT)
    code = first.proc.wait(timeout=60)
    assert code == 2, first.text()
    assert f"node n1: was taken over by host {os.uname().nodename}" in first.text()
    assert f"(pid {twin.proc.pid}, since " in first.text()
    assert "Traceback" not in first.text()
    assert twin.stop() == 0


def test_the_leaders_checks_before_each_ping_open_no_connection(postgres_url: str) -> None:
    from aggregator.catalog import Leadership

    Catalog(postgres_url, node="n1").close()  # the schema
    leadership = Leadership(postgres_url, "n1")
    leadership.start()
    try:
        wait_for(lambda: leadership.epoch is not None, "n1 to lead")
        epoch = leadership.epoch
        assert epoch is not None

        def sessions() -> int:
            with psycopg.connect(postgres_url) as conn:
                row = conn.execute(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                ).fetchone()
            assert row is not None
            return int(row[0])

        before = sessions()
        assert all(leadership.still_leader(epoch) for _ in range(50))
        assert not leadership.still_leader(epoch + 1)
        # Only the probes' own sessions were opened meanwhile (counted when they end): the
        # checks reuse the leader's session (before, each opened one: 51 more).
        assert sessions() - before <= 2
    finally:
        leadership.stop()
