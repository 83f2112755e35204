#!/usr/bin/env python3
"""Two versions of the code on one corpus, alternated in one run: is B within noise of A?

    .venv/bin/python bench/compare.py OLD_TREE NEW_TREE [--count 5000] [--rounds 5]

Each tree is a checkout of this repository (a `git worktree add --detach DIR COMMIT` of the
baseline, say); its `aggregator` package is put first on PYTHONPATH, so both run under the
same interpreter and libraries. Per round, for A then B (the order flips every round so
neither always runs on a warmer machine): a cold build into fresh folders, a rebuild with
nothing changed, and a rebuild after one article's title changed. CPU is user + system of
the build and its workers (`os.wait4`), the figure least moved by other load; wall time is
shown too. Prints medians and the B/A ratio of each; writes nothing but its temp folders.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_build(
    tree: Path, corpus: Path, out: Path, state: Path, config: Path | None = None
) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "aggregator", "build", "--input", str(corpus),
           "--output", str(out), "--state", str(state)]
    if config is not None:  # else the tree's own default config (config/aggregator.yaml)
        cmd += ["--config", str(config)]
    start = time.perf_counter()
    # Run in the tree: `python -m` puts the working directory first on sys.path, ahead of
    # PYTHONPATH, so run from a checkout it would build with that checkout's code instead.
    proc = subprocess.Popen(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        detail = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"build failed in {tree}: {detail}")
    return usage.ru_utime + usage.ru_stime, wall


def touch_one(corpus: Path) -> None:
    path = sorted(corpus.glob("*.txt"))[len(list(corpus.glob("*.txt"))) // 2]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("title: ", "title: Edited ", 1), encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/aggregator-compare"))
    p.add_argument("--config", type=Path,
                   help="the config file both builds read (default: each tree's own)")
    p.add_argument("--cold-only", action="store_true",
                   help="only the cold builds: more rounds in the same time")
    args = p.parse_args()
    args.a, args.b, args.workdir = args.a.resolve(), args.b.resolve(), args.workdir.resolve()
    kinds = ("cold",) if args.cold_only else ("cold", "unchanged", "one changed")
    load_start = os.getloadavg()[0]
    shutil.rmtree(args.workdir, ignore_errors=True)
    source = args.workdir / "corpus"
    subprocess.run([sys.executable, str(REPO / "tests" / "corpus.py"), str(source),
                    "--count", str(args.count), "--seed", "1", "--quiet"], check=True)
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        k: {"cold": [], "unchanged": [], "one changed": []} for k in ("A", "B")}
    for n in range(args.rounds):
        order = [("A", args.a), ("B", args.b)] if n % 2 == 0 else [("B", args.b), ("A", args.a)]
        for name, tree in order:
            corpus = args.workdir / f"in-{name}"
            shutil.rmtree(corpus, ignore_errors=True)
            shutil.copytree(source, corpus)
            out, state = args.workdir / f"out-{name}", args.workdir / f"state-{name}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
            config = None if args.config is None else args.config.resolve()
            results[name]["cold"].append(run_build(tree, corpus, out, state, config))
            if args.cold_only:
                continue
            results[name]["unchanged"].append(run_build(tree, corpus, out, state, config))
            touch_one(corpus)
            results[name]["one changed"].append(run_build(tree, corpus, out, state, config))
    load = os.getloadavg()[0]
    print(f"{args.count} articles, {args.rounds} alternated rounds, config "
          f"{args.config or 'of each tree'}, "
          f"load {load_start:.1f} at the start, {load:.1f} at the end")
    print("| build | A CPU s | B CPU s | B/A CPU | B/A CPU per round, min-max "
          "| A wall s | B wall s | B/A wall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        a_cpu = statistics.median(c for c, _ in results["A"][kind])
        b_cpu = statistics.median(c for c, _ in results["B"][kind])
        a_wall = statistics.median(w for _, w in results["A"][kind])
        b_wall = statistics.median(w for _, w in results["B"][kind])
        # Each round's B against that round's A: how far one round's ratio can stray.
        pairs = zip(results["A"][kind], results["B"][kind], strict=True)
        rounds = [b[0] / a[0] for a, b in pairs]
        print(f"| {kind} | {a_cpu:.3f} | {b_cpu:.3f} | {b_cpu / a_cpu:.3f} | "
              f"{min(rounds):.2f}-{max(rounds):.2f} | "
              f"{a_wall:.3f} | {b_wall:.3f} | {b_wall / a_wall:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
