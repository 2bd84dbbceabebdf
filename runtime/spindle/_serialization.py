"""How values become bytes and back: cloudpickle, protocol 5, large buffers out of band.

A serialized value is a *frame*. Small values with no out-of-band buffers are the tag ``P``
followed by the pickle. Otherwise the tag ``F`` is followed by a header (buffer count, pickle
length, buffer lengths) and the pickle and every buffer, each aligned to 64 bytes, so a frame
living in shared memory can be unpickled with its buffers as zero-copy views into that memory
(numpy arrays come back read-only and share the store's pages).
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
from collections.abc import Callable
from typing import Any

import cloudpickle

ALIGN = 64
_HEAD = struct.Struct("<IQ")
_LEN = struct.Struct("<Q")


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Serialized:
    """A pickled value plus its out-of-band buffers, not yet laid out as a frame."""

    __slots__ = ("pickled", "buffers", "size")

    def __init__(self, pickled: bytes, buffers: list[memoryview]):
        self.pickled = pickled
        self.buffers = buffers
        if buffers:
            size = _aligned(1 + _HEAD.size + _LEN.size * len(buffers)) + _aligned(len(pickled))
            for b in buffers:
                size += _aligned(b.nbytes)
            self.size = size
        else:
            self.size = 1 + len(pickled)

    def to_bytes(self) -> bytes:
        if not self.buffers:
            return b"P" + self.pickled
        return b"".join(self.pieces())

    def pieces(self) -> list[bytes | memoryview]:
        """The frame as a list of byte pieces, for ``os.writev`` into a store file."""
        if not self.buffers:
            return [b"P", self.pickled]
        head = bytearray(_aligned(1 + _HEAD.size + _LEN.size * len(self.buffers)))
        head[0:1] = b"F"
        _HEAD.pack_into(head, 1, len(self.buffers), len(self.pickled))
        for i, b in enumerate(self.buffers):
            _LEN.pack_into(head, 1 + _HEAD.size + i * _LEN.size, b.nbytes)
        out: list[bytes | memoryview] = [bytes(head), self.pickled, bytes(_aligned(len(self.pickled)) - len(self.pickled))]
        for b in self.buffers:
            out.append(b if b.format == "B" and b.ndim == 1 else b.cast("B"))
            pad = _aligned(b.nbytes) - b.nbytes
            if pad:
                out.append(bytes(pad))
        return out


def _out_of_band(buffers: list[memoryview]) -> Callable[[pickle.PickleBuffer], bool]:
    """The pickler's ``buffer_callback``: large buffers go to ``buffers`` (written after the pickle, zero-copy).

    A closure, not a method of the pickler: a pickler holding its own bound method is a reference cycle, and
    it kept every value it pickled (its memo) and its buffers alive until the cyclic collector ran. numpy
    arrays are not tracked by that collector, so a task returning 100 MiB arrays in a loop leaked one per
    call (2.4 GiB in its worker after 30 calls) until a rare full collection."""

    def on_buffer(buf: pickle.PickleBuffer) -> bool:
        mv = buf.raw()
        if mv.nbytes < 4096:
            return True  # keep small buffers in band
        buffers.append(mv)
        return False

    return on_buffer


_PLAIN = (bytes, str, int, float, bool, type(None))


def serialize(value: Any) -> Serialized:
    if type(value) in _PLAIN and (type(value) is not bytes or len(value) < 4096):
        return Serialized(pickle.dumps(value, protocol=5), [])  # the common small result, without cloudpickle
    buffers: list[memoryview] = []
    f = io.BytesIO()
    pickler = cloudpickle.Pickler(f, protocol=5, buffer_callback=_out_of_band(buffers))
    try:
        pickler.dump(value)
    finally:
        pickler.clear_memo()  # the value is not kept past its serialization, whatever holds the pickler
    return Serialized(f.getvalue(), buffers)


def deserialize(frame: bytes | memoryview) -> Any:
    mv = frame if isinstance(frame, memoryview) else memoryview(frame)
    tag = mv[0:1].tobytes()
    if tag == b"P":
        return pickle.loads(mv[1:])
    if tag != b"F":
        raise ValueError("not a Spindle object frame")
    nbufs, plen = _HEAD.unpack_from(mv, 1)
    off = 1 + _HEAD.size
    lens = []
    for _ in range(nbufs):
        (n,) = _LEN.unpack_from(mv, off)
        lens.append(n)
        off += _LEN.size
    pos = _aligned(1 + _HEAD.size + _LEN.size * nbufs)
    pickled = mv[pos : pos + plen]
    pos += _aligned(plen)
    bufs = []
    for n in lens:
        bufs.append(mv[pos : pos + n])
        pos += _aligned(n)
    return pickle.loads(pickled, buffers=bufs)


FUNCTION_SIZE_WARN = 10 * 1000 * 1000  # as Ray: warn above 10 MB, refuse above 100 MB
FUNCTION_SIZE_ERROR = 100 * 1000 * 1000


def pickle_function(fn: Any, what: str = "remote function", name: str = "") -> bytes:
    """Pickle a function or actor class, refusing one that captured a huge object (it would travel with every
    lease); the message names the size and the fix, like Ray's."""
    try:
        blob = cloudpickle.dumps(fn, protocol=5)
    except Exception as e:
        from spindle.util.check_serialize import describe

        label = f"{getattr(fn, '__module__', '')}.{name}".lstrip(".")
        detail = describe(fn, name)
        raise TypeError(f"Could not serialize the {what} {label}: {type(e).__name__}: {e}. "
                        + (f"Captured by it: {detail}. " if detail else "")
                        + "Remote functions and actor classes must not capture unpicklable objects such as locks, "
                          "sockets or open files: create them inside the function, or pass them differently.") from e
    size = len(blob)
    if size > FUNCTION_SIZE_WARN:
        mib = size / 2**20
        advice = ("Check that its definition is not implicitly capturing a large array or other object in scope. "
                  "Tip: use spindle.put() to put large objects in the object store and pass the ref as an argument.")
        if size > FUNCTION_SIZE_ERROR:
            raise ValueError(f"The {what} {name!r} is too large ({mib:.1f} MiB pickled > "
                             f"{FUNCTION_SIZE_ERROR / 2**20:.0f} MiB). {advice}")
        warnings.warn(f"The {what} {name!r} is very large ({mib:.1f} MiB pickled). {advice}", stacklevel=3)
    return blob


def pickle_error(err: BaseException) -> bytes:
    """Pickle an exception so that the caller can rebuild it.

    One that can't be pickled, or whose pickle can't be loaded back (a custom ``__init__`` whose
    arguments differ from ``args``, a lock in an attribute, ...), becomes a plain RayTaskError that keeps
    the original type name, message and traceback text, as Ray does.
    """
    step = "pickled"
    try:
        blob = cloudpickle.dumps(err, protocol=5)
        step = "unpickled"
        cloudpickle.loads(blob)  # the caller must be able to rebuild it (only paid on the error path)
        return blob
    except Exception as e:  # noqa: BLE001 - any failure to round-trip
        from spindle.exceptions import RayTaskError

        cause = getattr(err, "cause", None) or err
        tb = getattr(err, "traceback_str", "") or f"{type(cause).__name__}: {cause}"
        note = (f"\n(The original exception {type(cause).__name__} could not be {step} ({type(e).__name__}: "
                f"{e}), so it is raised as a RayTaskError carrying its message and traceback.)")
        fallback = RayTaskError(getattr(err, "function_name", "") or "", tb + note)
        fallback.cause_class_name = type(cause).__name__
        return cloudpickle.dumps(fallback, protocol=5)
