"""The import rules of docs/architecture.md: data flows one way, each library in one module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"

# Position in the chain: a module may import only modules at a lower position.
ORDER = [
    ["errors", "model", "faults"],
    ["slugs", "sources"],
    ["feeddefs"],
    ["config"],
    ["starter"],
    ["front_matter"],
    ["articles"],
    # catalog_postgres is the catalog's PostgreSQL half: the same stage.
    ["catalog", "catalog_postgres"],
    ["plan"],
    ["indexes"],
    ["content"],
    ["jsonfeed"],
    ["render"],
    ["publish"],
    # Serves what publish wrote: reads the output folder only, never writes.
    ["serve"],
    ["notify"],
    ["websub"],
    ["build"],
    ["watch"],
    ["daemon"],
    ["completion"],
    ["manpage"],
    ["cli"],
    ["__main__"],
]
RANK = {name: rank for rank, names in enumerate(ORDER) for name in names}

# Third-party libraries and the one module allowed to import each.
OWNERS = {
    "feedgen": {"render"},
    "watchdog": {"watch"},
    "apscheduler": {"daemon"},
    "sqlite3": {"catalog"},
    "psycopg": {"catalog_postgres"},
    "urllib.request": {"websub"},
    "yaml": {"front_matter", "articles", "config"},
    "aiohttp": {"serve"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_module_has_a_place_in_the_chain() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert modules <= set(RANK), f"add {sorted(modules - set(RANK))} to ORDER"


def test_no_module_reaches_back_up_the_chain() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__init__":
            continue
        for name in imports_of(path):
            if name.startswith("aggregator.") and name != "aggregator":
                target = name.split(".")[1]
                assert RANK[target] <= RANK[path.stem], f"{path.stem} imports {target}"


def test_each_library_is_imported_by_its_one_module() -> None:
    for path in PACKAGE.glob("*.py"):
        for name in imports_of(path):
            for library in (name.split(".")[0], name):
                if library in OWNERS:
                    assert path.stem in OWNERS[library], f"{path.stem} imports {library}"


def test_the_server_only_reads() -> None:
    """serve.py opens files read-only and calls nothing that writes, moves or deletes."""
    tree = ast.parse((PACKAGE / "serve.py").read_text(encoding="utf-8"))
    writers = {
        "O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "write_bytes", "write_text",
        "unlink", "remove", "rename", "replace", "mkdir", "rmdir", "utime", "chmod", "mkstemp",
        "PublishBatch", "publish_all",
    }  # fmt: skip
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not names & writers, sorted(names & writers)
