#!/usr/bin/env python3
"""Where a build's CPU goes, by stage, from py-spy raw profiles of `aggregator build`.

    .venv/bin/pip install py-spy      # a profiling tool only: not a dependency
    py-spy record --subprocesses -r 250 -f raw -o prof.txt -- \\
        .venv/bin/python -m aggregator build --input IN --output OUT --state STATE
    .venv/bin/python bench/profile_stages.py prof.txt [more.txt ...]

Each sample is put in the first stage whose marker (a function or file name) is anywhere in
its stack, so a stage counts everything it calls. Samples of a thread waiting (for a lock, a
pipe, the fsync thread's `fsync`, the kernel's `open(O_CREAT)` behind it) are left out: py-spy
counts a thread in a system call as active, but such a thread uses no CPU. So are samples with
no Python frame at all (the interpreter starting or exiting; how many varies from run to run
under load). Prints a Markdown table: stage, % of the remaining samples.
"""

from __future__ import annotations

import sys
from collections import Counter

# Leaf frames of a thread that waits rather than computes.
WAITING = (
    "Condition.wait",
    "selectors.py",
    "exit_with_owner",
    "Connection._recv",
    "_fsync (",
    "_mkstemp_inner",
    "Thread.join",
    "_wait_for_tstate_lock",
    "poll (",
    "take_sigterm",  # a worker's thread blocked in sigwaitinfo for the owner's SIGTERM
)

# (stage, marker): the first marker found in a sample's stack names its stage.
STAGES = (
    ("read: fast YAML parser (parse_fast)", "parse_fast"),
    ("read: front matter, other", "front_matter.py"),
    ("read: article_to_json", "article_to_json"),
    ("read: article_to_json", "_article_data"),  # its dict and bytes since orjson: f18-cold
    ("read: article_to_json", "dumps (aggregator/catalog/records.py"),
    ("read: feeds_of + fingerprint", "feeds_of"),
    ("read: feeds_of + fingerprint", "_fingerprint"),
    ("read: wire format (astuple)", "astuple"),
    ("read: open, fields -> Article, rest", "read_stored"),
    ("read: open, fields -> Article, rest", "_read_chunk"),
    ("render: JSON Feed", "jsonfeed.py"),
    ("render: gzip sidecars", "gzip"),
    ("render: feedgen entries + XML", "render.py"),
    ("render: catalog reads, planning", "_render_chunk"),
    ("render: catalog reads, planning", "render_feeds"),
    ("catalog sync (main process)", "FilesMixin"),
    ("catalog close / checkpoint", "SqliteBackend.close"),
    ("publish: write, rename files", "publish.py"),
    ("publish: write, rename files", "outputs.py"),
    ("scan sources (stat)", "sources.py"),
    ("imports / start-up", "_find_and_load"),
    ("worker process start, pickling", "multiprocessing"),
    ("worker process start, pickling", "concurrent/futures"),
)


def stages(paths: list[str]) -> tuple[Counter[str], int]:
    """Samples per stage over the profiles at `paths`, and their total."""
    counts: Counter[str] = Counter()
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                stack, _, count = line.rstrip().rpartition(" ")
                frames = stack.split(";")
                if all(f.startswith("process ") for f in frames):
                    continue  # no Python frame: start-up or exit of the interpreter
                if any(w in frames[-1] for w in WAITING):
                    continue
                stage = next((s for s, mark in STAGES if mark in stack), "other")
                counts[stage] += int(count)
    return counts, sum(counts.values())


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    counts, total = stages(sys.argv[1:])
    print(f"| stage | % of CPU samples ({total}) |")
    print("| --- | ---: |")
    for stage, count in counts.most_common():
        print(f"| {stage} | {100 * count / total:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
