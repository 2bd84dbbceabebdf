"""Values this process owns or has fetched, and the counts that decide when they are freed.

Entries are ``ObjectValue`` messages: the inline frame of a small value, or the location of a
large one in some node's shared-memory store. Waiters block on one condition; completion
callbacks let task submission wait for dependencies without a thread per task.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable

from spindle._proto import pb

Callback = Callable[[bytes, pb.ObjectValue], None]


class _Waiter:
    """One blocked wait(): counts down as the objects it needs arrive, so no re-scan per arrival."""

    __slots__ = ("remaining", "event", "fail_fast")

    def __init__(self, remaining: int, fail_fast: bool = False):
        self.remaining = remaining
        self.event = threading.Event()
        self.fail_fast = fail_fast  # wake as soon as one of the objects is an error (get() raises it)


class MemoryStore:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.ready: dict[bytes, pb.ObjectValue] = {}
        self.callbacks: dict[bytes, list[Callback]] = {}
        self.waiters: dict[bytes, list[_Waiter]] = {}

    def put(self, oid: bytes, value: pb.ObjectValue) -> None:
        with self.cond:
            first = oid not in self.ready
            self.ready[oid] = value
            cbs = self.callbacks.pop(oid, None)
            ws = self.waiters.pop(oid, None) if first else None
            if ws:
                for w in ws:
                    w.remaining -= 1
                    if w.remaining <= 0 or (w.fail_fast and value.is_error):
                        w.event.set()
        if cbs:
            for cb in cbs:
                cb(oid, value)

    def get(self, oid: bytes) -> pb.ObjectValue | None:
        return self.ready.get(oid)

    def on_ready(self, oid: bytes, cb: Callback) -> None:
        with self.cond:
            v = self.ready.get(oid)
            if v is None:
                self.callbacks.setdefault(oid, []).append(cb)
                return
        cb(oid, v)

    def delete(self, oid: bytes) -> pb.ObjectValue | None:
        with self.cond:
            return self.ready.pop(oid, None)

    def wait(self, oids: Iterable[bytes], num: int, timeout: float | None, fail_fast: bool = False) -> list[bytes]:
        """Block until ``num`` of ``oids`` are ready (or timeout); return the ready ones, in order.

        ``fail_fast``: also return as soon as one of them is an error (what ``get()`` of a list needs).
        """
        oids = list(oids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            ready = self.ready
            missing = list(itertools.filterfalse(ready.__contains__, oids))
            need = num - (len(oids) - len(missing))
            if need <= 0 or not missing:
                return list(filter(ready.__contains__, oids))
            if fail_fast and any(ready[o].is_error for o in oids if o in ready):
                return list(filter(ready.__contains__, oids))
            waiter = _Waiter(need, fail_fast)
            for o in missing:
                self.waiters.setdefault(o, []).append(waiter)
        try:
            while not waiter.event.is_set():
                if deadline is None:
                    waiter.event.wait(1.0)
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    waiter.event.wait(min(left, 1.0))
        finally:
            with self.cond:
                for o in missing:
                    ws = self.waiters.get(o)
                    if ws is not None and waiter in ws:
                        ws.remove(waiter)
                        if not ws:
                            del self.waiters[o]
        with self.cond:
            return list(filter(self.ready.__contains__, oids))


class RefCounts:
    """Local ref counts plus pins from pending tasks and escapes; calls ``free`` at zero."""

    def __init__(self, free: Callable[[bytes], None]):
        self.lock = threading.RLock()
        self.local: dict[bytes, int] = {}
        self.pins: dict[bytes, int] = {}
        self.escaped: set[bytes] = set()
        self._free = free

    def add(self, oid: bytes) -> None:
        with self.lock:
            self.local[oid] = self.local.get(oid, 0) + 1

    def remove(self, oid: bytes) -> None:
        with self.lock:
            n = self.local.get(oid, 0) - 1
            if n > 0:
                self.local[oid] = n
                return
            self.local.pop(oid, None)
            if self.pins.get(oid) or oid in self.escaped:
                return
        self._free(oid)

    def pin(self, oid: bytes) -> None:
        with self.lock:
            self.pins[oid] = self.pins.get(oid, 0) + 1

    def unpin(self, oid: bytes) -> None:
        with self.lock:
            n = self.pins.get(oid, 0) - 1
            if n > 0:
                self.pins[oid] = n
                return
            self.pins.pop(oid, None)
            if self.local.get(oid) or oid in self.escaped:
                return
        self._free(oid)

    def escape(self, oid: bytes) -> None:
        with self.lock:
            self.escaped.add(oid)
