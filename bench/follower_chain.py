#!/usr/bin/env python3
"""Where a cluster's per-drop CPU goes, step by step, in one process: a leader and a
follower `Builder` on one throw-away PostgreSQL (the harness of *Cluster follower cost,
round 2* in bench/README.md).

    .venv/bin/python bench/follower_chain.py [--count 2000] [--drops 20]
    cd / && PYTHONPATH=DIR REPO/.venv/bin/python REPO/bench/follower_chain.py  # another tree

The corpus (``tests/corpus.py``) is split between the two nodes' folders; after a cold
build of both, each drop goes to the leader's folder and the follower's in turn: the
dropping node's build, then (a follower's drop) the leader's render build, then the
follower's copy of the new version (what its daemon does on the store's ring). Printed as
one JSON line: `time.process_time` per step (this process's threads; render workers, if
any, not counted), the share of the follower's copy spent in `PublishBatch`, and per drop
the SQL statements each node ran and the rows and bytes it read from the rendered set
(those counts are the same in every run of a tree: load-independent). Then both output
folders must hold the same bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from pgserver import PostgresServer, binaries  # noqa: E402

from aggregator.catalog import Leadership  # noqa: E402
from aggregator.catalog import postgres as pgmod  # noqa: E402
from aggregator.catalog import rendered as rendered_mod  # noqa: E402
from aggregator.config import Settings  # noqa: E402
from aggregator.output import publish as publish_mod  # noqa: E402
from aggregator.pipeline import Builder  # noqa: E402

CORPUS = REPO_ROOT / "tests" / "corpus.py"


class Counters:
    """SQL statements and rendered-set rows and bytes, per node, while one node's step runs."""

    def __init__(self) -> None:
        self.node: str | None = None
        self.copying = False
        self.publish = 0.0
        self.counts = {"L": [0, 0, 0], "F": [0, 0, 0]}

    def install(self) -> None:
        run, many = pgmod.PostgresConnection._run, pgmod.PostgresConnection.executemany
        binary = rendered_mod.RenderedMixin._binary

        def counted_run(conn: Any, *a: Any, **k: Any) -> Any:
            self._statement()
            return run(conn, *a, **k)

        def counted_many(conn: Any, *a: Any, **k: Any) -> Any:
            self._statement()
            return many(conn, *a, **k)

        def counted_binary(catalog: Any, *a: Any, **k: Any) -> Any:
            rows = list(binary(catalog, *a, **k))
            if self.node is not None:
                self.counts[self.node][1] += len(rows)
                self.counts[self.node][2] += sum(
                    len(v) for row in rows for v in row if isinstance(v, bytes | memoryview)
                )
            return rows

        pgmod.PostgresConnection._run = counted_run  # type: ignore[method-assign]
        pgmod.PostgresConnection.executemany = counted_many  # type: ignore[method-assign]
        rendered_mod.RenderedMixin._binary = counted_binary  # type: ignore[method-assign]
        batch = publish_mod.PublishBatch
        batch.stage = self._timed(batch.stage)  # type: ignore[method-assign]
        batch.commit = self._timed(batch.commit)  # type: ignore[method-assign]

    def _statement(self) -> None:
        if self.node is not None:
            self.counts[self.node][0] += 1

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            started = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                if self.copying:
                    self.publish += time.process_time() - started

        return timed


def generate(dest: Path, count: int, start: int = 0) -> list[Path]:
    subprocess.run(
        [sys.executable, str(CORPUS), str(dest), "--count", str(count), "--start-index",
         str(start)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return sorted(p for p in dest.rglob("*") if p.is_file())


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def run(work: Path, count: int, drops_count: int) -> dict[str, float]:
    corpus = generate(work / "corpus", count)
    drops = generate(work / "drops", drops_count, count + 10_000)
    bin_dir = binaries()
    if bin_dir is None:
        raise SystemExit("follower_chain: PostgreSQL's binaries are not installed")
    server = PostgresServer(bin_dir)
    server.start()
    try:
        url = server.create_database()

        def settings(node: str) -> Settings:
            root = work / node
            (root / "in").mkdir(parents=True)
            return Settings(
                input=root / "in",
                output=root / "out",
                state=root / "state",
                base_url="https://feeds.example.org/",
                catalog=url,
                node=node,
            )

        lead_settings, follow_settings = settings("n1"), settings("n2")
        for index, path in enumerate(corpus):
            folder = lead_settings.input if index % 2 == 0 else follow_settings.input
            shutil.copy(path, folder / path.name)
        leader = Builder(lead_settings)  # creates the schema the lease needs
        lease = Leadership(url, "n1")
        lease.start()
        while lease.epoch is None:
            time.sleep(0.05)
        leader.render_when(lambda: lease.epoch)
        follower = Builder(follow_settings).render_when(lambda: None)
        try:
            leader.build()
            follower.build()
            leader.build([])
            follower.copy()
            return measure(leader, follower, lead_settings, follow_settings, drops)
        finally:
            leader.close()
            follower.close()
            lease.stop()
    finally:
        server.destroy()


def measure(
    leader: Builder, follower: Builder, lead: Settings, follow: Settings, drops: list[Path]
) -> dict[str, float]:
    counters = Counters()
    counters.install()
    cpu = time.process_time
    steps: dict[str, list[float]] = {"L_drop": [], "F_drop": [], "L_render": [], "F_copy": []}
    for index, path in enumerate(drops):
        text = path.read_text(encoding="utf-8").replace("published: false", "published: true")
        name = "drop-" + path.name
        mine = index % 2 == 0
        ((lead if mine else follow).input / name).write_text(text, encoding="utf-8")
        if mine:
            counters.node, started = "L", cpu()
            leader.build([name])
            steps["L_drop"].append(cpu() - started)
        else:
            counters.node, started = "F", cpu()
            follower.build([name])
            steps["F_drop"].append(cpu() - started)
            counters.node, started = "L", cpu()
            leader.build([])
            steps["L_render"].append(cpu() - started)
        counters.node, counters.copying, started = "F", True, cpu()
        follower.copy()
        steps["F_copy"].append(cpu() - started)
        counters.node, counters.copying = None, False
    if files_of(lead.output) != files_of(follow.output):
        raise SystemExit("follower_chain: the two output folders differ")
    n = len(drops)
    result = {k: statistics.mean(v) * 1000 for k, v in steps.items() if v}
    result["F_copy_publish"] = counters.publish / n * 1000
    result["leader_per_drop"] = (sum(steps["L_drop"]) + sum(steps["L_render"])) / n * 1000
    result["follower_per_drop"] = (sum(steps["F_drop"]) + sum(steps["F_copy"])) / n * 1000
    for node, (statements, rows, size) in counters.counts.items():
        result[f"{node}_statements_per_drop"] = statements / n
        result[f"{node}_rendered_rows_per_drop"] = rows / n
        result[f"{node}_rendered_kB_per_drop"] = size / n / 1000
    return {k: round(v, 2) for k, v in result.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--count", type=int, default=2000, help="articles (default 2,000)")
    parser.add_argument("--drops", type=int, default=20, help="drops (default 20)")
    args = parser.parse_args()
    import aggregator

    print(f"aggregator from {Path(aggregator.__file__).parent}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="aggregator-chain-") as work:
        print(json.dumps(run(Path(work), args.count, args.drops)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
