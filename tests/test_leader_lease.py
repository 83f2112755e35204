"""The leader's lease, on a real PostgreSQL with real `aggregator run` processes.

- `lease_holds` is true for the current epoch with an unexpired lease only, on a psycopg
  connection and on the catalog's own; inside a transaction it keeps a takeover waiting
  until that transaction ends;
- a catalog made before the lease gets its column at the next start;
- a leader SIGSTOPped (its TCP session lives on: the kernel answers for it) is replaced once
  its lease lapses; the new leader sends the WebSub pings the old one failed to; resumed,
  the old one says it lost its lease, and its retries, due meanwhile, are fenced off: no
  ping from it reaches the hub;
- a leader silently partitioned from the database (a network namespace whose traffic is
  dropped) is replaced likewise; healed, it steps down and its output converges.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from articlefiles import write_article
from hubs import RecordingHub, recording_hub
from netns import Namespace, namespace
from pgserver import running_server
from processes import stop_process, stopped
from waiting import wait_for

from aggregator.catalog import Catalog, Leadership, lease_holds
from aggregator.catalog.postgres import PostgresConnection

BASE = "https://feeds.example.org/"


def outputs(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


class Node:
    """One `aggregator run` process (DEBUG log) with its own folders and config file;
    `prefix` runs it elsewhere (`ip netns exec NAME`)."""

    def __init__(
        self, root: Path, name: str, url: str, hubs: Sequence[str] = (), prefix: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.url = url
        self.prefix = list(prefix)
        self.input = root / name / "in"
        self.output = root / name / "out"
        self.log = root / name / "log"
        self.config = root / name / "aggregator.yaml"
        self.input.mkdir(parents=True)
        listed = "".join(f"\n    - {hub}" for hub in hubs)
        self.config.write_text(
            "daemon:\n  debounce_seconds: 0.05\n  debounce_max_seconds: 0.5\n"
            + (f"websub:\n  hubs:{listed}\n" if hubs else ""),
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            *self.prefix, sys.executable, "-m", "aggregator", "run",
            "--config", str(self.config), "--log-level", "DEBUG",
            "--input", str(self.input), "--output", str(self.output),
            "--state", str(self.input.parent / "state"), "--base-url", BASE,
            "--catalog", self.url, "--node", self.name,
        ]  # fmt: skip
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                args, cwd=self.input.parent, stdout=sink, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def text(self, since: int = 0) -> str:
        return self.log.read_text(errors="replace")[since:] if self.log.exists() else ""

    def says(self, line: str, since: int = 0) -> bool:
        return line in self.text(since)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        return stop_process(self.proc, 30)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.stop()


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def set_lease(url: str, epoch: int, until: str) -> None:
    sql(url, f"UPDATE cluster_leader SET epoch = {epoch}, node = 'x', lease_until = {until}")


# --- the lease, in-process ----------------------------------------------------------------------


def test_the_lease_holds_for_the_current_unexpired_epoch_only(postgres_url: str) -> None:
    Catalog(postgres_url, node="a").close()  # the schema
    catalogs = PostgresConnection(postgres_url)  # the catalog's dialect, as a caller's is
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        try:
            for db in (conn, catalogs):
                set_lease(postgres_url, 7, "now() + interval '1 hour'")
                assert lease_holds(db, 7)
                assert not lease_holds(db, 6)
                assert not lease_holds(db, 8)
                set_lease(postgres_url, 7, "now() - interval '1 second'")
                assert not lease_holds(db, 7)
                set_lease(postgres_url, 7, "NULL")  # let go by a stopping leader
                assert not lease_holds(db, 7)
        finally:
            catalogs.close()


def test_a_takeover_waits_for_a_transaction_that_checked_the_lease(postgres_url: str) -> None:
    Catalog(postgres_url, node="a").close()
    set_lease(postgres_url, 7, "now() + interval '1 second'")
    follower = Leadership(postgres_url, "b")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("BEGIN")
        assert lease_holds(conn, 7)  # the old leader's fenced write would follow here
        follower.start()
        try:

            def waiting() -> bool:
                rows = sql(
                    postgres_url,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE cluster_leader%'",
                )
                return bool(rows[0][0])

            # The lease lapses meanwhile; the follower's takeover queues behind the check.
            wait_for(waiting, "b's takeover to wait for the transaction")
            assert follower.epoch is None
            conn.execute("COMMIT")
            wait_for(lambda: follower.epoch == 8, "b to take over once it ended")
        finally:
            follower.stop()


def test_a_leader_that_cannot_renew_stops_acting_by_itself(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator.catalog")
    Catalog(postgres_url, node="a").close()
    leader = Leadership(postgres_url, "a")
    leader.start()
    try:
        wait_for(lambda: leader.acting, "a to lead")
        epoch = leader.epoch
        assert epoch is not None
        assert leader.still_leader(epoch)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            # The row locked: a's renewals wait, as on a link that is cut off.
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM cluster_leader WHERE id = 1 FOR UPDATE")
            wait_for(lambda: not leader.acting, "a's own deadline to pass")
            assert not leader.still_leader(epoch)
            assert leader.epoch == epoch  # not deposed: no one else took the lease
            conn.execute("COMMIT")
        # The renewal gets through: no one took the lapsed lease, so a leads again.
        wait_for(lambda: leader.acting, "a's late renewal")
        assert leader.still_leader(epoch)
    finally:
        leader.stop()
    assert f"leader: a renewed its lease late (epoch {epoch})" in caplog.text


def test_a_catalog_made_before_the_lease_gets_it(postgres_url: str) -> None:
    Catalog(postgres_url, node="a").close()
    sql(postgres_url, "ALTER TABLE cluster_leader DROP COLUMN lease_until")
    Catalog(postgres_url, node="a").close()  # the next start adds it
    assert sql(
        postgres_url,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'cluster_leader' AND column_name = 'lease_until'",
    ) == [("timestamp with time zone",)]
    leadership = Leadership(postgres_url, "a")
    leadership.start()
    try:
        wait_for(lambda: leadership.epoch is not None, "a to lead")
        epoch = leadership.epoch
        assert epoch is not None
        assert leadership.acting
        assert leadership.still_leader(epoch)
    finally:
        leadership.stop()
    # A stopping leader lets its lease go: no one is the live leader any more.
    assert not lease_holds_by_url(postgres_url, epoch)


def lease_holds_by_url(url: str, epoch: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return lease_holds(conn, epoch)


# --- a paused leader ------------------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[RecordingHub]:
    with recording_hub() as hub:
        yield hub


@pytest.mark.faults
def test_a_paused_leader_is_replaced_and_fenced_off_when_it_resumes(
    tmp_path: Path, postgres_url: str, hub: RecordingHub, nodes: list[Node]
) -> None:
    n1 = Node(tmp_path, "n1", postgres_url, hubs=[hub.url])
    n2 = Node(tmp_path, "n2", postgres_url, hubs=[hub.url])
    nodes += [n1, n2]
    n1.start()
    wait_for(lambda: n1.says("leader: n1 took over from nobody"), "n1 to lead")
    n2.start()
    wait_for(lambda: n2.says("build finished"), "n2 to start")
    hub.senders = (n1.pid, n2.pid)

    # The hub fails n1's pings: each is owed still, and n1 retries it after a backoff.
    hub.status = 503
    write_article(n1.input, "a.txt", "https://a.example.com/a")

    def owed() -> set[str]:
        return {str(t) for (t,) in sql(postgres_url, "SELECT topic FROM pending_pings")}

    def tried_by(pid: int, since: int = 0) -> set[str]:
        return {p.topic for p in hub.pings[since:] if p.sender == pid}

    wait_for(lambda: owed() and owed() <= tried_by(n1.pid), "n1 to try every owed ping")
    topics = owed()
    n1.signal(signal.SIGSTOP)
    wait_for(lambda: stopped(n1.pid), "n1 to stop")
    mark = len(hub.pings)  # nothing of n1's is in flight: its retries wait 2 s and more
    hub.status = 202

    # Its lease lapses: n2 takes over and sends what n1 owed.
    wait_for(lambda: n2.says("leader: n2 took over from n1 (epoch"), "n2 to take over")
    wait_for(lambda: topics <= tried_by(n2.pid, mark), "n2 to send n1's owed pings")
    wait_for(lambda: not owed(), "the owed pings to be forgotten")

    resumed = len(n1.text())
    n1.signal(signal.SIGCONT)
    wait_for(lambda: n1.says("leader: n1 lost its lease to n2 (epoch", resumed), "n1 to step down")
    # Its retries came due while it was paused: they run, and the fence refuses them.
    wait_for(lambda: n1.says("WebSub ping: left to the leader", resumed), "n1's fenced retry")

    # Both go on: a drop on n1 is published by both, pinged by the leader alone.
    before = len(hub.pings)
    write_article(n1.input, "b.txt", "https://a.example.com/b")
    wait_for(lambda: tried_by(n2.pid, before), "n2 to ping for n1's drop")
    wait_for(
        lambda: (n1.output / "all.rss.xml").exists() and outputs(n1.output) == outputs(n2.output),
        "both outputs to agree",
    )
    assert not tried_by(n1.pid, mark), "the deposed leader pinged the hub"
    assert [n.stop() for n in nodes] == [0, 0], n1.text()[resumed:]
    assert "Traceback" not in n1.text() + n2.text()


# --- a partitioned leader ----------------------------------------------------------------------


@pytest.fixture
def cut_off() -> Iterator[Namespace]:
    with namespace() as ns:
        yield ns


@pytest.mark.faults
def test_a_partitioned_leader_is_replaced_and_steps_down_once_healed(
    tmp_path: Path, cut_off: Namespace, nodes: list[Node]
) -> None:
    with running_server(listen=("127.0.0.1", cut_off.host), trust=(cut_off.network,)) as server:
        url = server.create_database()
        n1 = Node(tmp_path, "n1", url.replace("127.0.0.1", cut_off.host), prefix=cut_off.run)
        n2 = Node(tmp_path, "n2", url)
        nodes += [n1, n2]
        n1.start()
        wait_for(
            lambda: n1.says("leader: n1 took over from nobody"), "n1 (in the namespace) to lead"
        )
        n2.start()
        write_article(n2.input, "a.txt", "https://a.example.com/a")
        wait_for((n1.output / "all.rss.xml").exists, "n1 to publish n2's drop")

        cut_off.partition()  # silent: every packet dropped, nothing refused
        try:
            wait_for(lambda: n2.says("leader: n2 took over from n1 (epoch"), "n2 to take over")
            # Its renewal hangs on the dead link, and is bounded: the kernel gives up on it
            # (the bench measures how soon; by design within about a lease).
            wait_for(lambda: n1.says("leader: n1 lost its session ("), "n1 to see its link die")
            write_article(n2.input, "b.txt", "https://a.example.com/b")
            wait_for(
                lambda: b"a.example.com/b" in (n2.output / "all.rss.xml").read_bytes(),
                "n2 to publish",
            )
            assert b"a.example.com/b" not in (n1.output / "all.rss.xml").read_bytes()
        finally:
            cut_off.heal()
        wait_for(lambda: n1.says("leader: n1 lost its lease to n2 (epoch"), "n1 to step down")
        wait_for(lambda: outputs(n1.output) == outputs(n2.output), "n1's output to converge")
        assert [n.stop() for n in nodes] == [0, 0], n1.text()
        server.drop_database(url)
    assert "Traceback" not in n1.text() + n2.text()
