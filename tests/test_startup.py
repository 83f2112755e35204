"""What a nothing-changed `aggregator build` loads: most of its time is the interpreter's
start and its imports (bench/README.md, issue #18), so the modules and the work it has no
use for must stay out of it. A real process, as a user runs it, after a first build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from articlefiles import bump_mtime, write_article
from building import BASE

# Loaded only by the work a nothing-changed build does not do: reading files (YAML), the
# sync, rendering (feedgen, lxml, entry ids: uuid with platform), writing (tempfile,
# shutil), pings (urllib.request), worker processes, a mistyped command (difflib).
NOT_LOADED = (
    "yaml",
    "re2",
    "feedgen",
    "lxml",
    "uuid",
    "platform",
    "shutil",
    "tempfile",
    "difflib",
    "urllib.request",
    "multiprocessing",
    "concurrent.futures",
    "aggregator.catalog.sync",
    "aggregator.catalog.rows",
    "aggregator.catalog.roster_records",
    "aggregator.catalog.inspect_records",
    "aggregator.catalog.owed_records",
    "aggregator.output.render",
    "aggregator.output.jsonfeed",
    "aggregator.output.indexes",
    "aggregator.reading.articles",
)

_PROBE = """
import json, sys
from aggregator.cli import main

code = main(sys.argv[1:])
from aggregator.reading import front_matter

json.dump(
    {
        "code": code,
        "modules": sorted(sys.modules),
        # The class of characters that makes the fast reader decline a text: compiling
        # it costs more than the rest of reading the config, which is ASCII.
        "unsure_compiled": front_matter._unsure_char.cache_info().currsize,
    },
    sys.stderr,
)
"""


def test_a_nothing_changed_build_loads_only_what_it_uses(tmp_path: Path) -> None:
    articles = tmp_path / "articles"
    for index in range(3):
        write_article(articles, f"a{index}.md", f"https://example.com/{index}", topics=["AI"])
    config = tmp_path / "aggregator.yaml"
    config.write_text("formats: [rss, atom]\nserve: {gzip_sidecars: false}\n", encoding="utf-8")
    args = [
        "build",
        "--config", str(config),
        "--input", str(articles),
        "--output", str(tmp_path / "feeds"),
        "--state", str(tmp_path / "state"),
        "--base-url", BASE,
        "--quiet",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        probe: dict[str, Any] = json.loads(done.stderr[done.stderr.index('{"code"') :])
        assert probe["code"] == 0, done.stderr
        return probe

    first = run()
    assert "aggregator.catalog.sync" in first["modules"]
    again = run()
    loaded = set(again["modules"])
    assert loaded.isdisjoint(NOT_LOADED), sorted(loaded.intersection(NOT_LOADED))
    assert "aggregator.reading.front_matter" in loaded  # the config was read by it
    assert again["unsure_compiled"] == 0
    # One file edited: read by the fast reader, so PyYAML stays out (importing it costs more
    # than reading the file), and so do the records of `status` and `explain`.
    edit = articles / "a1.md"
    edit.write_text(_FAST_READ, encoding="utf-8")
    bump_mtime(edit)
    edited = run()
    loaded = set(edited["modules"])
    assert "aggregator.reading.articles" in loaded  # the file was read, here
    assert loaded.isdisjoint(EDIT_NOT_LOADED), sorted(loaded.intersection(EDIT_NOT_LOADED))


# Loaded by neither a nothing-changed build nor one that reads a file the fast reader reads.
EDIT_NOT_LOADED = (
    "yaml",
    "aggregator.reading.yaml_safe",
    "aggregator.catalog.inspect_records",
    "aggregator.catalog.owed_records",
)

# An article as tests/corpus.py writes them (nested blocks indented), which the fast reader
# reads (`front_matter.parse_fast`).
_FAST_READ = """---
title: "Robots, edited"
excerpt: "An excerpt."
publishedDateTime: 2021-12-16T18:43:00Z
webUrl: "https://example.com/1"
published: true

provider:
  name: Forbes
  domain: forbes.com

topics:
  - AI
  - Robots
---
"""
