"""The two locks: requirements-runtime.lock (what `./run.sh build|run|serve` install) is exactly
the runtime closure of pyproject's [project].dependencies at the versions of requirements.lock
(the dev lock that `test`, `lint` and `bench` install). No network: the files and the installed
metadata only."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from locks import canonical, read_lock, runtime_lock, runtime_requirements
from services import service_missing

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "requirements.lock"
RUNTIME = ROOT / "requirements-runtime.lock"


def test_every_runtime_pin_is_the_dev_locks_and_every_direct_dependency_is_pinned() -> None:
    dev, runtime = read_lock(DEV), read_lock(RUNTIME)
    for name, (spelled, pinned) in runtime.items():
        assert name in dev, f"{spelled} is in {RUNTIME.name} but not in {DEV.name}"
        assert dev[name] == (spelled, pinned), f"{spelled}: {pinned} here, {dev[name]} there"
    for requirement in runtime_requirements():
        name = canonical(requirement.name)
        assert name in runtime, f"{requirement.name} (pyproject) is not in {RUNTIME.name}"
        assert requirement.specifier.contains(runtime[name][1]), f"{requirement} vs {runtime[name]}"
    assert not {"pytest", "mypy", "ruff", "celery", "flask", "hypothesis"} & runtime.keys()


def test_the_runtime_lock_is_exactly_the_closure_of_the_runtime_dependencies() -> None:
    stale = []
    for name, (spelled, pinned) in read_lock(DEV).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            stale.append(f"{spelled} {installed} (locked {pinned})")
    if stale:  # ./run.sh upgrade-check runs the suite on newer versions: nothing to compare
        service_missing(f"the installed versions are not the locked ones: {', '.join(stale)}")
    expected = runtime_lock(DEV)
    assert RUNTIME.read_text(encoding="utf-8") == expected, (
        f"{RUNTIME.name} is stale: .venv/bin/python tests/locks.py {DEV.name} > {RUNTIME.name}"
    )


def test_run_sh_installs_the_runtime_lock_to_run_and_the_dev_lock_to_develop() -> None:
    script = (ROOT / "run.sh").read_text(encoding="utf-8")
    tasks = dict(re.findall(r"^ {4}([a-z-]+)\) (.*) ;;$", script, flags=re.MULTILINE))
    for task in ("build", "run", "serve"):
        assert tasks[task].startswith("setup runtime;"), tasks[task]
    for task in ("test", "lint", "bench"):
        assert tasks[task].startswith("setup dev;"), tasks[task]
    assert f"RUNTIME_LOCK={RUNTIME.name}" in script
    assert f"DEV_LOCK={DEV.name}" in script


@pytest.mark.parametrize("path", [DEV, RUNTIME], ids=lambda p: p.name)
def test_a_lock_pins_each_project_once(path: Path) -> None:
    names = [
        canonical(line.partition("==")[0])
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(names) == len(set(names))
