"""A large value a task or actor method returns is freed in its worker as soon as it is written to the store.

Its serialization used to keep it alive until Python's cyclic collector ran (the pickler referred to itself
through its buffer callback), so a loop of tasks returning 100 MiB arrays held one more array per call in the
worker (2.4 GiB after 30 calls): every call then wrote into fresh pages. The actor here turns the cyclic
collector off, so nothing but reference counting can free the arrays, and counts them with weak references.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np
import pytest

import spindle

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
class Maker:
    def __init__(self) -> None:
        gc.disable()
        self.made: list[weakref.ref[Any]] = []

    def make(self, nbytes: int, value: int) -> Any:
        arr = np.full(nbytes, value, dtype=np.uint8)
        self.made.append(weakref.ref(arr))
        return arr

    def alive(self) -> int:
        return sum(r() is not None for r in self.made)


def test_large_returned_arrays_do_not_stay_alive_in_the_worker_after_each_call() -> None:
    m = Maker.remote()  # type: ignore[attr-defined]
    for i in range(5):
        got = spindle.get(m.make.remote(20 << 20, i), timeout=60)
        assert got[0] == i and got[-1] == i
        del got
    assert spindle.get(m.alive.remote(), timeout=60) == 0
    spindle.kill(m)
