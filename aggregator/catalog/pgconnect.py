"""How this package talks to PostgreSQL: the settings every session gets (bounded waits and
keepalives, so that no stalled node can freeze the cluster), and PostgreSQL's errors in words
(one hint per error class, in one table).

Every connection we open goes through `connect`. The defaults suit a catalog whose
transactions last well under a second; an operator can change any of them in the URL itself
(`?options=-c%20statement_timeout%3D120s`): the URL's own `options` come after ours, and
PostgreSQL keeps the last value given.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from aggregator.errors import CatalogError, redact_url

# What a session of ours waits for, at most (PostgreSQL's units).
# A stalled holder of the write lock (a paused process, a lost host) is cut off by the server
# after this long idle inside its transaction; its transaction rolls back, its locks go.
IDLE_IN_TRANSACTION = "15s"
# A waiter for a lock outlives one such stalled holder, then gives up (the build is retried).
LOCK_TIMEOUT = "20s"
# No one statement of ours runs longer (a lock wait counts too).
STATEMENT_TIMEOUT = "60s"
# The server's keepalives and the time unacknowledged data may wait, on both sides: a
# powered-off or partitioned host's session ends within about 30 s instead of hours.
KEEPALIVES = (
    "keepalives=1 keepalives_idle=10 keepalives_interval=5 keepalives_count=3 "
    "tcp_user_timeout=30000"
)
_SERVER_TCP = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 "
    "-c tcp_user_timeout=30000"
)
CONNECT_SECONDS = 5


def session_options() -> str:
    """The `options` every session of ours starts with."""
    return (
        f"-c lock_timeout={LOCK_TIMEOUT} -c statement_timeout={STATEMENT_TIMEOUT} "
        f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION} {_SERVER_TCP}"
    )


def connect(url: str, keepalives: str = KEEPALIVES) -> psycopg.Connection[Any]:
    """An autocommit connection with our session settings (transactions are explicit
    BEGIN … COMMIT), or a CatalogError that says what to do. `keepalives`: the client's TCP
    settings (a thread whose statements must fail fast on a dead link asks for tighter)."""
    try:
        info = conninfo_to_dict(url)
        params: dict[str, Any] = conninfo_to_dict(keepalives)
        params.update(info)  # the URL's own keepalive settings win
        params["options"] = f"{session_options()} {info.get('options') or ''}"
        params["connect_timeout"] = info.get("connect_timeout") or CONNECT_SECONDS
        return psycopg.connect(make_conninfo("", **params), autocommit=True)
    except psycopg.Error as exc:
        raise reason(exc, where_is(url)) from exc


def where_is(url: str) -> str:
    """The URL without its user and password, for messages."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://?"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"postgresql://{host}:{port}/{info.get('dbname') or ''}"


# Programming errors a user can still act on: a damaged schema, or a role without rights.
_NOT_BUGS = (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.InsufficientPrivilege)


def is_bug(exc: psycopg.Error) -> bool:
    """Whether an error is this package's mistake (bad SQL, wrong parameters), not advice."""
    return isinstance(exc, psycopg.ProgrammingError) and not isinstance(exc, _NOT_BUGS)


_UNREACHABLE = "check `catalog:` / is PostgreSQL running?"
_RETRIED = "the daemon retries it with backoff; `aggregator build` can be run again"

# SQLSTATE class or code -> the hint. A code is looked up first, then its class (2 chars).
HINTS: dict[str, str] = {
    "28P01": "the server refused the password: fix the user or password in `catalog:` "
    "(or in ~/.pgpass / PGPASSWORD)",
    "28": "the server refused the login: check the user in `catalog:` and pg_hba.conf",
    "3D000": "the database does not exist: create it (`createdb NAME`) or fix `catalog:`",
    "53300": "the server has no free connection slot for this role or database: raise "
    "max_connections (or the CONNECTION LIMIT), or close other clients (each node keeps "
    "4 connections, plus one per render worker)",
    "53100": "the database server's disk is full: free space on it; the feeds stay as they "
    f"are and nothing half-written is kept ({_RETRIED})",
    "53200": f"the database server is out of memory ({_RETRIED})",
    "53": f"the database server is out of resources ({_RETRIED})",
    "25006": "the database is read-only (a standby, or default_transaction_read_only): point "
    "`catalog:` at the primary",
    "40001": f"a conflict with another node's transaction ({_RETRIED})",
    "40P01": f"a deadlock with another node's transaction ({_RETRIED})",
    "55P03": "another session held a lock longer than lock_timeout (ours is "
    f"{LOCK_TIMEOUT} unless `catalog:` sets one with `?options=-c lock_timeout=…`) "
    f"({_RETRIED})",
    "57014": "a statement ran longer than statement_timeout (ours is "
    f"{STATEMENT_TIMEOUT} unless `catalog:` sets one with `?options=-c "
    f"statement_timeout=…`), or was cancelled ({_RETRIED})",
    "25P03": "this session sat idle inside a transaction longer than "
    f"idle_in_transaction_session_timeout ({IDLE_IN_TRANSACTION}; was this process "
    f"paused?) and the server ended it ({_RETRIED})",
    "57P01": f"the database server is shutting down ({_RETRIED})",
    "57P": f"the database server is restarting or shutting down ({_RETRIED})",
    "42501": "the database role lacks a privilege: grant it the rights to create and use "
    "tables in this database",
    "08006": "the server closed this session (it restarted, an administrator ended it, or "
    f"it sat idle inside a transaction longer than {IDLE_IN_TRANSACTION} while this process "
    f"was paused) ({_RETRIED} on a new connection)",
    "08": f"the connection to the database broke; {_UNREACHABLE}",
}

# Connecting fails before the server can send a SQLSTATE: its message says which class.
_CONNECT_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"password authentication failed|no password supplied"), "28P01"),
    (re.compile(r"no pg_hba\.conf entry|authentication failed|role .* does not exist"), "28"),
    (re.compile(r"database \".*\" does not exist"), "3D000"),
    (re.compile(r"too many (clients|connections)|remaining connection slots"), "53300"),
    (re.compile(r"the database system is (starting up|shutting down|in recovery)"), "57P"),
    (re.compile(r"server closed the connection unexpectedly"), "08006"),
)


def _hint(exc: psycopg.Error, detail: str) -> str | None:
    code = exc.sqlstate
    if code is None:
        for pattern, found in _CONNECT_FAILURES:
            if pattern.search(detail):
                code = found
                break
    if code is None:
        return None
    return HINTS.get(code) or HINTS.get(code[:3]) or HINTS.get(code[:2])


def reason(exc: psycopg.Error, where: str) -> CatalogError:
    """What to do about a PostgreSQL error, for a message naming `where`."""
    text = redact_url(str(exc).strip())  # a driver's message may quote the URL
    detail = text.splitlines()[0] if text else type(exc).__name__
    hint = _hint(exc, text)
    if hint is not None:
        return CatalogError(where, f"{hint} ({detail})")
    if isinstance(exc, psycopg.OperationalError):
        return CatalogError(where, f"cannot reach the database ({detail}); {_UNREACHABLE}")
    return CatalogError(where, detail)
