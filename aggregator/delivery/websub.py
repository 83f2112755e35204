"""WebSub publishing: tell each hub which topics (feed file URLs) have new bytes.

    build: new bytes staged → the (hub, topic) pings they owe are stored in the catalog
           (`pending_pings`) → files renamed (the new bytes are visible)
    here:  POST each owed ping; a 2xx forgets it, a failure keeps it for a retry, until it is
           older than `GIVE_UP_SECONDS`

The ping is the de-facto publish request (WebSub §6 leaves the mechanism open): a form POST
with `hub.mode=publish` and the topic under both `hub.url` (Google's hub, repeatable) and
`hub.topic` (websubhub.com, flask-websub, which refuses `hub.url` alone). Each format's file
is its own topic: WebSub §4.1 wants one representation per `rel="self"` URL.

This module is the only one that speaks HTTP as a client (`urllib.request`; proxies from the
environment apply). The daemon schedules retries (daemon/pings.py); `aggregator build` calls
`send_owed` once and leaves failures for the next run.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from aggregator import __version__
from aggregator.backoff import BackoffPolicy
from aggregator.catalog import Catalog, OwedPing
from aggregator.events import ChangeEvent, HubPinged, HubPingFailed

# A hub answers a publish ping at once (it fetches the topic later); a slow answer is a
# failure to retry, not a reason to hold up a build or a stop.
PING_TIMEOUT_SECONDS = 3.0
# Retries of a failed ping: 2 s, 4 s, 8 s, … at most 5 min apart, given up an hour after
# the change (a build's own retries are faster: daemon/service.py's BUILD_RETRY).
PING_RETRY = BackoffPolicy(first=2.0, cap=300.0)
GIVE_UP_SECONDS = 3600.0
# Pings sent at once by `send_owed` (a cold build owes one per feed file and hub).
PARALLEL_PINGS = 8

USER_AGENT = f"aggregator/{__version__} (WebSub publisher)"


@dataclass(frozen=True, slots=True)
class PingResult:
    """How one hub answered one ping: `status` is the HTTP status, None when none came."""

    hub: str
    topic: str
    ok: bool
    status: int | None
    reason: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected ping is a failure: urllib would turn the POST into a GET of the new
    address, whose 200 would pass for an accepted ping."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def ping(hub: str, topic: str, timeout: float = PING_TIMEOUT_SECONDS) -> PingResult:
    """POST a publish ping for `topic` to `hub`; any 2xx is success. Never raises."""
    body = urlencode([("hub.mode", "publish"), ("hub.url", topic), ("hub.topic", topic)])
    request = urllib.request.Request(
        hub,
        data=body.encode("ascii"),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = int(response.status)
            response.read(65536)  # let the connection close cleanly
    except urllib.error.HTTPError as exc:
        detail = exc.read(200).decode("utf-8", "replace").strip().replace("\n", " ")
        exc.close()
        reason = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        return PingResult(hub, topic, False, exc.code, reason)
    except urllib.error.URLError as exc:
        return PingResult(hub, topic, False, None, f"cannot reach the hub: {_why(exc.reason)}")
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed answer
        return PingResult(hub, topic, False, None, f"cannot reach the hub: {_why(exc)}")
    if 200 <= status < 300:
        return PingResult(hub, topic, True, status, f"HTTP {status}")
    return PingResult(hub, topic, False, status, f"HTTP {status} (expected 2xx)")


def _why(reason: object) -> str:
    """ "Connection refused", not "[Errno 111] Connection refused"."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def retry_delay(attempts: int, policy: BackoffPolicy = PING_RETRY) -> float:
    """Seconds to wait after the `attempts`-th failed try (1, 2, …): doubling, capped."""
    return policy.delay(attempts)


def outcome(
    owed: OwedPing,
    result: PingResult,
    attempts: int,
    now: datetime,
    *,
    retry: bool,
    policy: BackoffPolicy = PING_RETRY,
    give_up_seconds: float = GIVE_UP_SECONDS,
) -> tuple[ChangeEvent, bool]:
    """The event a ping's result gives, and whether the obligation is over (sent or given up).

    A failure is given up once the obligation is `give_up_seconds` old: by then subscribers
    have long polled, and the hub may be gone for good. `retry`: a retry will be scheduled
    (the daemon), after the wait `policy` gives, rather than left for the next run
    (`aggregator build`).
    """
    hub, topic = owed.hub, owed.topic
    if result.ok:
        return HubPinged(hub, topic, result.status or 0), True
    if (now - owed.since).total_seconds() >= give_up_seconds:
        return HubPingFailed(hub, topic, result.reason, attempts, given_up=True), True
    delay = retry_delay(attempts, policy) if retry else None
    return HubPingFailed(hub, topic, result.reason, attempts, retry_seconds=delay), False


def owed_to(catalog: Catalog, hubs: Collection[str]) -> list[OwedPing]:
    """The pings owed to the configured `hubs`; those owed to hubs no longer configured are
    forgotten (the site stopped using that hub)."""
    owed = catalog.owed_pings()
    catalog.forget_pings([o.id for o in owed if o.hub not in hubs])
    return [o for o in owed if o.hub in hubs]


def send_owed(
    catalog: Catalog,
    hubs: Collection[str],
    now: Callable[[], datetime],
    *,
    timeout: float = PING_TIMEOUT_SECONDS,
) -> list[ChangeEvent]:
    """Try every owed ping once (several at a time); forget the sent and the given-up ones.

    For `aggregator build`: a failure stays owed for the next build or the daemon's start.
    """
    owed: Sequence[OwedPing] = owed_to(catalog, hubs)
    if not owed:
        return []
    with ThreadPoolExecutor(min(PARALLEL_PINGS, len(owed))) as pool:
        results = list(pool.map(lambda o: ping(o.hub, o.topic, timeout), owed))
    events: list[ChangeEvent] = []
    done: list[int] = []
    when = now()
    for row, result in zip(owed, results, strict=True):
        event, over = outcome(row, result, 1, when, retry=False)
        events.append(event)
        if over:
            done.append(row.id)
    catalog.forget_pings(done)
    return events
