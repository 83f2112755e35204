"""`aggregator status` and `aggregator explain`: what the daemon and the catalog say, read
beside a running daemon without disturbing it (no lock; the catalog opened read-only, read
in one read-only transaction; the daemon's status record read, never written).

Exit codes: `status` 0 the daemon runs, 3 it does not (as `systemctl status`), 1 the
catalog cannot be read; `explain` 0 when it explained (listed or not), 2 a FILE outside the
input folder. Both print JSON with --json (schemas in the README, "Status and explain").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.catalog import Catalog
from aggregator.cli.explain import Evidence, Explanation, explain
from aggregator.config import Settings
from aggregator.daemon import STATUS_FILE, daemon_state
from aggregator.errors import AggregatorError
from aggregator.reading import SourceFilter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
STATUS_SCHEMA = 1  # the `--json` schema of `status`; bumped only when a key changes meaning
EXPLAIN_SCHEMA = 1
_SCHEDULED_SHOWN = 10
_URL = re.compile(r"^https?://", re.IGNORECASE)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _open(settings: Settings) -> Catalog | None:
    """The catalog, read-only (None: a SQLite catalog not made yet)."""
    if settings.catalog is None and not settings.catalog_path.is_file():
        return None
    return Catalog(settings.catalog_location, readonly=True, node=settings.node)


# --- status ---------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    settings: Settings = args.loaded.settings
    report = status_report(settings)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(_status_text(report))
    if report["catalog"]["error"] is not None:
        return EXIT_FAILED
    return EXIT_OK if report["daemon"]["running"] else EXIT_NOT_RUNNING


def status_report(settings: Settings) -> dict[str, Any]:
    """Everything `status` shows, as its JSON (the text is made from it)."""
    state = daemon_state(settings.state)
    record = state.record or {}
    daemon = {
        "running": state.running,
        "pid": record.get("pid"),
        "started": record.get("started"),
        "stopped": record.get("stopped"),
        "last_seen": record.get("updated"),
        "node": record.get("node"),
        "aggregator": record.get("aggregator"),
        "builds": record.get("builds"),
        "failed_builds": record.get("failed_builds"),
        "record": str(settings.state / STATUS_FILE),
        "problem": state.problem,
    }
    report: dict[str, Any] = {
        "schema": STATUS_SCHEMA,
        "daemon": daemon,
        "last_build": record.get("last_build"),
        "next_due": record.get("next_due"),
        "catalog": {"where": None, "error": None},
        "cluster": None,
        "rejected": [],
        "scheduled": {"count": 0, "next": []},
        "pings_owed": [],
        # What feed readers said of their subscribers in the User-Agents `serve` saw (the
        # server keeps them in the state folder); None: the server never recorded any.
        "subscribers": _subscribers(settings),
    }
    try:
        catalog = _open(settings)
        if catalog is None:
            report["catalog"]["where"] = str(settings.catalog_path)
            report["catalog"]["error"] = None
            report["catalog"]["missing"] = True
            return report
        try:
            report["catalog"].update(_catalog_facts(catalog, report))
        finally:
            catalog.close()
    except AggregatorError as exc:
        report["catalog"]["error"] = str(exc)
    return report


def _catalog_facts(catalog: Catalog, report: dict[str, Any]) -> dict[str, Any]:
    with catalog.snapshot():
        cutoff = catalog.cutoff()
        embargo = catalog.embargo()
        until = cutoff if embargo else None
        facts: dict[str, Any] = {
            "where": catalog.where,
            "cutoff": _iso(cutoff),
            "embargo": embargo,
            "items_listed": catalog.published_count(until),
            "feeds": len(catalog.feed_records()),
        }
        report["rejected"] = [{"path": p, "reason": r} for p, r in catalog.rejected_files()]
        if until is not None:
            report["scheduled"] = {
                "count": catalog.scheduled_count(until),
                "next": [
                    {"date": _iso(d), "path": p, "title": t, "url": u}
                    for d, p, t, u in catalog.scheduled(until, _SCHEDULED_SHOWN)
                ],
            }
        owed = catalog.owed_pings()
        per_hub = Counter(p.hub for p in owed)
        oldest: dict[str, datetime] = {}
        for ping in owed:
            oldest.setdefault(ping.hub, ping.since)
        report["pings_owed"] = [
            {"hub": hub, "count": count, "oldest": _iso(oldest[hub])}
            for hub, count in sorted(per_hub.items())
        ]
        leader = catalog.leader()
        if catalog.shared:
            report["cluster"] = {
                "leader": None if leader is None else leader.node,
                "epoch": None if leader is None else leader.epoch,
                "leading_now": leader is not None and leader.held,
            }
    return facts


def _status_text(report: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    daemon, catalog = report["daemon"], report["catalog"]
    node = f", node {daemon['node']}" if daemon["node"] else ""
    if daemon["running"]:
        rows.append(("daemon", f"running, PID {daemon['pid']} since {daemon['started']}{node}"))
    elif daemon["pid"] is None:
        rows.append(("daemon", "not running (no status record: it never ran on this state)"))
    elif daemon["stopped"]:
        rows.append(("daemon", f"not running (stopped {daemon['stopped']}{node})"))
    else:
        rows.append(("daemon", f"not running (last seen {daemon['last_seen']}, PID "
                     f"{daemon['pid']} is gone: killed or crashed{node})"))  # fmt: skip
    if daemon["problem"]:
        rows.append(("", daemon["problem"]))
    cluster = report["cluster"]
    if cluster is not None:
        if cluster["leader"] is None:
            rows.append(("leader", "none yet"))
        else:
            now = "" if cluster["leading_now"] else " (no node holds the lead right now)"
            rows.append(("leader", f"{cluster['leader']}, epoch {cluster['epoch']}{now}"))
    if catalog["error"]:
        rows.append(("catalog", f"cannot be read: {catalog['error']}"))
    elif catalog.get("missing"):
        rows.append(("catalog", f"{catalog['where']}: none yet (the first build makes it)"))
    else:
        rows.append(("catalog", f"{catalog['where']}: items listed: {catalog['items_listed']}, "
                     f"feeds: {catalog['feeds']}"))  # fmt: skip
    rows.append(("last build", _build_text(report["last_build"])))
    upcoming = report["scheduled"]["next"]
    due = report["next_due"] or (upcoming[0]["date"] if upcoming else None)
    rows.append(("next due", due or "nothing scheduled"))
    rejected = report["rejected"]
    rows.append(("rejected", f"{len(rejected)} file(s)" if rejected else "none"))
    rows += [(f"  {r['path']}", r["reason"]) for r in rejected]
    scheduled = report["scheduled"]
    rows.append(("scheduled", f"{scheduled['count']} item(s)" if scheduled["count"] else "none"))
    rows += [(f"  {s['date']}", f"{s['path']}: {s['title']}") for s in scheduled["next"]]
    if scheduled["count"] > len(scheduled["next"]):
        rows.append(("", f"… and {scheduled['count'] - len(scheduled['next'])} more"))
    owed = report["pings_owed"]
    rows.append(("pings owed", "none" if not owed else f"{sum(o['count'] for o in owed)}"))
    rows += [(f"  {o['hub']}", f"{o['count']} since {o['oldest']}") for o in owed]
    subscribers = report["subscribers"]
    if not subscribers:
        rows.append(("subscribers", "not recorded yet (only `serve` and `run --serve` see them)"))
    else:
        total = sum(s["subscribers"] for s in subscribers)
        rows.append(("subscribers", f"{total} reported by feed readers"))
        rows += [
            (f"  {s['feed']}", f"{s['reader']}: {s['subscribers']} (seen {s['seen']})")
            for s in subscribers
        ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}".rstrip() for label, value in rows)


def _subscribers(settings: Settings) -> list[dict[str, Any]] | None:
    """The latest count per feed and reader, most subscribers first; None when none exist."""
    from aggregator.serve import read_subscribers

    counts = read_subscribers(settings.state)
    if not counts:
        return None
    counts.sort(key=lambda c: (-c.subscribers, c.path, c.reader, c.feed_id))
    return [
        {
            "feed": c.path,
            "reader": c.reader,
            "feed_id": c.feed_id,
            "subscribers": c.subscribers,
            "seen": c.seen.isoformat().replace("+00:00", "Z"),
        }
        for c in counts
    ]


def _build_text(build: dict[str, Any] | None) -> str:
    if not build:
        return "none yet"
    if build["result"] == "failed":
        return f"{build['finished']}, failed: {build['error']} (retried with backoff)"
    return (
        f"{build['finished']}, {build['seconds']:.2f} s, {build['result']}: "
        f"{build['read']} read, {build['published']} published, {build['rejected']} rejected; "
        f"feeds {build['written']} written, {build['unchanged']} unchanged"
        + (f", {build['failed']} failed" if build["failed"] else "")
    )


# --- explain ----------------------------------------------------------------------------


def explain_command(args: argparse.Namespace) -> int:
    settings: Settings = args.loaded.settings
    target: str = args.target
    path: str | None = None
    url: str | None = None
    if _URL.match(target):
        url = target
    else:
        path = _relative(target, settings)
        if path is None:
            print(
                f"aggregator explain: {target} is not inside the input folder "
                f"{settings.input} (give a path inside it, or the article's webUrl)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    catalog = _open(settings)
    if catalog is None:
        answer = Explanation(target, path, url, known=False)
        answer.summary = f"no catalog yet at {settings.catalog_path}: run a build first"
    else:
        try:
            evidence = gather(catalog, settings, target, path, url)
        finally:
            catalog.close()
        answer = explain(evidence, settings)
    if args.json:
        print(
            json.dumps({"schema": EXPLAIN_SCHEMA, **answer.as_json()}, indent=2, ensure_ascii=False)
        )
    else:
        print(explanation_text(answer))
    return EXIT_OK


def _relative(target: str, settings: Settings) -> str | None:
    """FILE as the catalog names it: relative to the input (absolute, relative to the input,
    or relative to the current folder); None if it is outside the input."""
    source_filter = _filter(settings)
    given = Path(target)
    candidates = [given] if given.is_absolute() else [source_filter.root / given, given.absolute()]
    found = [r for r in (source_filter.relative(os.path.abspath(c)) for c in candidates) if r]
    for rel in found:
        if (source_filter.root / rel).exists():
            return rel
    return found[0] if found else None


def _filter(settings: Settings) -> SourceFilter:
    return SourceFilter(
        settings.input.resolve(),
        settings.patterns,
        excluded=(settings.output, settings.state),
        follow_external_links=settings.follow_external_links,
    )


def gather(
    catalog: Catalog, settings: Settings, target: str, path: str | None, url: str | None
) -> Evidence:
    """What the catalog says of the article, read in one snapshot."""
    with catalog.snapshot():
        record = catalog.file_record(path) if path is not None else None
        if record is not None:
            url = record.url
        item = catalog.item_of(url) if url is not None else None
        cutoff = catalog.cutoff()
        embargo = catalog.embargo()
        positions: dict[Any, int] = {}
        written: dict[Any, int | None] = {}
        if item is not None:
            until = cutoff if embargo else None
            for key in item.feeds:
                days = next((d.max_age_days for d in settings.feeds if d.key == key), None)
                since = None
                if days is not None and cutoff is not None:
                    since = cutoff - timedelta(days=days)
                positions[key] = catalog.position(
                    key, item.date, item.guid, until=until, since=since
                )
                feed = catalog.feed_record(key)
                guids = feed.guids if feed is not None else ()
                written[key] = guids.index(item.guid) + 1 if item.guid in guids else None
        return Evidence(
            asked=target,
            path=path,
            file=record,
            url=url,
            rivals=tuple(catalog.files_with_url(url)) if url is not None else (),
            item=item,
            identities=tuple(catalog.identities(path=path, url=url)),
            positions=positions,
            written=written,
            cutoff=cutoff,
            embargo=embargo,
            unknown_reason=_unknown_reason(path, settings) if record is None else None,
        )


def _unknown_reason(path: str | None, settings: Settings) -> str | None:
    if path is None:
        return None
    source_filter = _filter(settings)
    if not (source_filter.root / path).exists():
        return f"there is no such file in the input folder {settings.input}"
    if not source_filter.matches(path):
        return (
            f"it is not an article file: its name does not match the patterns "
            f"{', '.join(settings.patterns)}, or its folder is hidden or excluded"
        )
    return None


def explanation_text(answer: Explanation) -> str:
    """The explanation for people: the facts aligned, then one line per feed."""
    rows: list[tuple[str, str]] = [("article", answer.path or answer.asked)]
    rows.append(("verdict", answer.summary))
    if answer.url:
        rows.append(("webUrl", answer.url))
    if answer.guid:
        rows.append(("GUID", answer.guid))
    if answer.error:
        kept = "; its last good version is kept" if answer.kept_version else ""
        rows.append(("rejected", answer.error + kept))
    elif answer.known and answer.published is not None:
        rows.append(("read", "ok"))
    if answer.published is not None:
        rows.append(("published", "yes" if answer.published else "no"))
    if answer.date is not None:
        rows.append(("dated", _iso(answer.date) or ""))
    if answer.embargoed_until is not None:
        rows.append(("embargoed", f"until {_iso(answer.embargoed_until)}"))
    if answer.duplicate:
        dup = answer.duplicate
        rows.append(("duplicate", f"{dup['winner']} wins ({dup['reason']}) over "
                     f"{', '.join(dup['losers'])}"))  # fmt: skip
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    if answer.feeds:
        feed_width = max(len(v.feed) for v in answer.feeds)
        lines.append("feeds:")
        for v in answer.feeds:
            if v.listed:
                where = f"listed   #{v.position} of at most {v.max_items}"
            else:
                where = f"left out {v.reason}"
            lines.append(f"  {v.feed:<{feed_width}}  {where}")
    lines += [f"note: {note}" for note in answer.notes]
    return "\n".join(lines)
