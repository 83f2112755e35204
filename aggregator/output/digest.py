"""Which version of the index page renderer is installed, without importing it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def renderer_digest() -> str:
    """A digest of the index page renderer's source: a new version of the page is published at
    the next build after an upgrade, not only once some feed changes."""
    # The source read, not imported: a build with nothing to index (most rebuilds) would
    # otherwise import the page's module (and ElementTree) just to ask for its digest.
    here = Path(__file__)
    # The page's markup and its inline style sheet and script.
    source = here.with_name("indexes.py").read_bytes() + here.with_name("page.py").read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]
