"""Proof of the scale-out: three `aggregator run` processes, one PostgreSQL catalog.

A 3,000-file burst lands spread over the three input folders; the leader is SIGKILLed in
the middle and restarted; the PostgreSQL server is restarted mid-burst. At the end every
node's output folder holds exactly the bytes of a single-machine SQLite build of the union
of the folders, every published article is listed once, and the log shows the takeover.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import psycopg
import pytest
from corpus import write_corpus
from pgserver import PostgresServer, running_server
from processes import stop_process
from waiting import wait_for as _wait_for

from aggregator.catalog import Catalog
from aggregator.config import Settings
from aggregator.pipeline import Builder

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://feeds.example.org/"
FILES = 3000
NODES = ("n1", "n2", "n3")
CONVERGE_SECONDS = 120.0


wait_for = partial(_wait_for, timeout=60.0)


def outputs(folder: Path) -> dict[str, bytes]:
    """Every published file (not a writer's hidden temporary file)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


class Node:
    """One `aggregator run` process with its own input, output and state folders."""

    def __init__(self, root: Path, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.input = root / name / "in"
        self.output = root / name / "out"
        self.state = root / name / "state"
        self.log = root / name / "log"
        self.input.mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._logs: list[Path] = []

    def start(self) -> None:
        log = self.log.with_suffix(f".{len(self._logs)}")
        self._logs.append(log)
        with log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "aggregator", "run",
                    "--input", str(self.input), "--output", str(self.output),
                    "--state", str(self.state), "--base-url", BASE,
                    "--catalog", self.url, "--node", self.name,
                ],
                cwd=self.input.parent,  # no config/aggregator.yaml there
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self._logs)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        return stop_process(self.proc, 15)


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A server of this test's own: it is restarted in the middle of the burst."""
    with running_server() as server:
        yield server


def corpus(folder: Path) -> list[Path]:
    files = write_corpus(folder, FILES)  # tests/corpus.py
    assert sorted(p for p in folder.rglob("*") if p.is_file()) == files
    return files


def leader_of(nodes: list[Node]) -> Node:
    """The node whose log says it took the lead last."""
    found: tuple[float, Node] | None = None
    for node in nodes:
        for path in node._logs:
            if path.exists() and re.search(rf"leader: {node.name} took over", path.read_text()):
                mtime = path.stat().st_mtime
                if found is None or mtime > found[0]:
                    found = (mtime, node)
    assert found is not None, "no node took the lead"
    return found[1]


def test_three_nodes_survive_a_kill_and_a_database_restart(
    tmp_path: Path, server: PostgresServer
) -> None:
    staged = corpus(tmp_path / "staged")
    # The reference: one machine, SQLite, the union of the folders.
    union = tmp_path / "union"
    shutil.copytree(tmp_path / "staged", union)
    reference_settings = Settings(
        input=union, output=tmp_path / "reference", state=tmp_path / "reference-state",
        base_url=BASE, workers=2,
    )  # fmt: skip
    with Builder(reference_settings) as builder:
        builder.build()
    reference = outputs(reference_settings.output)
    with Catalog(reference_settings.catalog_path) as catalog:
        published = catalog.published_count()
    assert published > FILES // 2

    url = server.create_database()
    nodes = [Node(tmp_path, name, url) for name in NODES]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            wait_for(lambda n=node: "watching" in n.text(), f"{node.name} to start")
        wait_for(lambda: any("took over" in n.text() for n in nodes), "a leader")
        victim = leader_of(nodes)
        survivors = [n for n in nodes if n is not victim]

        def took_over() -> bool:
            return any(f"leader: {n.name} took over from {victim.name}" in n.text()
                       for n in survivors)  # fmt: skip

        for index, path in enumerate(staged):
            node = nodes[index % len(nodes)]
            target = node.input / path.relative_to(tmp_path / "staged")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
            if index == FILES // 3:
                # The leader dies; files keep landing in its folder while it is dead.
                victim.kill()
                wait_for(took_over, "a survivor to take the lead over")
            elif index == FILES // 2:
                server.stop()
                server.start()
            elif index == 2 * FILES // 3:
                victim.start()
            if index % 100 == 99:
                time.sleep(0.2)  # a burst over several seconds, not one instant

        def converged() -> bool:
            return all(outputs(n.output) == reference for n in nodes)

        wait_for(converged, "every node's output to equal the reference", timeout=CONVERGE_SECONDS)
    finally:
        codes = [node.stop() for node in nodes]
    logs = "\n".join(f"--- {n.name}\n{n.text()}" for n in nodes)
    assert codes == [0, 0, 0], logs
    assert "lost the connection" in logs
    assert "reconnected" in logs

    # No article missing or listed twice: the items are the reference's (same GUIDs, one
    # per webUrl), each listed from a file that is in its node's folder.
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT guid, url, path FROM items").fetchall()
    with contextlib.closing(sqlite3.connect(reference_settings.catalog_path)) as db:
        expected = set(db.execute("SELECT guid, url FROM items"))
    assert len(rows) == len(expected) == published
    assert {(guid, url) for guid, url, _ in rows} == expected
    for _, _, path in rows:
        name, rel = path.split("/", 1)
        assert (tmp_path / name / "in" / rel).is_file(), path
