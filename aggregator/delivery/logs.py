"""Logging setup: where the log goes (stderr), in which format (plain text or JSON lines), and
how outside strings and events are made safe for a line (`shown`, `to_record`).

The JSON formatter merges a record's `change` data (a change event, or a lifecycle line's
`lifecycle(...)`) into the line, so log shippers match on an `event` field either way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from aggregator.events import ArticleMoved, ArticleRejected, ChangeEvent
from aggregator.model import FeedKey


def to_record(event: ChangeEvent) -> dict[str, Any]:
    """The event as plain JSON-ready data: `event` (its kind) and its fields."""
    record: dict[str, Any] = {"event": event.kind}
    for f in fields(event):
        record[f.name] = _plain(getattr(event, f.name))
    return record


def _plain(value: object) -> object:
    if isinstance(value, FeedKey):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def lifecycle(event: str, **fields: object) -> dict[str, Any]:
    """`extra=` for a daemon lifecycle log line (watching, stopping, stopped): the JSON
    formatter gives it an `event` field like a change's, so log shippers can match it."""
    return {"change": {"event": event, **fields}}


class JsonFormatter(logging.Formatter):
    """JSON lines: time, level, message, and a change event's fields when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        change = getattr(record, "change", None)
        if isinstance(change, dict):
            data.update(change)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def shown(text: str) -> str:
    """An outside string (a file name, a reason) as a log line shows it: as it is, or, when
    it holds a newline or another control character that could forge or garble a line,
    quoted with those escaped (as titles always are)."""
    return text if text.isprintable() else repr(text)


def shown_paths(event: Any) -> Any:
    """`event` with its file paths (and a rejection's reason) `shown`."""
    changes = {"source": shown(event.source)}
    if isinstance(event, ArticleMoved):
        changes["old_source"] = shown(event.old_source)
    if isinstance(event, ArticleRejected):
        changes["reason"] = shown(event.reason)
    return replace(event, **changes)


class TextFormatter(logging.Formatter):
    """`time LEVEL message`, one line per record whatever the message holds: a control
    character (a newline in a file name that some log call passed on as it is) is escaped,
    so no line can be forged. A traceback, added after the message, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        if not record.message.isprintable():
            record.message = "".join(
                c if c.isprintable() else repr(c)[1:-1] for c in record.message
            )
        return super().formatMessage(record)


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr as plain text or JSON lines (systemd's journal takes either)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
