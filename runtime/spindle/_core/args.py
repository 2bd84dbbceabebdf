"""Turning call arguments into wire arguments, and waiting for the refs among them.

Top-level ObjectRef arguments are dependencies: the caller waits (without a thread) until each is
ready, then sends its inline value or its store location, so the worker never asks the owner.
Large literal arguments are put into the store first, as Ray does. Refs nested inside values stay
refs. While a task is pending its dependencies are pinned so they cannot be freed under it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spindle._core.object_ref import ObjectRef
from spindle._proto import pb
from spindle._serialization import serialize

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

INLINE_ARG_MAX = 100 * 1024


class PreparedArgs:
    __slots__ = ("args", "deps", "pinned")

    def __init__(self) -> None:
        self.args: list[pb.Arg] = []
        self.deps: list[tuple[int, ObjectRef]] = []
        self.pinned: list[bytes] = []


def prepare(cw: CoreWorker, args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> PreparedArgs:
    out = PreparedArgs()
    items: list[tuple[str, Any]] = [("", a) for a in args] + list(kwargs.items())
    for i, (kw, value) in enumerate(items):
        arg = pb.Arg(keyword=kw)
        if isinstance(value, ObjectRef):
            out.deps.append((i, value))
        else:
            try:
                ser = serialize(value)
            except Exception as e:
                name = f"keyword argument {kw!r}" if kw else f"argument {i + 1}"
                raise TypeError(f"Could not serialize {name} of {what} ({type(value).__name__}): {e}. "
                                "Only picklable values can be passed to remote functions and actors.") from e
            if ser.size > INLINE_ARG_MAX:
                ref = cw.put(value)
                out.deps.append((i, ref))
            else:
                arg.value.inline = ser.to_bytes()
        out.args.append(arg)
    for _, ref in out.deps:
        if ref.owner_address == cw.address:  # handed to the task: its answer says whether it let go (answered)
            cw.refs.pin(ref.binary())
            out.pinned.append(ref.binary())
    return out


def resolve(cw: CoreWorker, prepared: PreparedArgs, done: Callable[[pb.ObjectValue | None], None]) -> None:
    """Call ``done(None)`` once every dependency is filled in, or ``done(error_value)`` on the first error."""
    if not prepared.deps:
        done(None)
        return
    state = {"left": len(prepared.deps), "finished": False}
    lock = threading.Lock()

    def make_cb(index: int) -> Callable[[bytes, pb.ObjectValue], None]:
        def cb(oid: bytes, ov: pb.ObjectValue) -> None:
            prepared.args[index].value.CopyFrom(ov)
            with lock:
                if state["finished"]:
                    return
                if ov.is_error:
                    state["finished"] = True
                    err: pb.ObjectValue | None = ov
                else:
                    state["left"] -= 1
                    if state["left"] > 0:
                        return
                    state["finished"] = True
                    err = None
            done(err)

        return cb

    for index, ref in prepared.deps:
        cw.ensure_fetch(ref)
        cw.store.on_ready(ref.binary(), make_cb(index))


def answered(cw: CoreWorker, prepared: PreparedArgs, result: pb.TaskResult) -> None:
    """A run of the task answered: the arguments we own that it did not unmap may still be mapped there."""
    if prepared.pinned:
        cw.shm.answered(prepared.pinned, set(result.released_object_ids))


def release(cw: CoreWorker, prepared: PreparedArgs, drop_refs: bool = False) -> None:
    """The call is done: unpin its arguments; ``drop_refs`` (nothing will run it again): let go of their refs now,
    so a large argument promoted to the store is freed, and its file is the spare again, before the caller sees
    the result and makes its next call."""
    for oid in prepared.pinned:
        cw.refs.unpin(oid)
    prepared.pinned = []
    if drop_refs:
        prepared.deps = []
