"""Names → slugs: lowercase ASCII letters, digits and single `-`, safe as one path segment."""

from __future__ import annotations

import re

from anyascii import anyascii

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG_LENGTH = 80


def slugify(name: str) -> str:
    """`Réalité Augmentée` → `realite-augmentee`, `forbes.com` → `forbes-com`.

    The result never contains `/`, `.` or `\\`, so it cannot leave the folder it is joined to.
    An empty result means the name gets no feed.
    """
    ascii_text = anyascii(name).lower()
    slug = _NOT_SLUG.sub("-", ascii_text).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")
