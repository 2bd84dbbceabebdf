"""An in-memory stand-in for `spindle.wait`/`spindle.get` on a simulated clock.

ActorPool is pure bookkeeping over refs, so its semantics (ordering, timeouts, which actor is idle)
are tested here deterministically, without processes: each fake call finishes at a chosen time,
`wait` advances the clock as far as the caller is willing to wait, and `get` waits forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class FakeActorDiedError(Exception):
    """Plays `spindle.exceptions.ActorDiedError`."""


@dataclass(eq=False)
class FakeRef:
    ready_at: float
    value: Any = None
    error: BaseException | None = None

    def __repr__(self) -> str:
        return f"FakeRef(ready_at={self.ready_at}, value={self.value!r})"


@dataclass
class FakeCluster:
    now: float = 0.0
    wait_calls: int = 0
    exceptions: Any = field(default=None)

    def __post_init__(self) -> None:
        self.exceptions = type("exceptions", (), {"ActorDiedError": FakeActorDiedError})

    def wait(
        self, refs: list[FakeRef], *, num_returns: int = 1, timeout: float | None = None
    ) -> tuple[list[FakeRef], list[FakeRef]]:
        if not isinstance(refs, list):
            raise TypeError("wait() expects a list of refs")
        self.wait_calls += 1
        deadline = math.inf if timeout is None else self.now + timeout
        needed = sorted(r.ready_at for r in refs)[num_returns - 1]
        self.now = max(self.now, min(needed, deadline))
        ready = [r for r in refs if r.ready_at <= self.now][:num_returns]
        return ready, [r for r in refs if r not in ready]

    def get(self, refs: FakeRef | list[FakeRef]) -> Any:
        if isinstance(refs, list):
            return [self.get(r) for r in refs]
        self.now = max(self.now, refs.ready_at)
        if refs.error is not None:
            raise refs.error
        return refs.value


class FakeActor:
    """`actor.work(value, duration)` returns a ref ready `duration` after the call."""

    def __init__(self, cluster: FakeCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.calls: list[Any] = []

    def work(self, value: Any, duration: float = 1.0, error: BaseException | None = None) -> FakeRef:
        self.calls.append(value)
        return FakeRef(self.cluster.now + duration, value=(self.name, value), error=error)

    def pair(self, value: Any) -> list[FakeRef]:
        """A two-return method: `num_returns=2`."""
        self.calls.append(value)
        return [
            FakeRef(self.cluster.now + 1, value=value),
            FakeRef(self.cluster.now + 1, value=-value),
        ]

    def __repr__(self) -> str:
        return f"FakeActor({self.name})"
