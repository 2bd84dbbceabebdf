"""``wait()``, and the argument checks ``get()`` and ``wait()`` share, apart from the rest of the API.

Split out of ``api.py`` (init, shutdown and the other module-level calls) because ``wait`` is its own
algorithm: built for the loop ``while refs: ready, refs = wait(refs)`` over thousands of refs, it passes
over the list with C-level ``map``/``filter``/slices only, checks its arguments in Ray's words, and
hands lists holding ObjectRefGenerators to ``wait_generators``.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

from spindle._core import context as _context
from spindle._core.object_ref import ObjectRef

_OBJECT_ID = operator.attrgetter("_id")  # ObjectRef.binary() as a C-level getter, for map()


def _as_list(refs: Any, fn: str) -> tuple[list[ObjectRef], bool]:
    if isinstance(refs, ObjectRef):
        return [refs], True
    if isinstance(refs, (list, tuple)):
        for r in refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"{fn}() expects an ObjectRef or a list of ObjectRefs, got a list containing "
                                f"{type(r).__name__}")
        return list(refs), False
    raise TypeError(f"{fn}() expects an ObjectRef or a list of ObjectRefs, got {type(refs).__name__}")


def wait(object_refs: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Return (ready, not_ready) once ``num_returns`` refs are ready or ``timeout`` expires.

    Written for the loop ``while refs: ready, refs = wait(refs)`` over thousands of refs: every pass over the list
    is a C-level ``map``/``filter``/slice, not a Python expression per ref (that loop is quadratic in the refs)."""
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of ObjectRef, got a single ObjectRef")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ObjectRef, got {type(object_refs).__name__}")
    if set(map(type, object_refs)) - {ObjectRef}:  # generators, or something that is no ref (refused here)
        from spindle._core.generators import ObjectRefGenerator

        _as_list([x for x in object_refs if not isinstance(x, ObjectRefGenerator)], "wait")
        if any(isinstance(x, ObjectRefGenerator) for x in object_refs):
            return _wait_with_generators(_context.core_or_init(), list(object_refs), num_returns, timeout)
    refs = list(object_refs)
    cw = _context.core_or_init()
    if not refs:
        return [], []
    ids = list(map(_OBJECT_ID, refs))
    _check_wait(len(set(ids)) == len(ids), "object refs", num_returns, len(refs), timeout)
    return _split(refs, ids, cw.wait_ready(refs, num_returns, timeout, oids=ids), num_returns)


def _split(refs: list[ObjectRef], ids: list[bytes], ready_ids: list[bytes],
           num_returns: int) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """(the first ``num_returns`` refs whose id is in ``ready_ids``, every other ref), both in the given order."""
    ready_set = set(ready_ids)
    chosen = list(itertools.islice(itertools.compress(range(len(ids)), map(ready_set.__contains__, ids)),
                                   num_returns))
    pending: list[ObjectRef] = []
    start = 0
    for i in chosen:
        pending += refs[start:i]
        start = i + 1
    pending += refs[start:]
    return [refs[i] for i in chosen], pending


def _check_wait(unique: bool, what: str, num_returns: int, count: int, timeout: float | None) -> None:
    """Ray's argument checks of wait(), in Ray's words."""
    if not unique:
        raise ValueError(f"Wait requires a list of unique {what}.")
    if num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > count:
        raise ValueError("num_returns cannot be greater than the number of objects provided to wait().")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be >= 0, got {timeout}")


def _wait_with_generators(cw: Any, items: list[Any], num_returns: int,
                          timeout: float | None) -> tuple[list[Any], list[Any]]:
    from spindle._core.wait_generators import wait_mixed

    unique = len({id(x) if not isinstance(x, ObjectRef) else x.binary() for x in items}) == len(items)
    _check_wait(unique, "ray_waitables", num_returns, len(items), timeout)
    ready_idx = wait_mixed(cw, items, num_returns, timeout)
    ready: list[Any] = []
    pending: list[Any] = []
    for i, x in enumerate(items):
        (ready if i in ready_idx and len(ready) < num_returns else pending).append(x)
    return ready, pending
