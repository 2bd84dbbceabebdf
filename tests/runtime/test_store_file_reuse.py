"""A freed large object's store file is reused for the next put only when no process ever read it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import spindle
from spindle._core import context

pytestmark = pytest.mark.usefixtures("cluster")

MiB = 1 << 20


@spindle.remote
class Keeper:
    def __init__(self) -> None:
        self.kept: Any = None

    def keep(self, arr: Any) -> int:
        self.kept = arr  # holds the mapping of the argument's store file after the call
        return int(arr[0])

    def first_and_sum(self) -> tuple[int, int]:
        return int(self.kept[0]), int(self.kept.sum())


@spindle.remote
def first(arr: Any) -> int:
    return int(arr[0])


def _spare_path() -> str:
    spare = context.core().shm._spare
    return spare.path if spare is not None else ""


def test_a_put_freed_unread_becomes_the_spare_and_the_next_put_reads_back_its_own_value() -> None:
    a = np.full(20 * MiB, 1, dtype=np.uint8)
    spindle.put(a)  # the first large put creates the spare mechanism
    ref = spindle.put(a)
    path = _store_path(ref)
    inode = os.stat(path).st_ino
    del ref  # freed without any process having read it
    assert _spare_path() and os.stat(_spare_path()).st_ino == inode
    b = np.full(20 * MiB, 7, dtype=np.uint8)
    ref_b = spindle.put(b)
    assert os.stat(_store_path(ref_b)).st_ino == inode
    got = spindle.get(ref_b)
    assert got[0] == 7 and got[-1] == 7 and int(got.sum()) == 7 * 20 * MiB


def test_an_object_read_by_the_driver_is_never_reused_under_its_array() -> None:
    ref = spindle.put(np.full(20 * MiB, 3, dtype=np.uint8))
    held = spindle.get(ref)  # zero-copy: this array is the store file's pages
    inode = os.stat(_store_path(ref)).st_ino
    del ref
    spare = _spare_path()
    assert not spare or os.stat(spare).st_ino != inode
    for _ in range(3):
        spindle.put(np.full(20 * MiB, 9, dtype=np.uint8))
    assert held[0] == 3 and int(held.sum()) == 3 * 20 * MiB


def test_an_argument_an_actor_still_holds_is_never_reused_under_it() -> None:
    k = Keeper.remote()
    ref = spindle.put(np.full(20 * MiB, 5, dtype=np.uint8))
    assert spindle.get(k.keep.remote(ref)) == 5
    assert spindle.get(first.remote(ref)) == 5
    del ref
    for _ in range(3):
        spindle.put(np.full(20 * MiB, 8, dtype=np.uint8))
    assert spindle.get(k.first_and_sum.remote()) == (5, 5 * 20 * MiB)


def _store_path(ref: Any) -> str:
    from spindle import _store

    return _store.object_path(context.core().node_id, ref.binary())
