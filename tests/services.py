"""A test whose real service (a browser, nginx, PostgreSQL, a hub, root) is missing.

On a developer's machine it is skipped, saying why; under CI (`CI=true`) it fails, because
.ci/run installs and starts everything the tests need, so a missing service there is a bug.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether this run is CI's, where no test may skip for want of a service."""
    return os.environ.get("CI") == "true"


def service_missing(reason: str) -> NoReturn:
    """Skip the test (`reason` says what is missing and how to get it), or fail it in CI."""
    if in_ci():
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)
