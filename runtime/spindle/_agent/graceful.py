"""Stopping an actor's worker gracefully: SIGTERM, then SIGKILL if it has not exited in time.

Ray ends an actor whose handles all went out of scope by letting it run ``__ray_shutdown__``,
``__del__`` and its ``atexit`` handlers (the worker does that on SIGTERM, see
``spindle._core.actor_shutdown``); a hook that hangs must not keep the actor's resources forever,
so the agent force-kills the worker after ``SPINDLE_ACTOR_GRACEFUL_SHUTDOWN_S`` (Ray's 30 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any

GRACE_S = float(os.environ.get("SPINDLE_ACTOR_GRACEFUL_SHUTDOWN_S", "30"))


def terminate(proc: Any, grace_s: float = GRACE_S) -> None:
    """SIGTERM ``proc`` (a Popen or a zygote's ForkedProc) now, SIGKILL it after ``grace_s`` if still running."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def force() -> None:
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:  # a Popen and a zygote's ForkedProc both raise it
            pass
        try:
            proc.kill()
        except ProcessLookupError:
            pass

    threading.Thread(target=force, daemon=True, name=f"terminate-{proc.pid}").start()
