"""The import rules of docs/architecture.md, from the tables in tests/layout.py: data flows one
way, each sub-package is entered only through its face, each library has its owners, and no
module, class or function grows into a god object."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from layout import (
    FACES,
    GROUND,
    MAX_CLASS_LINES,
    MAX_FUNCTION_LINES,
    MAX_MODULE_LINES,
    MAY_IMPORT,
    OWNERS,
    PACKAGE,
    allowed_wings,
    module_name,
    modules,
    render_module_table,
    wing_of,
)

REPO = PACKAGE.parent


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module of ours or a library's that `path` imports, with the line: relative imports
    resolved, and `from aggregator import x` read as `aggregator.x` when x is a module."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if candidate.replace(".", "/") in _MODULE_PATHS:
                    found.append((candidate, node.lineno))
    return found


_MODULE_PATHS = {
    module_name(p).replace(".", "/")
    for p in PACKAGE.rglob("*.py")
    if p.name != "__init__.py"
} | {module_name(p).replace(".", "/") for p in PACKAGE.rglob("__init__.py")}


def test_every_module_belongs_to_a_wing_in_the_table() -> None:
    for path in modules():
        wing = wing_of(module_name(path))
        assert wing in MAY_IMPORT or wing in GROUND or wing in {"", "__main__"}, (
            f"{module_name(path)}: add {wing!r} to MAY_IMPORT in tests/layout.py"
        )


def test_the_table_is_a_dag() -> None:
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(wing: str, trail: tuple[str, ...]) -> None:
        assert wing not in visiting, f"a cycle: {' -> '.join((*trail, wing))}"
        if wing in done:
            return
        visiting.add(wing)
        for other in MAY_IMPORT.get(wing, set()) - {"*"}:
            visit(other, (*trail, wing))
        visiting.discard(wing)
        done.add(wing)

    for wing in MAY_IMPORT:
        visit(wing, ())


def test_no_module_imports_a_wing_it_may_not() -> None:
    problems = []
    for path in modules():
        own = module_name(path)
        mine = wing_of(own)
        for name, line in imports_of(path):
            if not name.startswith("aggregator.") or name == "aggregator":
                continue
            theirs = wing_of(name)
            if theirs == mine or theirs in GROUND:
                continue
            if theirs not in allowed_wings(mine):
                problems.append(f"{path.relative_to(REPO)}:{line}: {mine} imports {theirs}")
    assert not problems, "\n".join(problems)


def test_ground_imports_only_ground() -> None:
    for path in modules():
        own = module_name(path)
        if wing_of(own) not in GROUND:
            continue
        for name, line in imports_of(path):
            if name.startswith("aggregator.") and name != "aggregator":
                assert wing_of(name) in GROUND, f"{own}:{line} imports {name}"


def test_other_wings_enter_a_wing_only_through_its_face() -> None:
    problems = []
    for path in modules():
        own = module_name(path)
        mine = wing_of(own)
        for name, line in imports_of(path):
            if not name.startswith("aggregator.") or name == "aggregator":
                continue
            theirs = wing_of(name)
            if theirs == mine or theirs in GROUND:
                continue
            faces = FACES.get(theirs, {theirs})
            if name.removeprefix("aggregator.") not in faces:
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {name}, not its face")
    assert not problems, "\n".join(problems)


def test_each_library_is_imported_by_its_owners_only() -> None:
    problems = []
    for path in modules():
        own = module_name(path).removeprefix("aggregator.")
        for name, line in imports_of(path):
            for library in {name.split(".")[0], name}:
                if library in OWNERS and own not in OWNERS[library]:
                    problems.append(f"{own}:{line} imports {library}")
    assert not problems, "\n".join(problems)


def _definitions(tree: ast.AST) -> list[ast.AST]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef | ast.FunctionDef)]


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_no_god_objects(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split the module"
    for node in _definitions(ast.parse(text)):
        assert isinstance(node, ast.ClassDef | ast.FunctionDef)
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
        assert size <= limit, f"{node.name} (line {node.lineno}) has {size} lines, over {limit}"


def test_the_server_only_reads() -> None:
    """The server opens files read-only and calls nothing that writes, moves or deletes.

    One module is let off: `subscribers.py` writes its one file, `<state>/subscribers.json`
    (the counts feed readers report), into the state folder, never the output folder
    (tests/test_access_log.py checks where it lands).
    """
    writers = {
        "O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "write_bytes", "write_text",
        "unlink", "remove", "rename", "replace", "mkdir", "rmdir", "utime", "chmod", "mkstemp",
        "PublishBatch", "publish_all",
    }  # fmt: skip
    for path in (PACKAGE / "serve").rglob("*.py"):
        if path.name == "subscribers.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert not names & writers, (path.name, sorted(names & writers))


def test_the_module_table_in_the_docs_is_the_layout() -> None:
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    start, end = "<!-- layout table: begin -->", "<!-- layout table: end -->"
    assert start in doc, f"docs/architecture.md lacks the {start} marker"
    assert end in doc, f"docs/architecture.md lacks the {end} marker"
    current = doc.split(start, 1)[1].split(end, 1)[0].strip()
    assert current == render_module_table().strip(), (
        "docs/architecture.md's layout table drifted: regenerate it with "
        "`python tests/layout.py --write`"
    )
