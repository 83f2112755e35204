#!/usr/bin/env python3
"""The runtime lock, derived from the dev lock: pyproject's `[project].dependencies` and what
they need in turn, each at the version the dev lock (`requirements.lock`) pins.

The dependency graph comes from the metadata of the installed distributions (no network), so
run it in a virtual environment installed from that dev lock::

    .venv/bin/python tests/locks.py requirements.lock > requirements-runtime.lock

`./run.sh upgrade-check` runs it on the freeze of the newest versions; tests/test_locks.py
checks that the committed runtime lock is what it writes.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The runtime lock: what `./run.sh build`, `run` and `serve` install. Exactly the packages
# pyproject.toml's [project].dependencies need, at the versions of requirements.lock (the dev
# and test lock, a superset). Written by `.venv/bin/python tests/locks.py requirements.lock`;
# do not edit by hand (tests/test_locks.py checks it).
"""


def canonical(name: str) -> str:
    """The name as PEP 503 compares it: `PyYAML`, `pyyaml` and `py_yaml` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, tuple[str, str]]:
    """canonical name → (name as written, version) for every `name==version` line."""
    pins: dict[str, tuple[str, str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise ValueError(f"{path.name}: not an exact pin: {raw!r}")
        pins[canonical(name.strip())] = (name.strip(), version.strip())
    return pins


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return [Requirement(text) for text in data["project"]["dependencies"]]


def closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of `requirements` and of everything they require, for this Python and
    platform (markers evaluated here, as pip evaluates them), from the installed metadata."""
    found: set[str] = set()
    followed: set[tuple[str, str]] = set()  # (name, extra) whose requirements were queued
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()  # `extra`: the one its marker is evaluated with
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonical(requirement.name)
        found.add(name)
        for chosen in ("", *sorted(requirement.extras)):
            if (name, chosen) in followed:
                continue
            followed.add((name, chosen))
            try:
                requires = distribution(requirement.name).requires or []
            except PackageNotFoundError:
                raise LookupError(f"{requirement.name} is not installed here") from None
            todo += [(Requirement(text), chosen) for text in requires]
    return found


def runtime_lock(dev_lock: Path, pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The text of the runtime lock for `dev_lock`, in that lock's order and spelling."""
    pins = read_lock(dev_lock)
    names = closure(runtime_requirements(pyproject))
    missing = sorted(names - pins.keys())
    if missing:
        raise LookupError(f"{dev_lock.name} does not pin {', '.join(missing)}")
    lines = [f"{pins[n][0]}=={pins[n][1]}" for n in pins if n in names]
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tests/locks.py DEV_LOCK > RUNTIME_LOCK")
    sys.stdout.write(runtime_lock(Path(sys.argv[1])))
