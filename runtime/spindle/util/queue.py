"""A FIFO queue shared between tasks and actors, like `ray.util.queue.Queue`.

Why an actor: a `queue.Queue` lives in one process, but producers and consumers here are tasks and
actors spread over processes and nodes. The queue's state therefore lives in one async actor, and
`Queue` is a small picklable client holding its handle — pass it to any task or actor and they all
see the same queue.

Why an *async* actor: a blocking `get` on an empty queue must not occupy the actor, or the `put`
that would wake it could never run. On an event loop, every waiting `get`/`put` is a suspended
coroutine and the actor keeps serving other calls. Timeouts are enforced in the actor, so a timed
out `get` stops waiting there too instead of stealing an item later.

The actor reports "empty"/"full" as return values rather than by raising, so the client raises its
own `Empty`/`Full` no matter how the runtime wraps remote exceptions.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

import spindle


class Empty(_stdlib_queue.Empty):
    """Raised by `get` when the queue stays empty (non-blocking, or after the timeout)."""


class Full(_stdlib_queue.Full):
    """Raised by `put` when the queue stays full (non-blocking, or after the timeout)."""


class _QueueActor:
    """Holds the items. Every method is a coroutine so all of them run on the actor's loop."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> bool:
        if not self.queue.full():
            self.queue.put_nowait(item)
            return True
        if timeout is not None and timeout <= 0:
            return False
        ok, _ = await _within(self.queue.put(item), timeout)
        return ok

    async def get(self, timeout: float | None = None) -> tuple[bool, Any]:
        if not self.queue.empty():
            return True, self.queue.get_nowait()
        if timeout is not None and timeout <= 0:
            return False, None
        return await _within(self.queue.get(), timeout)

    async def put_nowait(self, item: Any) -> bool:
        if self.queue.full():
            return False
        self.queue.put_nowait(item)
        return True

    async def put_nowait_batch(self, items: list[Any]) -> bool:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            return False
        for item in items:
            self.queue.put_nowait(item)
        return True

    async def get_nowait(self) -> tuple[bool, Any]:
        if self.queue.empty():
            return False, None
        return True, self.queue.get_nowait()

    async def get_nowait_batch(self, num_items: int) -> tuple[bool, list[Any]]:
        if num_items > self.queue.qsize():
            return False, []
        return True, [self.queue.get_nowait() for _ in range(num_items)]


async def _within(awaitable: Any, timeout: float | None) -> tuple[bool, Any]:
    """(True, result) if `awaitable` finishes within `timeout`, else (False, None).

    Unlike `asyncio.wait_for` on 3.11, a result that arrives just as the timeout fires is kept,
    never dropped: `asyncio.Queue.get` only removes the item once its coroutine resumes.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        return True, task.result()
    task.cancel()
    try:
        return True, await task
    except asyncio.CancelledError:
        return False, None


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """First-in, first-out queue usable from the driver, tasks and actors.

    `maxsize=0` means unbounded. `actor_options` are passed to the backing actor's
    `.options(...)` (resources, name, namespace, lifetime, ...).
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        self.maxsize = maxsize
        self.actor: Any = spindle.remote(_QueueActor).options(**(actor_options or {})).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """Number of items in the queue."""
        return int(spindle.get(self.actor.qsize.remote()))

    def qsize(self) -> int:
        """Number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        return bool(spindle.get(self.actor.empty.remote()))

    def full(self) -> bool:
        return bool(spindle.get(self.actor.full.remote()))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add `item`; when full, wait (up to `timeout`) if `block`, else raise `Full`."""
        if block:
            _check_timeout(timeout)
            ok = spindle.get(self.actor.put.remote(item, timeout))
        else:
            ok = spindle.get(self.actor.put_nowait.remote(item))
        if not ok:
            raise Full

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """`put` for coroutines (e.g. inside async actors): awaits instead of blocking a thread."""
        if block:
            _check_timeout(timeout)
            ok = await self.actor.put.remote(item, timeout)
        else:
            ok = await self.actor.put_nowait.remote(item)
        if not ok:
            raise Full

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item; when empty, wait (up to `timeout`) if `block`,
        else raise `Empty`."""
        if block:
            _check_timeout(timeout)
            ok, item = spindle.get(self.actor.get.remote(timeout))
        else:
            ok, item = spindle.get(self.actor.get_nowait.remote())
        if not ok:
            raise Empty
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """`get` for coroutines (e.g. inside async actors)."""
        if block:
            _check_timeout(timeout)
            ok, item = await self.actor.get.remote(timeout)
        else:
            ok, item = await self.actor.get_nowait.remote()
        if not ok:
            raise Empty
        return item

    def put_nowait(self, item: Any) -> None:
        """`put(item, block=False)`."""
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        """`get(block=False)`."""
        return self.get(block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all `items` in order, or none of them (raising `Full`) if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        batch = list(items)
        if not spindle.get(self.actor.put_nowait_batch.remote(batch)):
            raise Full(f"Cannot add {len(batch)} items to a queue of maxsize {self.maxsize} without exceeding it.")

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return `num_items` items in order, or raise `Empty` if there are fewer."""
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        ok, items = spindle.get(self.actor.get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(f"Cannot get {num_items} items from the queue.")
        return list(items)

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Terminate the backing actor; the queue's items are discarded and it cannot be used
        again.

        The actor holds no state worth saving, so graceful and forced termination both kill it;
        the arguments are kept for compatibility with Ray's signature.
        """
        del force, grace_period_s
        if self.actor is not None:
            spindle.kill(self.actor, no_restart=True)
        self.actor = None
