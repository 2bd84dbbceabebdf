"""GlobalPacer: one rate-limiting actor shared by many tasks, so the limit holds cluster-wide.

A rate limiter kept in a global variable does not work with tasks: each worker process has its own
copy of the variable, so every process would allow the full rate and together they exceed it. The
fix is to keep the limiter's state in one actor that all tasks ask for a slot.

The pacer hands out time slots `1/rate` apart and returns the caller's slot; callers sleep until it
on their side, so the actor is never blocked and serves every task promptly. (Slots are wall-clock
times, so across machines this assumes clocks synchronised by NTP, as usual.)

    python examples/pacer.py [--rate 10] [--tasks 6] [--calls-per-task 10]
    python examples/pacer.py --per-process   # the broken global-variable version, for contrast
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from typing import Any

import spindle as ray


@ray.remote
class GlobalPacer:
    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = 0.0

    def reserve(self) -> float:
        """Reserve the next free slot: the wall-clock time at which the caller may go ahead."""
        slot = max(time.time(), self.next_slot)
        self.next_slot = slot + self.interval
        return slot


_process_next_slot = 0.0  # the broken per-process pacer: each worker process has its own copy


def reserve_in_process(rate: float) -> float:
    global _process_next_slot
    slot = max(time.time(), _process_next_slot)
    _process_next_slot = slot + 1.0 / rate
    return slot


@ray.remote
def make_calls(pacer: Any, rate: float, calls: int) -> list[tuple[float, float, int]]:
    """Make `calls` paced "API calls"; return (slot, time made, pid) for each."""
    made = []
    for _ in range(calls):
        slot = ray.get(pacer.reserve.remote()) if pacer is not None else reserve_in_process(rate)
        time.sleep(max(0.0, slot - time.time()))
        made.append((slot, time.time(), os.getpid()))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="allowed calls per second")
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--calls-per-task", type=int, default=10)
    parser.add_argument("--per-process", action="store_true", help="use a global variable instead")
    args = parser.parse_args()

    ray.init()
    pacer = None if args.per_process else GlobalPacer.remote(args.rate)  # type: ignore[attr-defined]
    refs = [make_calls.remote(pacer, args.rate, args.calls_per_task) for _ in range(args.tasks)]
    made = [call for task in ray.get(refs) for call in task]

    calls = len(made)
    span = max(t for _, t, _ in made) - min(slot for slot, _, _ in made)
    observed = (calls - 1) / span if span > 0 else float("inf")
    mode = "per-process global variable" if args.per_process else "GlobalPacer actor"
    print(f"Mode: {mode}")
    per_process = Counter(pid for _, _, pid in made)
    print(f"Calls: {calls} from {args.tasks} tasks in {len(per_process)} processes")
    print(f"Calls per process: {sorted(per_process.values(), reverse=True)}")
    print(f"Span: {span:.2f} s, observed rate: {observed:.1f}/s, limit: {args.rate:g}/s")
    print(f"Minimum span the limit allows: {(calls - 1) / args.rate:.2f} s")


if __name__ == "__main__":
    main()
