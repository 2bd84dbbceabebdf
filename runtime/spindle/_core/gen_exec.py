"""Generator tasks on the worker's side: run the generator, send each item as it is yielded.

For ``num_returns="streaming"`` every yielded value becomes an object (id ``return_id(task_id,
i + 1)``) sent at once as an *item* result on the caller's stream; items a retried attempt's
caller already has are skipped, and with back-pressure the generator is paused (between items)
while the caller has that many unconsumed. ``"dynamic"`` collects every item and returns them with
a ``DynamicObjectRefGenerator`` of their refs as the task's one value. Sync and async generators
(async actors) are both run here; errors propagate to the executor, which reports them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from spindle import _ids
from spindle._core.generators import DynamicObjectRefGenerator
from spindle._core.object_ref import ObjectRef
from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.executor import Executor
    from spindle._core.result_sink import Sink


class Acks:
    """How many items each running streaming task's caller has consumed (back-pressure credit)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.consumed: dict[bytes, int] = {}

    def update(self, acks: Any) -> None:
        with self.cond:
            for a in acks:
                if a.task_id in self.consumed:
                    self.consumed[a.task_id] = max(self.consumed[a.task_id], a.consumed)
            self.cond.notify_all()

    def start(self, spec: pb.TaskSpec) -> None:
        with self.cond:
            self.consumed[spec.task_id] = spec.generator_skip

    def end(self, spec: pb.TaskSpec) -> None:
        with self.cond:
            self.consumed.pop(spec.task_id, None)

    def must_pause(self, spec: pb.TaskSpec, produced: int) -> bool:
        limit = spec.generator_backpressure
        return limit > 0 and produced - self.consumed.get(spec.task_id, 0) >= limit

    def wait(self, spec: pb.TaskSpec, produced: int, sink: Sink) -> None:
        with self.cond:
            while self.must_pause(spec, produced) and not sink.closed:
                self.cond.wait(0.5)


def _item(ex: Executor, spec: pb.TaskSpec, index: int, value: Any) -> pb.TaskResult:
    ov = ex.cw.to_object_value(_ids.return_id(spec.task_id, index + 1), value, spec.owner_address)
    return pb.TaskResult(task_id=spec.task_id, generator_item=True, item_index=index, returns=[ov])


def _dynamic(ex: Executor, spec: pb.TaskSpec, items: list[Any], start: float) -> pb.TaskResult:
    returns = [ex.cw.to_object_value(_ids.return_id(spec.task_id, i + 1), v, spec.owner_address)
               for i, v in enumerate(items)]
    refs = [ObjectRef(ov.object_id, spec.owner_address, counted=False) for ov in returns]
    head = ex.cw.to_object_value(spec.return_ids[0], DynamicObjectRefGenerator(refs), spec.owner_address)
    return pb.TaskResult(task_id=spec.task_id, returns=[*returns, head], generator_items=len(items),
                         exec_seconds=time.perf_counter() - start)


def _done(ex: Executor, spec: pb.TaskSpec, count: int, start: float) -> pb.TaskResult:
    head = ex.cw.to_object_value(spec.return_ids[0], None, spec.owner_address)
    return pb.TaskResult(task_id=spec.task_id, returns=[head], generator_items=count,
                         exec_seconds=time.perf_counter() - start)


def _check(spec: pb.TaskSpec, value: Any) -> None:
    if not hasattr(value, "__iter__") and not hasattr(value, "__aiter__"):
        raise TypeError(f"Task {spec.name!r} has num_returns={spec.generator!r} but returned a "
                        f"{type(value).__name__}, not a generator: use yield (or a plain num_returns).")


def run(ex: Executor, spec: pb.TaskSpec, value: Any, sink: Sink, start: float) -> pb.TaskResult:
    """Run a sync generator task to its end, streaming its items; the final result (errors raise)."""
    _check(spec, value)
    if spec.generator == "dynamic":
        return _dynamic(ex, spec, list(value), start)
    acks: Acks = ex.gen_acks
    acks.start(spec)
    try:
        i = 0
        for item in value:
            if i >= spec.generator_skip:
                sink.q.put(_item(ex, spec, i, item))
            i += 1
            if acks.must_pause(spec, i):
                acks.wait(spec, i, sink)
        return _done(ex, spec, i, start)
    finally:
        acks.end(spec)


async def run_async(ex: Executor, spec: pb.TaskSpec, value: Any, sink: Sink, start: float) -> pb.TaskResult:
    """The same for an async actor's method: an async generator (or a plain one) on the actor's loop."""
    _check(spec, value)
    if not hasattr(value, "__aiter__"):
        return run(ex, spec, value, sink, start)
    if spec.generator == "dynamic":
        return _dynamic(ex, spec, [item async for item in value], start)
    acks: Acks = ex.gen_acks
    acks.start(spec)
    try:
        i = 0
        async for item in value:
            if i >= spec.generator_skip:
                sink.q.put(_item(ex, spec, i, item))
            i += 1
            delay = 0.005
            while acks.must_pause(spec, i) and not sink.closed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        return _done(ex, spec, i, start)
    finally:
        acks.end(spec)
