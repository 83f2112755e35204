"""WebSub publishing: tell each hub which topics (feed file URLs) have new bytes.

    build: new bytes staged → the (hub, topic) pings they owe are stored in the catalog
           (`pending_pings`) → files renamed (the new bytes are visible)
    here:  POST each owed ping; a 2xx forgets it, a failure keeps it for a retry, until it is
           older than `GIVE_UP_SECONDS`

The ping is the de-facto publish request (WebSub §6 leaves the mechanism open): a form POST
with `hub.mode=publish` and the topic under both `hub.url` (Google's hub, repeatable) and
`hub.topic` (websubhub.com, flask-websub, which refuses `hub.url` alone). Each format's file
is its own topic: WebSub §4.1 wants one representation per `rel="self"` URL.

Every ping has a total deadline (`deadline.py`: a hub trickling its answer is cut off) and
each hub its own senders, so a slow hub never starves another. The daemon schedules retries
(daemon/pings.py); `aggregator build` sends once, after releasing the state lock, within
`BUILD_PING_SECONDS`, and leaves failures for the next run.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from aggregator import __version__
from aggregator.backoff import BackoffPolicy
from aggregator.catalog import Catalog, OwedPing
from aggregator.delivery.deadline import DeadlinePassed, InFlight, post
from aggregator.events import ChangeEvent, HubPinged, HubPingFailed

# A hub answers a publish ping at once (it fetches the topic later); a slow answer is a
# failure to retry, not a reason to hold up a build or a stop. The whole ping (connect,
# send, answer) gets this long: a hub trickling its answer is cut off too.
PING_DEADLINE_SECONDS = 5.0
# How a ping that got no answer (refused, silent, cut off) is told apart in the log.
NO_ANSWER = "cannot reach the hub"
# Retries of a failed ping: 2 s, 4 s, 8 s, … at most 5 min apart, given up an hour after
# the change (a build's own retries are faster: daemon/service.py's BUILD_RETRY).
PING_RETRY = BackoffPolicy(first=2.0, cap=300.0)
GIVE_UP_SECONDS = 3600.0
# Pings sent at once to one hub (a cold build owes one per feed file and hub): each hub
# has its own, so a slow hub never takes a healthy one's turns.
PINGS_PER_HUB = 4
# `aggregator build`'s pings, all told: what is not sent by then stays owed for the next
# run. The lock is released before they are sent; this bounds the command itself.
BUILD_PING_SECONDS = 10.0

USER_AGENT = f"aggregator/{__version__} (WebSub publisher)"


@dataclass(frozen=True, slots=True)
class PingResult:
    """How one hub answered one ping: `status` is the HTTP status, None when none came."""

    hub: str
    topic: str
    ok: bool
    status: int | None
    reason: str


def ping(
    hub: str,
    topic: str,
    seconds: float = PING_DEADLINE_SECONDS,
    in_flight: InFlight | None = None,
) -> PingResult:
    """POST a publish ping for `topic` to `hub`, answered within `seconds` all told (a
    trickling or silent hub is cut off then); any 2xx is success. Never raises."""
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
        status, why, answer = post(request, seconds, in_flight, read_bytes=200)
    except DeadlinePassed as exc:
        return PingResult(hub, topic, False, None, f"{NO_ANSWER}: {exc}")
    except (OSError, ValueError) as exc:  # refused, reset, a malformed answer or address
        return PingResult(hub, topic, False, None, f"{NO_ANSWER}: {_why(exc)}")
    if 200 <= status < 300:
        return PingResult(hub, topic, True, status, f"HTTP {status}")
    detail = answer.decode("utf-8", "replace").strip().replace("\n", " ")
    reason = f"HTTP {status} {why}" + (f": {detail}" if detail else "")
    if 300 <= status < 400:
        reason = f"HTTP {status} {why} (a redirect: point websub.hubs at the hub's own URL)"
    return PingResult(hub, topic, False, status, reason)


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
    seconds: float = BUILD_PING_SECONDS,
    ping_seconds: float = PING_DEADLINE_SECONDS,
) -> list[ChangeEvent]:
    """Try every owed ping once (`send_pings`), then forget the sent and the given-up ones."""
    events, done = send_pings(
        owed_to(catalog, hubs), now, seconds=seconds, ping_seconds=ping_seconds
    )
    catalog.forget_pings(done)
    return events


class _Lanes:
    """The owed pings queued per hub, taken by that hub's senders until the time is up.

    A hub that gave no answer (refused, silent, cut off) gets no more tries this run: a hub
    that is down fails every topic, and each try would cost a whole deadline.
    """

    def __init__(self, owed: Sequence[OwedPing], deadline: float) -> None:
        self.deadline = deadline
        self.queues: dict[str, list[OwedPing]] = {}
        for row in owed:
            self.queues.setdefault(row.hub, []).append(row)
        self.dead: dict[str, str] = {}
        self.results: dict[int, PingResult] = {}
        self._lock = threading.Lock()

    def take(self, hub: str) -> OwedPing | None:
        with self._lock:
            queue = self.queues[hub]
            if not queue or hub in self.dead or time.monotonic() >= self.deadline:
                return None
            return queue.pop(0)

    def done(self, row: OwedPing, result: PingResult) -> None:
        with self._lock:
            self.results[row.id] = result
            if not result.ok and result.status is None:
                self.dead.setdefault(row.hub, result.reason)

    def untried(self, row: OwedPing, seconds: float) -> PingResult:
        """The result of a ping not sent: its hub gave no answer, or the time ran out."""
        reason = self.dead.get(row.hub)
        if reason is None:
            reason = f"{NO_ANSWER}: too slow (the {seconds:g} s for this run's pings ran out)"
        return PingResult(row.hub, row.topic, False, None, reason)


def send_pings(
    owed: Sequence[OwedPing],
    now: Callable[[], datetime],
    *,
    seconds: float = BUILD_PING_SECONDS,
    ping_seconds: float = PING_DEADLINE_SECONDS,
) -> tuple[list[ChangeEvent], list[int]]:
    """Try each owed ping once, `PINGS_PER_HUB` at a time per hub, all within `seconds`;
    the events, and the ids of the obligations that are over (sent, or given up).

    For `aggregator build`, which calls it after releasing the state lock: a failure, and a
    ping not sent in time, stay owed for the next build or the daemon's start.
    """
    if not owed:
        return [], []
    lanes = _Lanes(owed, time.monotonic() + seconds)

    def sender(hub: str) -> None:
        while (row := lanes.take(hub)) is not None:
            left = min(ping_seconds, lanes.deadline - time.monotonic())
            lanes.done(row, ping(row.hub, row.topic, max(left, 0.001)))

    senders = [
        hub for hub, queue in lanes.queues.items() for _ in range(min(len(queue), PINGS_PER_HUB))
    ]
    with ThreadPoolExecutor(len(senders), thread_name_prefix="ping") as pool:
        list(pool.map(sender, senders))
    events: list[ChangeEvent] = []
    done: list[int] = []
    when = now()
    for row in owed:
        result = lanes.results.get(row.id) or lanes.untried(row, seconds)
        event, over = outcome(row, result, 1, when, retry=False)
        events.append(event)
        if over:
            done.append(row.id)
    return events, done
