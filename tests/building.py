"""The folders a test builds in, as `Settings`, and one build of them: the one copy of what each
test module used to write out for itself."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from aggregator.config import Settings
from aggregator.pipeline import Builder, BuildReport

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
BASE = "https://feeds.example.org/"

# What the tests that run the daemon add: feeds long enough for every seed, builds in worker
# processes, and a debounce short enough that a test waits milliseconds for a build.
DAEMON = {
    "max_items": 5000,
    "workers": 2,
    "debounce_seconds": 0.05,
    "debounce_max_seconds": 0.5,
}


def folder_settings(root: Path, *, seeds: bool = False, **fields: Any) -> Settings:
    """Settings for `root/in`, `root/out` and `root/state`, base_url `BASE`, one worker;
    `fields` set any other field (or replace these). `in` is made empty, or as a copy of the
    seeds with `seeds=True`; `out` and `state` are left to the build."""
    if seeds:
        shutil.copytree(SEEDS, root / "in")
    else:
        (root / "in").mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "input": root / "in",
        "output": root / "out",
        "state": root / "state",
        "base_url": BASE,
        "workers": 1,
        **fields,
    }
    return Settings(**values)


def build(settings: Settings) -> BuildReport:
    """One build of `settings`' folders, in this process."""
    with Builder(settings) as builder:
        return builder.build()
