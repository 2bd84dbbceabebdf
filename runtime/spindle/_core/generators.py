"""Generator tasks on the caller's side: ``num_returns="streaming"`` and ``"dynamic"``, as in Ray.

A streaming task's worker sends each yielded value as soon as it exists (an *item* result on the
task's stream, ids ``return_id(task_id, i + 1)``); the caller's ``ObjectRefGenerator`` hands out
a ref per item, in order, as they arrive. When the task ends the stream is closed: after the last
item ``next()`` raises StopIteration; if the task failed (or was cancelled) the error takes the
place of the next item (its ref raises it), then the stream ends. With back-pressure
(``_generator_backpressure_num_objects``) the caller reports how many items it has consumed, and
the worker pauses while that many are waiting. A retried generator runs again from the start and
the worker skips the items the caller already has.

``"dynamic"`` tasks return one ref whose value is a ``DynamicObjectRefGenerator`` over refs to
all the items (made by the worker when the generator finished).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from spindle import _ids
from spindle._core.object_ref import ObjectRef
from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

_streams: dict[bytes, StreamState] = {}  # task id -> the live stream of a task this process submitted
_lock = threading.Lock()


class StreamState:
    def __init__(self, cw: CoreWorker, task_id: bytes, ack: Callable[[int], None] | None):
        self.cw = cw
        self.task_id = task_id
        self.ack = ack  # tell the worker how many items were consumed (back-pressure), or None
        self.cond = threading.Condition()
        self.items: dict[int, ObjectRef] = {}  # arrived, not consumed yet
        self.seen: set[int] = set()
        self.received = 0  # items [0, received) have arrived
        self.total: int | None = None  # set when the task has ended
        self.consumed = 0

    def on_item(self, index: int, ov: pb.ObjectValue) -> None:
        with self.cond:
            if self.total is not None or index in self.seen:
                return  # a retried attempt sends again what we have: keep the first
            self.seen.add(index)
            self.cw.store.put(ov.object_id, ov)
            self.items[index] = self.cw.new_ref(ov.object_id)
            while self.received in self.seen:
                self.received += 1
            self.cond.notify_all()

    def on_end(self, error: pb.ObjectValue | None) -> None:
        with self.cond:
            if self.total is not None:
                return
            end = max([self.received, *[i + 1 for i in self.seen]])
            if error is not None:
                rid = _ids.return_id(self.task_id, end + 1)
                ov = pb.ObjectValue()
                ov.CopyFrom(error)
                ov.object_id = rid
                self.cw.store.put(rid, ov)
                self.items[end] = self.cw.new_ref(rid)
                end += 1
            self.total = end
            self.cond.notify_all()

    def next(self, timeout: float | None) -> ObjectRef:
        with self.cond:
            index = self.consumed
            if not self.cond.wait_for(lambda: index in self.items or self.total is not None, timeout):
                from spindle.exceptions import GetTimeoutError

                raise GetTimeoutError(f"the generator's item {index} was not ready within {timeout} s")
            if index not in self.items:
                raise StopIteration
            ref = self.items.pop(index)
            self.consumed += 1
            consumed, ack = self.consumed, self.ack if self.total is None else None
        if ack is not None:
            ack(consumed)
        return ref

    def ready(self) -> bool:
        with self.cond:
            return self.consumed in self.items or self.total is not None

    def delivered(self) -> int:
        with self.cond:
            return self.received


def register(cw: CoreWorker, task_id: bytes, ack: Callable[[int], None] | None) -> StreamState:
    state = StreamState(cw, task_id, ack)
    with _lock:
        _streams[task_id] = state
    return state


def _state(task_id: bytes) -> StreamState | None:
    with _lock:
        return _streams.get(task_id)


def deliver(r: pb.TaskResult) -> None:
    """An item result from a worker: store it and wake the consumer."""
    s = _state(r.task_id)
    if s is not None and r.returns:
        s.on_item(r.item_index, r.returns[0])


def finished(task_id: bytes, error: pb.ObjectValue | None) -> None:
    """The generator task ended (``error``: how it failed); its stream closes."""
    with _lock:
        s = _streams.pop(task_id, None)
    if s is not None:
        s.on_end(error)


def delivered(task_id: bytes) -> int:
    s = _state(task_id)
    return s.delivered() if s is not None else 0


class ObjectRefGenerator:
    """The refs a streaming generator task yields, in order, as they are produced (Ray's ObjectRefGenerator)."""

    def __init__(self, state: StreamState, generator_ref: ObjectRef):
        self._state = state
        self._generator_ref = generator_ref

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._state.next(None)

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        return self._state.next(timeout_s)

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        ref = await asyncio.get_running_loop().run_in_executor(None, self._next_or_none)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_or_none(self) -> ObjectRef | None:
        try:
            return self._state.next(None)
        except StopIteration:  # may not cross into a Future
            return None

    def completed(self) -> ObjectRef:
        """A ref that is ready when the task has finished (it raises the task's error, if any)."""
        return self._generator_ref

    def next_ready(self) -> bool:
        return self._state.ready()

    def is_finished(self) -> bool:
        with self._state.cond:
            return self._state.total is not None and self._state.consumed >= self._state.total

    def task_id(self) -> bytes:
        return self._state.task_id

    def __reduce__(self) -> Any:
        raise TypeError("An ObjectRefGenerator cannot be passed to another task or actor: iterate it here and "
                        "pass the refs it yields instead.")

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._state.task_id.hex()})"


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task's ref: the refs of everything it yielded."""

    def __init__(self, refs: list[ObjectRef]):
        self._refs = refs

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


def kind_of(num_returns: Any, is_generator: bool) -> tuple[str, int]:
    """("streaming"/"dynamic"/"", number of return refs) for a num_returns option (None: the default)."""
    if num_returns is None:
        return ("streaming", 1) if is_generator else ("", 1)
    if num_returns in ("streaming", "dynamic"):
        return str(num_returns), 1
    return "", int(num_returns)
