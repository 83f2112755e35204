"""Each class of PostgreSQL error gets its own hint (aggregator/catalog/pgconnect.py's table),
produced for real on the test server: a refused password, a missing database, no free
connection slot, a read-only database, a statement and a lock that run out of time, a full
disk and a serialization failure (raised by the server from a trigger, as the real ones
are: a real SQLSTATE through the real driver and our real translation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from articlefiles import write_article
from building import folder_settings
from pgserver import PostgresServer

from aggregator.catalog import Catalog
from aggregator.errors import CatalogError
from aggregator.pipeline import Builder

MIGRATE_LOCK = 0x61676772_0002


def admin(url: str) -> psycopg.Connection[object]:
    return psycopg.connect(url, autocommit=True)


def refusal(url: str) -> str:
    """The message of the CatalogError that opening a catalog at `url` ends in."""
    with pytest.raises(CatalogError) as caught:
        Catalog(url, node="n1").close()
    message = str(caught.value)
    assert "is PostgreSQL running?" not in message, message  # the server answered
    return message


def with_options(url: str, options: str) -> str:
    return f"{url}?options={quote(options)}"


def test_a_refused_password(postgres_server: PostgresServer, postgres_url: str) -> None:
    hba = postgres_server.data / "pg_hba.conf"
    with admin(postgres_url) as conn:
        conn.execute("CREATE ROLE pw_user LOGIN PASSWORD 'right-one'")
    original = hba.read_text()
    hba.write_text(f"host all pw_user 127.0.0.1/32 scram-sha-256\n{original}")
    try:
        with admin(postgres_url) as conn:
            conn.execute("SELECT pg_reload_conf()")
        url = postgres_url.replace("aggregator@", "pw_user:wrong-one@")
        message = refusal(url)
    finally:
        hba.write_text(original)
        with admin(postgres_url) as conn:
            conn.execute("SELECT pg_reload_conf()")
    assert "refused the password: fix the user or password in `catalog:`" in message
    assert "wrong-one" not in message


def test_a_missing_database(postgres_server: PostgresServer) -> None:
    message = refusal(postgres_server.url("no_such_db"))
    assert "the database does not exist: create it (`createdb NAME`)" in message


def test_no_free_connection_slot(postgres_server: PostgresServer, postgres_url: str) -> None:
    # A node needs several sessions; a role allowed one runs out at the second.
    with admin(postgres_url) as conn:
        conn.execute("CREATE ROLE one_slot LOGIN CONNECTION LIMIT 1")
        conn.execute("CREATE DATABASE one_slot_db OWNER one_slot")
    try:
        message = refusal(postgres_server.url("one_slot_db").replace("aggregator@", "one_slot@"))
        assert "no free connection slot for this role or database" in message
    finally:
        postgres_server.drop_database(postgres_server.url("one_slot_db"))


def test_a_read_only_database(postgres_url: str) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    with admin(postgres_url) as conn:
        conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    message = refusal(postgres_url)
    assert "the database is read-only (a standby, or default_transaction_read_only)" in message


@contextlib.contextmanager
def holding(url: str, key: int) -> Iterator[None]:
    """Another session holds an advisory lock of ours."""
    with admin(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield


def test_a_statement_that_runs_out_of_time(postgres_url: str) -> None:
    # The URL's own options come after ours, and PostgreSQL keeps the last value.
    url = with_options(postgres_url, "-c statement_timeout=300 -c lock_timeout=0")
    Catalog(postgres_url, node="n1").close()  # the schema exists; the next open waits
    with holding(postgres_url, MIGRATE_LOCK):
        message = refusal(url)
    assert "a statement ran longer than statement_timeout" in message


def test_a_lock_that_runs_out_of_time(postgres_url: str) -> None:
    url = with_options(postgres_url, "-c lock_timeout=300")
    Catalog(postgres_url, node="n1").close()
    with holding(postgres_url, MIGRATE_LOCK):
        message = refusal(url)
    assert "another session held a lock longer than lock_timeout" in message


def test_our_bounded_waits_are_set_on_every_session(postgres_url: str) -> None:
    with Catalog(postgres_url, node="n1"), admin(postgres_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
    assert rows is not None
    assert rows[0] >= 2  # the catalog's and its name's claim
    with Catalog(postgres_url, node="n1") as catalog:
        db = catalog._backend.db
        shown = {
            name: db.execute(f"SHOW {name}").fetchone()[0]
            for name in ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
        }
    assert shown == {
        "lock_timeout": "20s",
        "statement_timeout": "1min",
        "idle_in_transaction_session_timeout": "15s",
    }


@pytest.mark.parametrize(
    ("errcode", "hint"),
    [
        ("disk_full", "the database server's disk is full: free space on it"),
        ("serialization_failure", "a conflict with another node's transaction"),
    ],
)
def test_a_server_error_raised_in_a_sync(
    tmp_path: Path, postgres_url: str, errcode: str, hint: str
) -> None:
    settings = folder_settings(tmp_path, catalog=postgres_url, node="n1")
    write_article(settings.input, "a.md", "https://example.com/a")
    Catalog(postgres_url, node="n1").close()  # the schema
    with admin(postgres_url) as conn:
        conn.execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION 'as the server says it' USING ERRCODE = '{errcode}'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON files FOR EACH ROW EXECUTE FUNCTION fail()"
        )
    with Builder(settings) as builder, pytest.raises(CatalogError) as caught:
        builder.build()
    message = str(caught.value)
    assert hint in message
    assert "the daemon retries it with backoff" in message
    assert "is PostgreSQL running?" not in message
