#!/usr/bin/env python3
"""Where the instructions of one `aggregator` command go: each module's import (its body
alone, the modules it imports counted apart) and the functions named with `--wrap`.

    .venv/bin/python bench/startup.py [--wrap MODULE:QUALNAME ...] -- build --config ... \\
        --input IN --output OUT --state STATE --base-url URL

The command runs once, from this checkout's root (run the script with the checkout's
.venv), under `valgrind --tool=callgrind`, which counts user-space instructions: the one
figure a loaded machine cannot move (it leaves out the kernel's side of the system calls,
such as a scan's stats). A marker (`os.getppid()`,
on which callgrind is told to dump its counts) is called as each module's body starts and
ends and around each wrapped function, so the counts between two markers belong to the
innermost module or function open then. Prints a Markdown table, biggest first; `<start>`
is the interpreter's start (with this script's few imports: about 40 M more than
`python -c pass`), `<exit>` its finalization, `<main>` what runs outside every module and
wrapped function. The wrapped functions' modules are imported before the command runs, so
their import counts are the same but come earlier.

Default `--wrap`: the steps of a build (parsing the command line, loading the config, the
builder's start, the scan, the catalog's signatures, the render stage, closing).
"""

from __future__ import annotations

# Only what the interpreter has loaded already, or nearly: the child process measures the
# command's imports, and a module this script imported first would be charged to `<start>`.
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import ModuleType

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WRAP = (
    "aggregator.cli.program:_parse",
    "aggregator.cli.program:_loaded",
    "aggregator.delivery.logs:configure_logging",
    "aggregator.pipeline.builder:Builder.__init__",
    "aggregator.pipeline.builder:find_changes",
    "aggregator.catalog.files:FilesMixin.file_signatures",
    "aggregator.catalog.store:Catalog.sync",
    "aggregator.pipeline.builder:Builder._after_sync",
    "aggregator.pipeline.rendering:RenderMixin._render",
    "aggregator.pipeline.builder:Builder.close",
)

_EVENTS: list[tuple[str, str]] = []


def _mark(kind: str, name: str) -> None:
    _EVENTS.append((kind, name))
    os.getppid()  # callgrind dumps its counts before each call (--dump-before=os_getppid)


class _Marking(importlib.abc.MetaPathFinder):
    """Finds modules as the other finders do, and marks the start and end of each body."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _MarkingLoader(spec.loader, name)
            return spec
        return None


class _MarkingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        _mark("start", self._name)
        try:
            self._loader.exec_module(module)
        finally:
            _mark("end", self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader, attribute)


def _wrap(spec: str) -> None:
    module_name, _, qualname = spec.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    function: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _mark("start", "@" + qualname)
        try:
            return function(*args, **kwargs)
        finally:
            _mark("end", "@" + qualname)

    setattr(owner, name, wrapper)


def _child(events_path: str, wraps: list[str], argv: list[str]) -> int:
    """In the process callgrind runs: the command, with its markers."""
    sys.meta_path.insert(0, _Marking())
    for spec in wraps:
        _wrap(spec)
    from aggregator.cli import main

    _mark("start", "<main>")
    try:
        code = main(argv)
    finally:
        _mark("end", "<main>")
        with open(events_path, "w", encoding="utf-8") as out:
            out.writelines(f"{kind} {name}\n" for kind, name in _EVENTS)
    return code


def _totals(folder: Path) -> dict[int, int]:
    """Instructions of each dump part (1: before the first marker), and of the last one
    (the interpreter's exit) under 0."""
    import re

    parts: dict[int, int] = {}
    for path in folder.glob("cg.out*"):
        suffix = path.name.rpartition(".")[2]
        text = path.read_text(encoding="utf-8", errors="replace")
        found = re.search(r"^totals: (\d+)", text, re.MULTILINE)
        parts[int(suffix) if suffix.isdigit() else 0] = int(found.group(1)) if found else 0
    return parts


def _report(events: list[tuple[str, str]], parts: dict[int, int]) -> list[tuple[str, int]]:
    from collections import Counter

    own: Counter[str] = Counter()
    stack = ["<start>"]
    for number, (kind, name) in enumerate(events, start=1):
        own[stack[-1]] += parts.get(number, 0)  # what ran before marker `number`
        if kind == "start":
            stack.append(name)
        else:
            stack.pop()
    own["<exit>"] += parts.get(0, 0) + sum(v for k, v in parts.items() if k > len(events))
    return own.most_common()


def main() -> int:
    if sys.argv[1:2] == ["--child"]:  # inside valgrind: `--child EVENTS -- COMMAND...`
        wraps = [w for w in os.environ.get("STARTUP_WRAP", "").split(",") if w]
        return _child(sys.argv[2], wraps, sys.argv[4:])
    import argparse
    import subprocess
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--wrap", nargs="*", default=list(DEFAULT_WRAP), metavar="MOD:NAME")
    parser.add_argument("--top", type=int, default=40, help="rows shown (default 40)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the aggregator command")
    args = parser.parse_args()
    command = [word for word in args.command if word != "--"] or ["--help"]
    with tempfile.TemporaryDirectory(prefix="aggregator-startup-") as tmp:
        folder = Path(tmp)
        events_path = folder / "events.txt"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-before=os_getppid",
                f"--callgrind-out-file={folder / 'cg.out'}",
                sys.executable,
                os.path.abspath(__file__),
                "--child",
                str(events_path),
                "--",
                *command,
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "STARTUP_WRAP": ",".join(args.wrap)},
            capture_output=True,
            text=True,
            check=False,
        )
        if not events_path.exists():
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        lines = events_path.read_text(encoding="utf-8").splitlines()
        events = [(kind, name) for kind, _, name in (line.partition(" ") for line in lines)]
        rows = _report(events, _totals(folder))
    total = sum(count for _, count in rows)
    print(f"{total / 1e6:.1f} M instructions in all (valgrind, user space)\n")
    print("| where | M instructions | % |\n|---|---:|---:|")
    for name, count in rows[: args.top]:
        print(f"| `{name}` | {count / 1e6:.1f} | {100 * count / total:.1f} |")
    imports = sum(count for name, count in rows if not name.startswith(("@", "<")))
    print(f"\nmodule bodies (imports) together: {imports / 1e6:.1f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
