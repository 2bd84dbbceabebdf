"""``ray.util.log_once`` and its switches: say a verbose thing once per call site, not once per loop turn.

Libraries written for Ray (RLlib, Tune, user code) guard chatty warnings with ``if log_once("key"):``.
``disable_log_once_globally()`` silences every such site in this process; ``enable_periodic_logging()``
lets each key through again about once a minute.
"""

from __future__ import annotations

import threading
import time

PERIOD_S = 60.0
_seen: set[str] = set()
_lock = threading.Lock()
_disabled = False
_periodic = False
_last_reset = 0.0


def log_once(key: str) -> bool:
    """True the first time ``key`` is asked about in this process (again after a minute with periodic logging)."""
    global _last_reset
    with _lock:
        if _disabled:
            return False
        now = time.monotonic()
        if _periodic and now - _last_reset > PERIOD_S:
            _seen.clear()
            _last_reset = now
        if key in _seen:
            return False
        _seen.add(key)
        return True


def disable_log_once_globally() -> None:
    """Make ``log_once()`` return False in this process from now on."""
    global _disabled
    _disabled = True


def enable_periodic_logging() -> None:
    """Let each ``log_once()`` key through again about once a minute."""
    global _periodic, _last_reset
    _periodic = True
    _last_reset = time.monotonic()
