"""ObjectRef: a future for a value somewhere in the cluster, counted so dropped values are freed.

A ref knows its object id and the address of its *owner* (the process that created it by
``put`` or by submitting the task); whoever holds a ref asks the owner for the value. Creating
and dropping refs updates the owner-side count in this process; a ref pickled into another value
escapes, and the owner then keeps the value for as long as it lives.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Generator
from typing import Any, Protocol


class _Counter(Protocol):
    def add_local_ref(self, oid: bytes) -> None: ...
    def remove_local_ref(self, oid: bytes) -> None: ...
    def ref_escaped(self, oid: bytes, owner: str) -> None: ...
    def get_one(self, ref: ObjectRef, timeout: float | None) -> Any: ...


_counter: list[_Counter | None] = [None]


def set_counter(counter: _Counter | None) -> None:
    _counter[0] = counter


class ObjectRef:
    __slots__ = ("_id", "_owner", "_counted", "__weakref__")

    def __init__(self, object_id: bytes, owner: str, counted: bool = True):
        self._id = object_id
        self._owner = owner
        c = _counter[0] if counted else None
        self._counted = c
        if c is not None:
            c.add_local_ref(object_id)

    def __del__(self) -> None:
        c = self._counted
        if c is not None:
            try:
                c.remove_local_ref(self._id)
            except Exception:
                pass

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    @property
    def owner_address(self) -> str:
        return self._owner

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self) -> Any:
        c = _counter[0]
        if c is not None:
            c.ref_escaped(self._id, self._owner)
        return (_rebuild, (self._id, self._owner))

    def future(self) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(_get(self))
            except BaseException as e:  # noqa: BLE001 - delivered to the awaiting side
                fut.set_exception(e)

        import threading

        threading.Thread(target=run, daemon=True).start()
        return fut

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio

        return asyncio.wrap_future(self.future()).__await__()


def _get(ref: ObjectRef) -> Any:
    c = _counter[0]
    if c is None:
        raise RuntimeError("spindle is not initialized: call spindle.init() first")
    return c.get_one(ref, None)


def _rebuild(object_id: bytes, owner: str) -> ObjectRef:
    return ObjectRef(object_id, owner)
