"""Timing helpers shared by the workloads: run a call repeatedly for a fixed time, not a fixed count.

A fixed duration keeps every workload's cost bounded whether the implementation does 400 or 40,000
calls per second, which matters on a shared 2-core machine; a fixed count would make slow runs very slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], ops_per_call: int, duration_s: float, warmup: int = 0) -> float:
    """Operations per second of ``fn`` (each call does ``ops_per_call`` operations) over ``duration_s``."""
    for _ in range(warmup):
        fn()
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= duration_s:
            return calls * ops_per_call / elapsed
