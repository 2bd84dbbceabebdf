"""Waiting with a timeout and exponential backoff, for conditions a controller makes true later.

Tests against the API server wait on asynchronous work (garbage collection, namespace setup, RBAC
caches); a bare polling loop without sleep burns the two shared cores the servers need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str,
    *,
    first_delay: float = 0.05,
    max_delay: float = 1.0,
) -> T:
    """Call ``check`` until it returns something truthy and return that; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, max_delay)
