"""When the worker pool starts another worker for a caller that found none idle: a pure decision.

A started worker outlives the burst that asked for it (and the first one past the warm workers also starts
the node's zygote, which lives as long as the node), so the pool starts one only when the workers already
on their way cannot serve the callers waiting: workers still booting (the warm ones at start-up) count as
supply. Forks from a live zygote are cheap, so a burst of actors gets one per waiting caller (up to
``MAX_PARALLEL_FORKS``); fresh interpreters are started one at a time.
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
