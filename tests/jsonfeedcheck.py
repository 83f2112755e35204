"""JSON Feed 1.1 checks for the tests: the schema in tests/schemas, and what it cannot check.

No released feedparser reads JSON Feed, and `jsonfeedvalidator` knows 1.0 only (it rejects
valid 1.1 feeds), so the schema is written from the spec and checked with `jsonschema`; date
and URL formats are checked too (rfc3339-validator, rfc3986-validator).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas/jsonfeed-1.1.schema.json").read_text(encoding="utf-8")
)
_VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def schema_errors(feed: object) -> list[str]:
    """Where `feed` breaks the schema: one JSON path per problem (empty when valid)."""
    return sorted(
        "/".join(str(p) for p in error.absolute_path) or "(top)"
        for error in _VALIDATOR.iter_errors(feed)
    )


def check_json_feed(data: bytes, *, url: str, guids: Sequence[str] | None = None) -> Any:
    """Parse and check a JSON Feed file published at `url`; returns the parsed feed.

    Beyond the schema: item ids are unique, `feed_url` is the file's own URL, `next_url` (if
    any) differs from it, and, given the GUIDs of the RSS/Atom files, the ids are those GUIDs
    in the same order.
    """
    assert data.endswith(b"\n"), "a JSON Feed file ends with a newline"
    feed = json.loads(data.decode("utf-8"))
    assert schema_errors(feed) == []
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids)), "item ids must be unique"
    assert feed.get("feed_url") == url, "feed_url must be the file's own URL"
    assert feed.get("next_url", "") != url
    if guids is not None:
        assert ids == list(guids), "JSON Feed ids must be the RSS/Atom GUIDs, in their order"
    return feed
