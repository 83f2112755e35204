"""Files moved within the input, as the log tells them: grouped by the folder a rename moved
(`a/x/1.txt` → `b/x/1.txt` is a move of `a` to `b`), one summary line per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregator.delivery.logs import shown
from aggregator.events import ArticleMoved


def moved_folders(old: str, new: str) -> tuple[str, str]:
    """The folders a move renamed: `a/x/1.txt` → `b/x/1.txt` is (`a`, `b`); a file renamed
    is its two folders (`""` for the input folder itself)."""
    old_parts, new_parts = old.split("/"), new.split("/")
    if old_parts[-1] != new_parts[-1]:
        return old.rpartition("/")[0], new.rpartition("/")[0]
    while old_parts and new_parts and old_parts[-1] == new_parts[-1]:
        old_parts.pop()
        new_parts.pop()
    return "/".join(old_parts), "/".join(new_parts)


def move_groups(moved: Sequence[ArticleMoved]) -> dict[tuple[str, str], list[ArticleMoved]]:
    """The moves by the folders they moved, in the order first seen."""
    groups: dict[tuple[str, str], list[ArticleMoved]] = {}
    for event in moved:
        groups.setdefault(moved_folders(event.old_source, event.source), []).append(event)
    return groups


def move_summary(old: str, new: str, group: Sequence[ArticleMoved]) -> tuple[str, dict[str, Any]]:
    """The line for one group ("1,050 articles moved from a/ to b/") and its JSON data."""
    changed = sum(1 for e in group if e.entered or e.left)
    feeds = f"; {changed:,} of them changed feeds" if changed else ""
    count = "1 article" if len(group) == 1 else f"{len(group):,} articles"
    where = (
        f"renamed in {shown(old or '.')}/"
        if old == new
        else f"moved from {shown(old or '.')}/ to {shown(new or '.')}/"
    )
    data = {"event": "articles_moved", "from": old, "to": new, "articles": len(group)}
    return f"{count} {where}{feeds}", data
