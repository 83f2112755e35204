"""The package's layout as tables: which wing (sub-package) may import which, each wing's face,
and the owners of each third-party library. tests/test_architecture.py checks the code against
them, and docs/architecture.md's module table is made from them and the modules' docstrings
(`python tests/layout.py --write` rewrites it), so neither can drift."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"

# The data types, the errors, the one Backoff, how counts are written and the faces' resolver:
# any module may import these, and they import nothing else of ours.
GROUND = {"errors", "faults", "model", "events", "backoff", "words", "faces"}

# wing -> the wings it may import (GROUND always). A DAG, not a rank list: peers that have
# nothing to say to each other (reading and membership, serve and delivery) may not.
MAY_IMPORT: dict[str, set[str]] = {
    "membership": set(),
    "reading": set(),
    "config": {"membership", "reading"},
    "catalog": {"membership", "reading"},
    "output": {"membership", "config"},
    "delivery": {"catalog"},
    "serve": {"config", "output"},
    "pipeline": {"membership", "reading", "config", "catalog", "output"},
    "daemon": {"reading", "config", "catalog", "delivery", "pipeline"},
    # The metrics and the health check: change events and the daemon's hooks in (both
    # handed over by cli), the catalog read at scrape time. Nothing imports it but cli.
    "observe": {"config", "catalog"},
    "cli": {"*"},
    # `python -m aggregator`: the command line, nothing else.
    "__main__": {"cli"},
}

# The modules another wing may import; by default only the wing's __init__ (its face).
FACES: dict[str, set[str]] = {}

# Third-party libraries (and stdlib modules with one job) and the modules allowed to import each.
OWNERS: dict[str, set[str]] = {
    "feedgen": {"output.render"},
    "watchdog": {"daemon.watch"},
    "apscheduler": {"daemon.jobs"},
    "prometheus_client": {"observe.metrics"},
    "sqlite3": {"catalog.sqlite", "catalog.maintenance"},
    "psycopg": {"catalog.postgres", "catalog.cluster", "catalog.pgconnect", "catalog.claim"},
    "urllib.request": {"delivery.websub", "delivery.deadline"},
    "yaml": {"reading.yaml_safe", "reading.articles", "config.loading"},
    "aiohttp": {"serve.server", "serve.limits", "serve.http_logs"},
    "anyascii": {"membership.slugs"},
    "re2": {"membership.patterns"},
    "tqdm": {"cli.commands"},
    "zlib_ng": {"output.publish"},
    "orjson": {"catalog.records", "output.jsonfeed"},
}

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 100


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def wing_of(name: str) -> str:
    """aggregator.catalog.store -> catalog; aggregator.model -> model; aggregator -> ''."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def allowed_wings(wing: str) -> set[str]:
    allowed = MAY_IMPORT.get(wing, set())
    if "*" in allowed:
        return set(MAY_IMPORT) | GROUND
    return allowed


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = doc.split("\n\n")[0]
    return " ".join(paragraph.split()).replace("|", "\\|")


def _owned(module: str) -> list[str]:
    return sorted(lib for lib, owners in OWNERS.items() if module in owners)


def render_module_table() -> str:
    """The module table of docs/architecture.md: one row per module, grouped by wing."""
    rows = ["| module | owns (its docstring) | libraries |", "| --- | --- | --- |"]
    order = ["", *sorted(GROUND), *MAY_IMPORT]
    for wing in order:
        paths = [p for p in modules() if wing_of(module_name(p)) == wing]
        if wing and wing not in GROUND and wing != "__main__":
            may = sorted(allowed_wings(wing)) if "*" not in MAY_IMPORT[wing] else ["every wing"]
            rows.append(f"| **`{wing}/`** | may import: {', '.join(may) or 'ground only'} | |")
        for path in paths:
            name = module_name(path).removeprefix("aggregator.").removeprefix("aggregator")
            shown = str(path.relative_to(PACKAGE))
            rows.append(f"| `{shown}` | {_first_line(path)} | {', '.join(_owned(name))} |")
    return "\n".join(rows) + "\n"


def _write() -> None:
    doc_path = PACKAGE.parent / "docs" / "architecture.md"
    doc = doc_path.read_text(encoding="utf-8")
    start, end = "<!-- layout table: begin -->", "<!-- layout table: end -->"
    head, rest = doc.split(start, 1)
    tail = rest.split(end, 1)[1]
    doc_path.write_text(f"{head}{start}\n{render_module_table()}{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
    else:
        sys.stdout.write(render_module_table())
