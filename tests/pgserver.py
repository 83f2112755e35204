"""A real PostgreSQL server for tests: initdb + pg_ctl in a temporary folder, on 127.0.0.1
(and on more addresses, trusting more client networks, when a test asks: a network
namespace's veth, for a partition).

Debian's binaries live in /usr/lib/postgresql/<version>/bin (not on PATH); `initdb` refuses
to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
from services import service_missing


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None if PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One throw-away cluster. `url(db)` connects as its superuser, without a password.

    `listen`: the addresses it listens on; `trust`: client networks (CIDR) it lets in
    without a password, besides the local ones initdb trusts."""

    def __init__(
        self, bin_dir: Path, listen: Sequence[str] = ("127.0.0.1",), trust: Sequence[str] = ()
    ) -> None:
        self.bin = bin_dir
        self.listen = tuple(listen)
        self.folder = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "aggregator", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if trust:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.writelines(f"host all all {network} trust\n" for network in trust)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.folder,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses={','.join(self.listen)} -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
            "-w", "start",
        )  # fmt: skip

    def pid(self) -> int | None:
        """The postmaster's process id, while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its PID (fast shutdown: connections are cut) and wait."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL (pid {pid}) did not stop within {timeout} s")

    def destroy(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        """A connection URL for one database (by another of its `listen` addresses)."""
        return f"postgresql://aggregator@{host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, cutting any connection still open."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def running_server(
    listen: Sequence[str] = ("127.0.0.1",), trust: Sequence[str] = ()
) -> Iterator[PostgresServer]:
    """A started server, destroyed afterwards; without the binaries, `service_missing`."""
    found = binaries()
    if found is None:
        service_missing(
            "PostgreSQL binaries (initdb, pg_ctl) not installed: apt-get install postgresql"
        )
    server = PostgresServer(found, listen, trust)
    server.start()
    try:
        yield server
    finally:
        server.destroy()
