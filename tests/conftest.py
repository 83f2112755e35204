"""Shared fixtures. Each block below belongs to one area; add yours as a separate block."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
from pgserver import PostgresServer, running_server

# --- threads (daemon, watcher) ------------------------------------------------------------
# A test that leaves a thread running hides a missing stop() or join(): the next test then
# shares an observer or a scheduler with it, and the process may never exit. Non-daemon
# threads block interpreter exit outright; watchdog's observer threads and APScheduler's
# scheduler thread are daemon threads, but a live one still means a stop was missed.

# How long a thread may take to finish after the test (a join already in progress).
_THREAD_GRACE_SECONDS = 2.0


def _must_not_outlive_a_test(thread: threading.Thread) -> bool:
    if not thread.daemon:
        return True
    module = type(thread).__module__ or ""
    return module.startswith(("watchdog.", "apscheduler.")) or thread.name.startswith("APScheduler")


def _leftover_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and _must_not_outlive_a_test(t)
    ]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Fail a test that leaves a non-daemon thread, an observer or a scheduler running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + _THREAD_GRACE_SECONDS
    leftover = _leftover_threads(before)
    while leftover and time.monotonic() < deadline:
        time.sleep(0.02)
        leftover = _leftover_threads(before)
    if leftover:
        names = ", ".join(f"{t.name} ({type(t).__module__}.{type(t).__name__})" for t in leftover)
        pytest.fail(f"test left threads running: {names}", pytrace=False)


# --- logging ---------------------------------------------------------------------------
# A command run in-process (`main([...])`) installs a root handler on the sys.stderr of that
# moment, which is pytest's capture of that test: a later test's log line would then go to a
# closed stream ("--- Logging error ---"). Each test gets the root logger back as it was.


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


# --- catalog backends (SQLite, PostgreSQL) ------------------------------------------------
# The catalog's tests run on both backends. PostgreSQL is a real server started once per
# session (tests/pgserver.py); each test gets a database of its own. Missing binaries skip
# the PostgreSQL half locally and fail it in CI (CI=true), where .ci/run installs them.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the whole session."""
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_backend(request: pytest.FixtureRequest) -> str | None:
    """The `catalog:` setting of a test's catalog: None (SQLite in `state`) or a fresh
    PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- hypothesis (tests/test_fuzz.py) ------------------------------------------------------
# `ci` (the default, and what CI runs): a small budget that keeps the suite quick.
# `long`: a local hunt, HYPOTHESIS_PROFILE=long ./run.sh test tests/test_fuzz.py (minutes).
# No deadline per example: the reader's time bound is asserted in CPU time by the tests.

from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
hypothesis_settings.register_profile(
    "ci", max_examples=150, deadline=None, database=None, suppress_health_check=_SLOW_OK
)
hypothesis_settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=_SLOW_OK
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
