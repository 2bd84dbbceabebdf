"""A fixed pool of actors that work through a stream of values, like `ray.util.ActorPool`.

Why it exists: users port Ray programs that shard work over a handful of long-lived actors
(each holding a model, a connection, a loaded dataset) and iterate over the results in order or as
they finish. The pool is pure bookkeeping on the caller's side — which actor is idle, which result
belongs to which submission — and talks to the cluster only through the public API
(`spindle.wait`, `spindle.get`), so it behaves the same on any runtime that implements those.

Semantics copied from Ray because programs depend on them:
- `submit` calls `fn(actor, value)` at once when an actor is idle, otherwise queues the value; a
  queued value is sent as soon as a result is collected and its actor handed back.
- An actor counts as busy until its result is *collected* by `get_next*`, not merely finished.
- `get_next` returns results in submission order, `get_next_unordered` whichever is ready first;
  after an unordered call, ordered calls that would go backwards raise `ValueError`.
- A timeout raises `TimeoutError`; with `ignore_if_timedout=True` the late task is forgotten, its
  actor returned to the idle set, and `TimeoutError` is still raised.
- `map`/`map_unordered` first drain (and drop) whatever was still pending, then return a lazy
  generator: nothing is collected until it is iterated.
- An actor whose call raised `ActorDiedError` is not returned to the idle set.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import spindle

# fn(actor, value) -> ObjectRef, or a list of refs for methods with num_returns > 1.
SubmitFn = Callable[[Any, Any], Any]

_TIMEOUT_MSG = "Timed out waiting for result"


def _key(future: Any) -> Any:
    """A hashable key for a future: a list of refs (num_returns > 1) becomes a tuple."""
    return tuple(future) if isinstance(future, list) else future


def _refs(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def _actor_died(exc: BaseException) -> bool:
    died = getattr(getattr(spindle, "exceptions", None), "ActorDiedError", None)
    return isinstance(died, type) and isinstance(exc, died)


class ActorPool:
    """Operate on a fixed pool of actor handles.

    >>> pool = ActorPool([a1, a2])
    >>> list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4]))
    [2, 4, 6, 8]
    """

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors: list[Any] = list(actors)
        # key of an in-flight future -> (submission index, actor running it)
        self._future_to_actor: dict[Any, tuple[int, Any]] = {}
        # submission index -> future, for results not yet collected
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: collections.deque[tuple[SubmitFn, Any]] = collections.deque()

    # -- submitting -------------------------------------------------------------------------

    def submit(self, fn: SubmitFn, value: Any) -> None:
        """Run `fn(actor, value)` on an idle actor now, or as soon as one is free."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[_key(future)] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def map(self, fn: SubmitFn, values: Iterable[Any]) -> Iterator[Any]:
        """Apply `fn` over `values` on the pool; iterate the result for results in order."""
        while self.has_next():
            try:
                self.get_next(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next)

    def map_unordered(self, fn: SubmitFn, values: Iterable[Any]) -> Iterator[Any]:
        """Like `map`, but yield results as they finish."""
        while self.has_next():
            try:
                self.get_next_unordered(timeout=0)
            except TimeoutError:
                pass
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next_unordered)

    def _drain(self, next_result: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield next_result()

    # -- collecting -------------------------------------------------------------------------

    def has_next(self) -> bool:
        """Whether any submitted result has not been collected yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Return the next result in submission order, waiting up to `timeout` seconds."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = False
        if timeout is not None:
            refs = list(future) if isinstance(future, list) else [future]
            ready, _ = spindle.wait(refs, num_returns=len(refs), timeout=timeout)
            if len(ready) < len(refs):
                if not ignore_if_timedout:
                    raise TimeoutError(_TIMEOUT_MSG)
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(future))
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._collect(future, actor)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Return whichever pending result finishes first, waiting up to `timeout` seconds."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        key = self._first_ready(timeout)
        timed_out = key is None
        if key is None:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMEOUT_MSG)
            key = next(iter(self._future_to_actor))
        index, actor = self._future_to_actor.pop(key)
        future = self._index_to_future.pop(index)
        self._next_return_index = max(self._next_return_index, index + 1)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._collect(future, actor)

    def _first_ready(self, timeout: float | None) -> Any:
        """Key of an in-flight future whose refs are all ready, or None after `timeout`.

        Single refs (the common case) take one `wait`; a multi-return future counts as ready
        once all its refs are, so refs are waited for one at a time until some future is whole.
        """
        keys = list(self._future_to_actor)
        deadline = None if timeout is None else time.monotonic() + timeout
        done: set[Any] = set()
        while True:
            for key in keys:
                if all(ref in done for ref in _refs(key)):
                    return key
            pending = [ref for key in keys for ref in _refs(key) if ref not in done]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = spindle.wait(pending, num_returns=1, timeout=left)
            if not ready:
                return None
            done.update(ready)

    def _collect(self, future: Any, actor: Any) -> Any:
        alive = True
        try:
            return spindle.get(future)
        except Exception as exc:
            alive = not _actor_died(exc)
            raise
        finally:
            self._return_actor(actor, alive=alive)

    # -- actors -----------------------------------------------------------------------------

    def _return_actor(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.popleft())

    def has_free(self) -> bool:
        """Whether an actor is idle and nothing is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any | None:
        """Remove and return an idle actor, or None when none is free."""
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool; it immediately takes a queued submission if there is one."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
