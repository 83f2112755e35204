"""A node's whole life on a real PostgreSQL, with real `aggregator run` processes:

- the change log is pruned once the cluster's renderer (the leader) is past an entry; a
  stopped node holds nothing back; a node that returns after it was retired copies the
  whole rendered set and converges to the same bytes as the others;
- `aggregator node retire` while another node runs: that node's feeds never lose an item it
  has (its output is read over and over during the retire), the retired node's own items
  leave, its bookkeeping goes;
- `aggregator node forget` asks first (no: nothing changes; --yes: done); a live node is
  refused by both, naming where it runs; `node list` shows every node.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from articlefiles import write_article
from test_nodes import Node, cli, outputs
from waiting import wait_for

URL = "https://example.com/{}"


def node_cli(node: Node, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`aggregator node ARGS` as an operator runs it beside `node` (its config: the
    cluster's feed definitions)."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "node", *args, "--catalog", node.url],
        check=False,
        cwd=node.input.parent,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def all_urls(folder: Path) -> set[str] | None:
    """The webUrls of the node's `all` JSON feed (None: not written yet)."""
    try:
        return {item["url"] for item in json.loads((folder / "all.json").read_bytes())["items"]}
    except FileNotFoundError:
        return None


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def start(node: Node, *, debug: bool = False) -> None:
    """`aggregator run` with a reconcile (and so a prune) every second."""
    config = node.input.parent / "aggregator.yaml"
    level = "DEBUG" if debug else "INFO"
    config.write_text(f"daemon:\n  reconcile_seconds: 1\nlogging:\n  level: {level}\n")
    node.start()
    wait_for(node.watching, f"{node.name} to start")


@pytest.fixture
def pair(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Node, Node]]:
    n1 = Node(tmp_path, "a", postgres_url, "n1")
    n2 = Node(tmp_path, "b", postgres_url, "n2")
    yield n1, n2
    n1.stop()
    n2.stop()


def test_the_change_log_is_pruned_behind_the_renderer_and_a_returning_node_converges(
    postgres_url: str, pair: tuple[Node, Node]
) -> None:
    n1, n2 = pair
    write_article(n1.input, "a.md", URL.format("a"), topics=["alpha"])
    write_article(n2.input, "b.md", URL.format("b"), topics=["beta"])
    start(n1, debug=True)
    wait_for(lambda: "leader: n1 took over" in n1.text(), "n1 to lead")
    start(n2)
    both = {URL.format("a"), URL.format("b")}
    wait_for(lambda: all_urls(n1.output) == both == all_urls(n2.output), "both drops on both")
    # Only the renderer (n1, the leader) reads the log: its next maintenance prunes it all.
    wait_for(lambda: sql(postgres_url, "SELECT count(*) FROM feed_changes") == [(0,)], "a prune")
    (pruned,) = sql(postgres_url, "SELECT upto FROM feed_changes_pruned")[0]
    assert int(pruned) > 0

    assert n2.stop() == 0
    (n2_mark,) = sql(postgres_url, "SELECT value FROM meta WHERE key = 'n2/copied_seq'")[0]
    write_article(n1.input, "c.md", URL.format("c"), topics=["gamma"])
    wait_for(lambda: URL.format("c") in (all_urls(n1.output) or ()), "n1 to publish c")
    # A stopped node holds nothing back: the log is pruned behind the renderer alone.
    wait_for(lambda: sql(postgres_url, "SELECT count(*) FROM feed_changes") == [(0,)], "a prune")

    listed = node_cli(n1, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = {n["name"]: n for n in json.loads(listed.stdout)["nodes"]}
    assert report["n1"]["live"]
    assert report["n1"]["leader"]
    assert not report["n2"]["live"]
    assert not report["n2"]["leader"]
    assert report["n2"]["mark"] == int(str(n2_mark))
    assert report["n2"]["lag"] > 0  # versions of the rendered set it has not copied
    assert report["n2"]["files"] == 1
    assert report["n1"]["lag"] == 0
    text = node_cli(n1, "list")
    assert "n2 is stopped" in text.stdout
    assert "node retire n2" in text.stdout

    retired = node_cli(n1, "retire", "n2")
    assert retired.returncode == 0, retired.stderr
    assert "1 withdrawn" in retired.stdout, retired.stdout

    # While n2 is away: a feed emptied (c leaves gamma) and a new one.
    (n1.input / "c.md").unlink()
    write_article(n1.input, "d.md", URL.format("d"), topics=["delta"])
    wait_for(lambda: all_urls(n1.output) == {URL.format("a"), URL.format("d")}, "n1: c out, d in")

    # n2 returns with its old output folder and no mark (retired): it copies the whole
    # rendered set, the emptied gamma feed included, and has n1's bytes.
    start(n2)
    everything = {URL.format(x) for x in "abd"}

    def same() -> bool:
        return all_urls(n1.output) == everything and outputs(n1.output) == outputs(n2.output)

    wait_for(same, "n2's output to be byte-identical to n1's")
    assert json.loads((n2.output / "topics" / "gamma.json").read_bytes())["items"] == []


def test_retire_keeps_every_item_the_running_node_has_listed(
    postgres_url: str, pair: tuple[Node, Node]
) -> None:
    n1, n2 = pair
    shared = [f"s{i}" for i in range(12)]
    for name in [*shared, "o0", "o1"]:
        write_article(n1.input, f"{name}.md", URL.format(name), topics=[name])
    # Written later: n2's copies are newer, so n2's files speak for the shared webUrls.
    for name in [*shared, "u0", "u1", "u2"]:
        write_article(n2.input, f"{name}.md", URL.format(name), title=f"{name} on n2")
    start(n1)
    start(n2)
    n1_has = {URL.format(x) for x in [*shared, "o0", "o1"]}
    everything = n1_has | {URL.format(x) for x in ("u0", "u1", "u2")}
    wait_for(lambda: all_urls(n1.output) == everything == all_urls(n2.output), "both nodes")
    assert sql(postgres_url, "SELECT count(*) FROM items WHERE path LIKE 'n2/%'") == [(15,)]

    # A live node is refused, naming where it runs; nothing changes.
    assert n2.proc is not None
    for args in (("retire", "n2"), ("forget", "n2", "--yes")):
        refused = node_cli(n1, *args)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("aggregator: node n2: is running on host ")
        assert f"(pid {n2.proc.pid}, since " in refused.stderr
        assert "stop that process first" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert sql(postgres_url, "SELECT count(*) FROM files WHERE path LIKE 'n2/%'") == [(15,)]

    assert n2.stop() == 0
    seen: list[set[str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            urls = all_urls(n1.output)
            if urls is not None:
                seen.append(urls)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        retired = node_cli(n1, "retire", "n2")
        assert retired.returncode == 0, retired.stderr
        wait_for(lambda: all_urls(n1.output) == n1_has, "n2's own items to leave n1's feeds")
    finally:
        done.set()
        watcher.join()
    assert retired.stdout.startswith("node n2 retired: 15 file rows removed; 12 of its items ")
    assert "3 withdrawn" in retired.stdout
    missing = [n1_has - urls for urls in seen if not n1_has <= urls]
    assert not missing, f"n1's feed lost items it has during the retire: {missing[:3]}"
    assert len(seen) > 1
    # Nothing of n2's is left, and its items now come from n1's files.
    for table, column in (("files", "path"), ("items", "path"), ("feeds", "feed"), ("meta", "key")):
        assert sql(postgres_url, f"SELECT count(*) FROM {table} WHERE {column} LIKE 'n2/%'") == [
            (0,)
        ]
    assert sql(postgres_url, "SELECT count(*) FROM cluster_nodes WHERE name = 'n2'") == [(0,)]
    names = [n["name"] for n in json.loads(node_cli(n1, "list", "--json").stdout)["nodes"]]
    assert names == ["n1"]


def test_forget_asks_first(postgres_url: str, pair: tuple[Node, Node], tmp_path: Path) -> None:
    n1, n2 = pair
    write_article(n1.input, "a.md", URL.format("a"))
    write_article(n2.input, "b.md", URL.format("b"))
    write_article(n2.input, "a.md", URL.format("a"), title="a on n2")
    start(n1)
    start(n2)
    wait_for(lambda: all_urls(n1.output) == {URL.format("a"), URL.format("b")}, "both drops")
    assert n2.stop() == 0  # "lost"

    declined = node_cli(n1, "forget", "n2", stdin="n\n")
    assert declined.returncode == 1, declined.stderr
    assert "forget node n2 (last on host " in declined.stderr
    assert "its 2 files leave the catalog; 1 of its 2 items no other node has" in declined.stderr
    assert "not forgotten; nothing changed" in declined.stderr
    assert sql(postgres_url, "SELECT count(*) FROM files WHERE path LIKE 'n2/%'") == [(2,)]
    # No answer at all (stdin closed) is no.
    assert node_cli(n1, "forget", "n2").returncode == 1

    unknown = node_cli(n1, "forget", "n9", "--yes")
    assert unknown.returncode == 2
    assert "node n9: not in the shared catalog" in unknown.stderr
    assert "(its nodes: n1, n2)" in unknown.stderr

    forgotten = node_cli(n1, "forget", "n2", "--yes")
    assert forgotten.returncode == 0, forgotten.stderr
    assert forgotten.stdout.startswith("node n2 forgotten: 2 file rows removed; 1 of its items")
    wait_for(lambda: all_urls(n1.output) == {URL.format("a")}, "b to leave n1's feeds")
    assert sql(postgres_url, "SELECT path FROM items") == [("n1/a.md",)]

    # On SQLite there is one node, and the command says so.
    sqlite = cli(
        [sys.executable, "-m", "aggregator", "node", "retire", "x", "--state",
         str(tmp_path / "state")],
        tmp_path,
    )  # fmt: skip
    assert sqlite.returncode == 2
    assert "the catalog is SQLite" in sqlite.stderr
    assert "one node" in sqlite.stderr
