"""Render once, copy everywhere; one clock for the cluster: real `aggregator run` processes on a
real PostgreSQL.

- the leader renders, the followers only copy: over a series of drops on every node, no
  follower's build renders a feed (their DEBUG build lines say 0) and every output folder
  holds the same bytes; a follower copies the leader's new render without a build (its
  status record counts none);
- a node whose clock runs 120 s ahead (libfaketime) changes nothing: an undated article
  dropped there is dated by the database's clock and listed on every node, and an article
  dated 30 s ahead (already past on the skewed clock) stays embargoed on every node until
  the database's clock passes it, then is released on every node;
- the leader SIGKILLed inside its store's transaction, or right after the store committed,
  and a follower down while the leader renders: every node converges to the bytes of a
  single-machine SQLite build of the union.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from articlefiles import write_article
from test_nodes import Node, cli, outputs
from waiting import wait_for

from aggregator.config import Settings
from aggregator.pipeline import Builder

BASE = "https://feeds.example.org/"
URL = "https://example.com/{}"
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SKEW = timedelta(seconds=120)
# Only the wall clock is moved: a moved monotonic clock makes every timed wait on a
# condition variable (APScheduler's, threading's) last the skew longer.
SKEWED = {
    "LD_PRELOAD": FAKETIME,
    "FAKETIME": f"+{int(SKEW.total_seconds())}s",
    "FAKETIME_DONT_FAKE_MONOTONIC": "1",
}
DEBUG_CONFIG = "logging:\n  level: DEBUG\n"


def start(node: Node, **env: str) -> None:
    """`aggregator run` logging at DEBUG (its build lines say how many feeds it rendered)."""
    (node.input.parent / "aggregator.yaml").write_text(DEBUG_CONFIG)
    node.start(**env)
    wait_for(node.watching, f"{node.name} to start")


def rendered_counts(node: Node) -> list[int]:
    """How many feeds each of the node's builds rendered (its DEBUG build lines)."""
    return [int(n) for n in re.findall(r"synced in [\d.]+ s, (\d+) feeds rendered", node.text())]


def all_items(folder: Path) -> dict[str, str] | None:
    """webUrl → date_published of the node's `all` JSON feed (None: not written yet)."""
    try:
        items = json.loads((folder / "all.json").read_bytes())["items"]
    except FileNotFoundError:
        return None
    return {item["url"]: item.get("date_published", "") for item in items}


def same_everywhere(nodes: list[Node]) -> bool:
    first = outputs(nodes[0].output)
    return bool(first) and all(outputs(n.output) == first for n in nodes[1:])


@pytest.fixture
def trio(tmp_path: Path, postgres_url: str) -> Iterator[list[Node]]:
    made = [Node(tmp_path, name, postgres_url, name) for name in ("n1", "n2", "n3")]
    yield made
    for node in made:
        node.stop()


def test_libfaketime_moves_a_python_process_clock(tmp_path: Path) -> None:
    """The skew test's premise: the preload shifts a Python subprocess's clock."""
    import subprocess
    import sys

    if not Path(FAKETIME).is_file():
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import threading, time; threading.Event().wait(0.1); print(time.time())",
        ],
        env={**os.environ, **SKEWED},
        timeout=30,
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(shown.stdout) - datetime.now(UTC).timestamp() > 100


def test_followers_render_nothing_and_a_skewed_clock_changes_nothing(trio: list[Node]) -> None:
    if not Path(FAKETIME).is_file():
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    n1, n2, n3 = trio
    start(n1)
    wait_for(lambda: "leader: n1 took over" in n1.text(), "n1 to lead")
    start(n2)
    start(n3, **SKEWED)
    for index in range(9):
        node = trio[index % 3]
        write_article(node.input, f"d{index}.md", URL.format(f"d{index}"), topics=[f"t{index}"])
        wait_for(
            lambda i=index: all(URL.format(f"d{i}") in (all_items(n.output) or {}) for n in trio),
            f"drop {index} on every node",
        )
    # An undated article on the skewed node: dated by the database's clock in the sync.
    dropped = datetime.now(UTC)
    write_article(n3.input, "undated.md", URL.format("undated"), date=None)
    # Dated 30 s ahead: past on n3's clock, not on the database's.
    due = (dropped + timedelta(seconds=30)).replace(microsecond=0)
    write_article(n3.input, "soon.md", URL.format("soon"), date=due.isoformat())
    undated = URL.format("undated")
    wait_for(
        lambda: all(undated in (all_items(n.output) or {}) for n in trio), "undated on every node"
    )
    wait_for(lambda: same_everywhere(trio), "the same bytes on every node")
    for node in trio:
        items = all_items(node.output)
        assert items is not None
        dated = datetime.fromisoformat(items[undated].replace("Z", "+00:00"))
        # The database's time of the sync, not n3's (which is two minutes ahead).
        assert dropped - timedelta(seconds=5) <= dated < dropped + SKEW / 2, (node.name, dated)
        if datetime.now(UTC) < due:
            assert URL.format("soon") not in items, node.name  # embargoed everywhere
    wait_for(
        lambda: all(URL.format("soon") in (all_items(n.output) or {}) for n in trio),
        "the embargoed article released on every node",
        timeout=90.0,
    )
    assert datetime.now(UTC) >= due
    wait_for(lambda: same_everywhere(trio), "the same bytes on every node after the release")

    # The leader rendered; the followers' builds rendered nothing.
    assert sum(rendered_counts(n1)) > 0
    for follower in (n2, n3):
        counts = rendered_counts(follower)
        assert counts, f"{follower.name} logged no build line"
        assert set(counts) == {0}, (follower.name, counts)
        assert "render:" not in follower.text()


def builds(node: Node) -> int:
    """How many builds the node's daemon ran, as its status record says."""
    return int(json.loads((node.state / "status.json").read_text())["builds"])


def test_a_follower_copies_the_leaders_render_without_a_build(trio: list[Node]) -> None:
    """The leader's store rings the followers, which copy the new version (a DEBUG copy
    line each) and run no build for it: the only builds of a follower that took no file are
    full scans (its start's, its listener's first connection), and its status record
    counts those alone, while the drops reach its folder with the leader's bytes."""
    n1, n2, _ = trio
    write_article(n1.input, "first.md", URL.format("first"), topics=["alpha"])
    start(n1)
    wait_for(lambda: "leader: n1 took over" in n1.text(), "n1 to lead")
    wait_for(lambda: URL.format("first") in (all_items(n1.output) or {}), "n1's render")
    start(n2)
    wait_for(lambda: outputs(n2.output) == outputs(n1.output), "n2's first copy")
    copies = n2.text().count("DEBUG copy: ")
    for index in range(3):
        write_article(n1.input, f"d{index}.md", URL.format(f"d{index}"), topics=["beta"])
        wait_for(
            lambda i=index: URL.format(f"d{i}") in (all_items(n2.output) or {}),
            f"drop {index} copied to n2",
        )
    wait_for(lambda: outputs(n2.output) == outputs(n1.output), "the same bytes on both")
    # One copy per drop (each was seen on n2 before the next was written); its line comes
    # once its mark is recorded, just after its files.
    wait_for(lambda: n2.text().count("DEBUG copy: ") >= copies + 3, "n2's copy lines")
    # Every build n2 began has ended and is counted (a build logs `rebuild:` as it starts).
    wait_for(lambda: builds(n2) == n2.text().count("DEBUG rebuild: "), "n2's builds to end")
    started = re.findall(r"DEBUG rebuild: (.+)", n2.text())
    assert set(started) == {"full scan"}, started  # no build for a ring: one per drop before
    assert builds(n2) == len(started)
    assert "render:" not in n2.text()


def reference(folder: Path, nodes: list[Node]) -> dict[str, bytes]:
    """A single-machine SQLite build of the union of the nodes' folders."""
    union = folder / "union"
    for node in nodes:
        shutil.copytree(node.input, union, dirs_exist_ok=True)
    settings = Settings(
        input=union, output=folder / "reference", state=folder / "reference-state",
        base_url=BASE, workers=1,
    )  # fmt: skip
    with Builder(settings) as builder:
        builder.build()
    return outputs(settings.output)


@pytest.mark.parametrize("fault", ["after-feeds-recorded", "after-render-stored"])
def test_a_leader_killed_around_its_store_and_a_follower_down_converge(
    trio: list[Node], tmp_path: Path, fault: str
) -> None:
    n1, n2, n3 = trio
    for index in range(3):
        write_article(n1.input, f"a{index}.md", URL.format(f"a{index}"), topics=["alpha"])
    # Alone, n1 leads and dies at its first store: inside the store's transaction (rolled
    # back) or right after its commit (rung; its own copy not made).
    (n1.input.parent / "aggregator.yaml").write_text(DEBUG_CONFIG)
    n1.start(AGGREGATOR_FAULT=fault)
    assert n1.proc is not None
    assert n1.proc.wait(timeout=60) == -signal.SIGKILL
    assert "leader: n1 took over" in n1.text()
    start(n2)
    wait_for(lambda: "leader: n2 took over from n1" in n2.text(), "n2 to take over")
    start(n3)
    builds = n1.text().count("build finished")
    n1.start()  # without the fault
    wait_for(lambda: n1.text().count("build finished") > builds, "n1 to restart")
    expected = reference(tmp_path / "first", trio)
    wait_for(lambda: all(outputs(n.output) == expected for n in trio), "every node converged")

    # A follower down while the leader renders: it copies what it missed when it returns.
    assert n3.stop() == 0
    for index in range(3):
        write_article(n1.input, f"b{index}.md", URL.format(f"b{index}"), topics=["beta"])
        write_article(n2.input, f"c{index}.md", URL.format(f"c{index}"), topics=["gamma"])
    (n1.input / "a0.md").unlink()
    expected = reference(tmp_path / "second", trio)
    wait_for(lambda: all(outputs(n.output) == expected for n in (n1, n2)), "n1 and n2")
    start(n3)
    wait_for(lambda: outputs(n3.output) == expected, "n3 to catch up")
    assert set(rendered_counts(n1)[builds:]) <= {0}  # a follower since its restart
    for node in trio:
        assert node.stop() == 0


def test_a_one_shot_build_beside_a_leading_daemon_copies_the_leaders_render(
    trio: list[Node],
) -> None:
    n1, n2, _ = trio
    write_article(n1.input, "a.md", URL.format("a"), topics=["alpha"])
    start(n1)
    wait_for(lambda: "leader: n1 took over" in n1.text(), "n1 to lead")
    write_article(n2.input, "b.md", URL.format("b"), topics=["beta"])
    built = cli(n2.args("build"), n2.input.parent)
    # It did not take the lead (a daemon holds it): it waited for the leader's render of
    # its sync, then copied the whole set.
    assert built.returncode == 0, built.stderr
    assert "took over" not in built.stderr + built.stdout
    assert "copied from the cluster" in built.stdout
    assert set(all_items(n2.output) or {}) == {URL.format("a"), URL.format("b")}
    wait_for(lambda: outputs(n1.output) == outputs(n2.output), "the same bytes on both")
