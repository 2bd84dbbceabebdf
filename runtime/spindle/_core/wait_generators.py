"""``wait()`` over ObjectRefGenerators as well as ObjectRefs, as Ray's ``ray.wait`` takes both.

A generator counts as ready when ``next()`` on it would not block: its next item has arrived, or its
stream has ended (``next()`` then raises StopIteration at once, which is how Ray's documented loop
``ready, _ = ray.wait([gen]); next(gen)`` finds the end). Items arrive on the generator's own
condition, not in the object store, so a list holding generators is waited on in short slices that
grow (up to 50 ms), checking both kinds each time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker
    from spindle._core.object_ref import ObjectRef


def wait_mixed(cw: CoreWorker, items: list[Any], num_returns: int, timeout: float | None) -> set[int]:
    """Indexes into ``items`` (ObjectRefs and ObjectRefGenerators) that are ready, at least ``num_returns``
    of them unless ``timeout`` expired first."""
    from spindle._core.generators import ObjectRefGenerator

    refs: list[tuple[int, ObjectRef]] = [(i, x) for i, x in enumerate(items) if not isinstance(x, ObjectRefGenerator)]
    gens = [(i, x) for i, x in enumerate(items) if isinstance(x, ObjectRefGenerator)]
    deadline = None if timeout is None else time.monotonic() + timeout
    slice_s = 0.001
    while True:
        ready = {i for i, g in gens if g.next_ready()}
        refs_ready = 0
        if refs:
            oids = set(cw.wait_ready([r for _, r in refs], len(refs), 0))
            hits = {i for i, r in refs if r.binary() in oids}
            refs_ready = len(hits)
            ready |= hits
        if len(ready) >= num_returns:
            return ready
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return ready
        pause = slice_s if deadline is None else min(slice_s, deadline - now)
        if refs_ready < len(refs):  # wakes early when one more ref becomes ready
            cw.wait_ready([r for _, r in refs], refs_ready + 1, pause)
        else:
            time.sleep(pause)
        slice_s = min(slice_s * 2, 0.05)
