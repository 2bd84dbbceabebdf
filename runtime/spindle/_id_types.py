"""Ray's public id classes (``ray.ActorID``, ``ray.JobID``, ...): programs build, compare and print ids with them.

Spindle's ids are plain bytes internally (``_ids``) and hex strings in the runtime context, as in Ray; these
classes wrap those bytes with Ray's methods (``hex``/``binary``/``from_hex``/``from_binary``/``nil``/``is_nil``/
``size``). Sizes are Spindle's (16 bytes, a job id 4 bytes big-endian), so ``ActorID.from_hex(
get_runtime_context().get_actor_id())`` round-trips. Ids of different kinds never compare equal.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from spindle._ids import ID_LEN

T = TypeVar("T", bound="BaseID")


class BaseID:
    SIZE = ID_LEN

    __slots__ = ("_b",)

    def __init__(self, id: bytes) -> None:
        if not isinstance(id, bytes):
            raise TypeError(f"{type(self).__name__} takes bytes, got {type(id).__name__}: use "
                            f"{type(self).__name__}.from_hex() for a hex string")
        if id and len(id) != self.SIZE:
            raise ValueError(f"{type(self).__name__} is {self.SIZE} bytes, got {len(id)}")
        self._b = id

    @classmethod
    def size(cls) -> int:
        return cls.SIZE

    @classmethod
    def from_binary(cls: type[T], id_bytes: bytes) -> T:
        return cls(id_bytes)

    @classmethod
    def from_hex(cls: type[T], hex_id: str | bytes) -> T:
        text = hex_id.decode() if isinstance(hex_id, bytes) else hex_id
        try:
            return cls(bytes.fromhex(text))
        except ValueError as e:
            raise ValueError(f"{hex_id!r} is not a {cls.SIZE}-byte hex {cls.__name__}: {e}") from None

    @classmethod
    def from_random(cls: type[T]) -> T:
        return cls(os.urandom(cls.SIZE))

    @classmethod
    def nil(cls: type[T]) -> T:
        return cls(b"\xff" * cls.SIZE)

    def is_nil(self) -> bool:
        return not self._b or self._b == b"\xff" * self.SIZE

    def binary(self) -> bytes:
        return self._b

    def hex(self) -> str:
        return self._b.hex()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._b == self._b  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._b))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"

    def __reduce__(self) -> Any:
        return type(self), (self._b,)


class ActorID(BaseID):
    __slots__ = ()


class TaskID(BaseID):
    __slots__ = ()


class NodeID(BaseID):
    __slots__ = ()


class ObjectID(BaseID):
    __slots__ = ()


class WorkerID(BaseID):
    __slots__ = ()


class PlacementGroupID(BaseID):
    __slots__ = ()


class JobID(BaseID):
    SIZE = 4
    __slots__ = ()

    @classmethod
    def from_int(cls, value: int) -> JobID:
        return cls(value.to_bytes(cls.SIZE, "big"))

    def int(self) -> int:
        return int.from_bytes(self._b, "big")


__all__ = ["ActorID", "BaseID", "JobID", "NodeID", "ObjectID", "PlacementGroupID", "TaskID", "WorkerID"]
