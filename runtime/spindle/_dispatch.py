"""Spreading tasks over leased workers without head-of-line blocking: a pure policy, no I/O.

Pipelining (several tasks in flight on one worker) is what makes 10k+ tiny tasks/s possible: the
cost per task becomes a slice of a message instead of a round trip. But a task queued on a
worker waits for everything ahead of it there, so it may only ever queue behind tasks that are
known to be short. The submitter (a thin shell holding the state) and the worker's executor
apply these rules:

- A function's expected run time is the moving average of its measured runs (``observe``); until
  measured it is unknown. A task whose function is unknown or not short (``depth`` 1) runs alone:
  it goes only to an idle worker and nothing is queued behind it.
- Short tasks are pipelined up to ``depth``: enough of them to cover TARGET_BATCH_S of work. They
  fill a worker that is already running short tasks before taking an idle one (``pick``).
- Nothing is queued behind a task that has run longer than STALL_S, whatever its estimate. A
  worker whose current task passes STALL_S gives back the tasks queued behind it (they never
  started) and the submitter places them elsewhere; the stalled function's estimate is raised
  (``stalled_estimate``) so its later calls run alone.
- Retries go to the back of their queue after a capped exponential backoff (``retry_delay``), so
  a crash-looping task (``max_retries=-1``) cannot starve the other tasks of its shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

TARGET_BATCH_S = 0.005
MAX_DEPTH = 64
STALL_S = 0.05
EWMA_WEIGHT = 0.2
RETRY_BASE_S = 0.1
RETRY_MAX_S = 5.0
MAX_LEASE_REQUESTS = 8


class Slot(Protocol):
    """The submitter's view of one leased worker."""

    exclusive: bool  # holds a task that must run alone (its function is unknown or not short)
    head_since: float  # when the task at the head of its queue started (estimated), monotonic seconds

    @property
    def queued(self) -> int:
        """Tasks in flight on the worker: the running one and those waiting behind it."""
        ...


def observe(estimate: float | None, seconds: float) -> float:
    """The function's new expected run time after a run that took ``seconds``."""
    if estimate is None:
        return seconds
    return (1.0 - EWMA_WEIGHT) * estimate + EWMA_WEIGHT * seconds


def stalled_estimate(estimate: float | None, running_for: float) -> float:
    """A run of the function has lasted ``running_for`` so far: never expect less than that."""
    return max(estimate or 0.0, running_for, STALL_S)


def depth(estimate: float | None) -> int:
    """How many tasks of a function may be in flight on one worker (1 = it runs alone)."""
    if estimate is None:
        return 1
    return max(1, min(MAX_DEPTH, int(TARGET_BATCH_S / max(estimate, 1e-5))))


def room(slot: Slot, task_depth: int, now: float) -> int:
    """How many more tasks of depth ``task_depth`` may be pushed to ``slot`` now."""
    n = slot.queued
    if n == 0:
        return task_depth
    if slot.exclusive or task_depth < 2 or now - slot.head_since > STALL_S:
        return 0
    return max(0, task_depth - n)


def pick(slots: Sequence[Slot], task_depth: int, now: float) -> int:
    """Index of the slot for the next task, -1 if none. Short tasks join a worker already pipelining with room
    (packing them keeps batches large and leaves other CPUs to other work; they wait at most about
    TARGET_BATCH_S); otherwise the first idle worker."""
    idle = -1
    for i, slot in enumerate(slots):
        if slot.queued == 0:
            if idle < 0:
                idle = i
        elif room(slot, task_depth, now) > 0:
            return i
    return idle


def leases_wanted(queued: int, held: int, task_depth: int, cap: int) -> int:
    """How many leases a queue should hold: enough for its backlog at the current depth, at most ``cap``."""
    return min(cap, held + (queued + task_depth - 1) // task_depth)


def should_give_back(running_for: float, waiting: int) -> bool:
    """Worker side: tasks wait behind one that has run too long; hand them back to be placed elsewhere."""
    return waiting > 0 and running_for > STALL_S


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): the first is immediate, then doubling, capped."""
    if attempt <= 1:
        return 0.0
    return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 2))
