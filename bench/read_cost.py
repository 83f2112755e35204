#!/usr/bin/env python3
"""Reading cost per file: the worst cases found for issue 6, in CPU seconds.

Each case is one article file of up to 1 MiB (the default `max_file_bytes`), read through the
whole per-file boundary (`pipeline.workers.read_stored`: read, parse, Article, stored form), as a
build does. The promise (README): no file under `max_file_bytes` costs more than about a
second of CPU; `tests/test_articles.py` holds the same cases to it. Run from the repository
root::

    .venv/bin/python bench/read_cost.py            # every case
    .venv/bin/python bench/read_cost.py decimal    # some of them
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from aggregator.membership import DEFAULT_RULES
from aggregator.pipeline.workers import read_stored

LIMIT = 1_048_576
SIZE = LIMIT - 200
HEAD = "---\ntitle: T\nwebUrl: https://e.com/a\npublished: true\n"

CASES = {
    "sexagesimal int": "x: 1" + ":0" * (SIZE // 2 - 100),
    "sexagesimal float": "x: 1" + ":0" * (SIZE // 2 - 100) + ".5",
    "decimal int": "x: " + "1" * SIZE,
    "hex int": "x: 0x" + "f" * SIZE,
    "float": "x: 1." + "0" * SIZE + "e5",
    "many keys": "".join(f"k{i}: v\n" for i in range(SIZE // 12)),
    "many flow keys": "x: {" + ", ".join(f"k{i}: {i}" for i in range(SIZE // 14)) + "}",
    "many empty lists": "".join(f"x{i}: " + "[" * 30 + "]" * 30 + "\n" for i in range(SIZE // 70)),
    "related links, 2,800": "related:\n"
    + "".join(
        f"  - {{title: t{i}, webUrl: 'https://e.com/{i}',"
        f" publishedDateTime: 2021-01-01T10:00:00.123+05:30}}\n"
        for i in range(2800)
    ),
    "dates, 19,900": "x: [" + ", ".join(f"2021-01-01 10:00:00.{i}" for i in range(19_900)) + "]",
    "int topics, 19,900": "topics: [" + ", ".join(str(i) for i in range(19_900)) + "]",
    "error at the end": "x: [" + ", ".join("a" for _ in range(SIZE // 3)) + "\n]]]",
    "long quoted, error at the end": "x: '" + "a" * SIZE + "'\n]",
    "long keys": "".join(f"{'k' * 1000}{i}: v\n" for i in range(SIZE // 1010)),
    "escapes": 'excerpt: "' + "\\ud83d\\ude00\\x01" * (SIZE // 16) + '"',
    "published lines, broken": "published: false\n" * (SIZE // 17) + "[",
}


def main(names: list[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="read-cost-"))
    print(f"{'case':34} {'CPU s':>7}  outcome")
    for name, text in CASES.items():
        if names and name not in names:
            continue
        data = (HEAD + text)[: SIZE - 10].encode() + b"\n---\n"
        (folder / "a.md").write_bytes(data)
        started = time.process_time()
        _, _, error, _ = read_stored(str(folder), "a.md", LIMIT, DEFAULT_RULES)
        spent = time.process_time() - started
        outcome = "read" if error is None else "rejected: " + error.split(": ", 1)[1][:48]
        print(f"{name:34} {spent:7.3f}  {outcome}")


if __name__ == "__main__":
    main(sys.argv[1:])
