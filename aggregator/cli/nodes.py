"""`aggregator node list | retire NAME | forget NAME`: the nodes of a shared (PostgreSQL)
catalog over their whole life. `list` reads only; `retire` (a node taken out on purpose) and
`forget` (a lost node, after a confirmation) remove a stopped node's files and bookkeeping in
one transaction that decides each webUrl's winner again, so no other node's feeds lose an
item they have. A live node is refused: its name's claim says where it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from aggregator.catalog import Catalog, NodeRecord
from aggregator.cli.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from aggregator.config import Settings
from aggregator.errors import NodeNameInUse

NODES_SCHEMA = 1


def node_command(args: argparse.Namespace) -> int:
    settings: Settings = args.loaded.settings
    if settings.catalog is None:
        print(
            f"aggregator: node {args.action}: the catalog is SQLite ({settings.catalog_path}): "
            "one node, this machine; several nodes share a PostgreSQL catalog (`catalog: "
            "postgresql://…`, see docs/scale-out.md)",
            file=sys.stderr,
        )
        return EXIT_OK if args.action == "list" else EXIT_USAGE
    if args.action == "list":
        if args.name is not None:
            print(f"aggregator: node list takes no NAME (got {args.name!r})", file=sys.stderr)
            return EXIT_USAGE
        return _list(settings.catalog, as_json=args.json)
    if args.name is None:
        print(
            f"aggregator: node {args.action} needs the NAME of the node (`aggregator node "
            "list` shows them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return _remove(settings, args.name, forget=args.action == "forget", yes=args.yes)


def _list(url: str, *, as_json: bool) -> int:
    with Catalog(url, readonly=True) as catalog:
        nodes = catalog.nodes()
        log = catalog.change_log()
    if as_json:
        report: dict[str, Any] = {
            "schema": NODES_SCHEMA,
            "catalog": catalog.where,
            "nodes": [_node_json(n) for n in nodes],
            "change_log": {
                "entries": log.entries,
                "first": log.first,
                "last": log.last,
                "pruned_upto": log.pruned,
            },
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"nodes of the shared catalog {catalog.where}:")
    if not nodes:
        print("  none yet (the first `aggregator run` or `build` with this catalog adds one)")
    rows: list[tuple[str, ...]] = [
        ("NAME", "STATE", "HOST", "PID", "SINCE", "FILES", "ITEMS", "MARK", "LAG", "")
    ]
    rows += [_node_row(n) for n in nodes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    first = "-" if log.first is None else str(log.first)
    last = "-" if log.last is None else str(log.last)
    print(f"change log: {log.entries} entries ({first}..{last}), pruned up to {log.pruned}")
    holding = [n for n in nodes if not n.live and n.mark is not None and n.lag]
    for node in holding:
        print(
            f"  {node.name} is stopped {node.lag} versions of the rendered set behind (it "
            "copies them when it starts); "
            f"`aggregator node retire {node.name}` (or forget) once it is gone for good"
        )
    return EXIT_OK


def _node_json(node: NodeRecord) -> dict[str, Any]:
    return {
        "name": node.name,
        "live": node.live,
        "host": node.host,
        "pid": node.pid,
        "since": node.since,
        "files": node.files,
        "items": node.items,
        "mark": node.mark,
        "lag": node.lag,
        "leader": node.leader,
    }


def _node_row(node: NodeRecord) -> tuple[str, ...]:
    def text(value: object) -> str:
        return "-" if value is None else str(value)

    return (
        node.name,
        "live" if node.live else "stopped",
        text(node.host),
        text(node.pid),
        text(node.since),
        str(node.files),
        str(node.items),
        text(node.mark),
        text(node.lag),
        "leader" if node.leader else "",
    )


def _running(where: str, command: str) -> str:
    return (
        f"{where}; `aggregator node {command}` takes out a stopped node only: stop that "
        "process first (its files stay its own while it runs), then run this again"
    )


def _remove(settings: Settings, name: str, *, forget: bool, yes: bool) -> int:
    url = settings.catalog
    assert url is not None
    verb, command = ("forgotten", "forget") if forget else ("retired", "retire")
    with Catalog(url, readonly=True) as catalog:
        nodes = {n.name: n for n in catalog.nodes()}
    node = nodes.get(name)
    if node is None:
        known = ", ".join(nodes) or "none"
        print(
            f"aggregator: node {name}: not in the shared catalog {catalog.where} (its nodes: "
            f"{known}); nothing changed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if node.live:
        where = f"is running on host {node.host} (pid {node.pid}, since {node.since})"
        raise NodeNameInUse(name, _running(where, command))
    try:
        # Claiming the name: the node cannot start while its rows go (and if it started
        # since the list above, this is refused).
        writer = Catalog(url, node=name, rules=settings.feed_rules)
    except NodeNameInUse as exc:
        where = exc.reason.split(", on the shared")[0]
        raise NodeNameInUse(name, _running(where, command)) from exc
    with writer:
        if forget and not yes and not _confirmed(writer, node):
            print(f"aggregator: node {name}: not forgotten; nothing changed", file=sys.stderr)
            return EXIT_FAILED
        removed = writer.remove_self(lambda: datetime.now(UTC))
    print(
        f"node {name} {verb}: {removed.files} file rows removed; {removed.kept} of its items "
        f"now listed from other nodes' files, {removed.withdrawn} withdrawn (only {name} had "
        f"them); {removed.feeds} feeds marked for every node's next render"
    )
    return EXIT_OK


def _confirmed(catalog: Catalog, node: NodeRecord) -> bool:
    """Ask on the terminal (or stdin) before withdrawing a lost node's items."""
    only = catalog.items_only_here()
    print(
        f"forget node {node.name} (last on host {node.host or '?'}, since {node.since or '?'}): "
        f"its {node.files} files leave the catalog; {only} of its {node.items} items no other "
        f"node has leave every node's feeds. Go on? [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
