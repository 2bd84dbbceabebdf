"""When the worker pool starts another worker for a caller that found none idle: a pure decision.

A started worker outlives the burst that asked for it (and the first one past the warm workers also starts
the node's zygote, which lives as long as the node), so the pool starts one only when the workers already
on their way cannot serve the callers waiting: workers still booting (the warm ones at start-up) count as
supply. Forks from a live zygote are cheap, so a burst of actors gets one per waiting caller (up to
``MAX_PARALLEL_FORKS``); fresh interpreters are started one at a time.

The zygote itself is stopped once it has had no live fork and no fork request for ``SPINDLE_ZYGOTE_IDLE_S``
(a burst's extra workers are stopped when it ends, which left the zygote idle for the node's life, ~40 MiB);
the next spawn beyond the warm workers starts it again.
"""

from __future__ import annotations

MAX_PARALLEL_FORKS = 16


def should_start_worker(waiting: int, starting: int, forks: bool) -> bool:
    """Whether a caller that found no idle worker starts one.

    ``waiting``: callers waiting for a worker of this runtime env (this one included); ``starting``: workers
    of that env started but not yet registered; ``forks``: a live zygote forks them (plain workers only).
    """
    cap = min(waiting, MAX_PARALLEL_FORKS) if forks else 1
    return starting < cap


def zygote_should_stop(live_forks: int, pending_forks: int, idle_for: float, idle_s: float) -> bool:
    """Whether the node's zygote is stopped now: none of its forks lives, no fork is being asked of it, and it
    has been so for ``idle_s`` (``idle_for``: seconds since its last fork or its last fork's exit)."""
    return live_forks == 0 and pending_forks == 0 and idle_for >= idle_s
