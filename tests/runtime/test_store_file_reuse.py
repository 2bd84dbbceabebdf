"""A freed large object's store file is reused for the next put only when no process maps it any more.

Task arguments count as let go when the task's answer says its worker unmapped them; whatever a process still
maps (an actor keeping its argument, the driver holding a zero-copy array) is never written again, and the kernel
is asked once more (``_store.unused``) before a recycled file is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import spindle
from spindle import _store, _store_spare
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


def _eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    delay, deadline = 0.01, time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _spare_recycled() -> bool:
    spare = context.core().shm._spare
    return spare is not None and spare.recycled


def _spare_inode() -> int:
    path = _spare_path()
    try:
        return os.stat(path).st_ino if path else 0
    except FileNotFoundError:
        return 0


def test_an_argument_the_task_let_go_of_becomes_the_spare_and_the_next_put_reads_back_its_own_value() -> None:
    ref = spindle.put(np.full(20 * MiB, 4, dtype=np.uint8))
    inode = os.stat(_store_path(ref)).st_ino
    assert spindle.get(first.remote(ref)) == 4  # the worker maps it, then unmaps it before answering
    del ref
    _eventually(lambda: _spare_inode() == inode, "the released argument's file is the spare")
    ref_b = spindle.put(np.full(20 * MiB, 6, dtype=np.uint8))
    assert os.stat(_store_path(ref_b)).st_ino == inode
    got = spindle.get(ref_b)
    assert got[0] == 6 and got[-1] == 6 and int(got.sum()) == 6 * 20 * MiB


@spindle.remote
def total(arr: Any) -> int:
    return int(arr.sum())


def test_large_inline_arguments_reuse_one_store_file_call_after_call_and_each_call_sees_its_own_value() -> None:
    inodes = set()
    for i in range(1, 6):
        arr = np.full(20 * MiB, i, dtype=np.uint8)
        assert spindle.get(total.remote(arr)) == i * 20 * MiB
        _eventually(_spare_recycled, "the argument's file came back as the spare")
        inodes.add(_spare_inode())
    assert len(inodes) <= 2  # the first call's file and (at most) one the spare thread allocated meanwhile


def test_a_task_that_keeps_its_argument_gets_its_file_kept_even_across_tasks_on_the_same_worker() -> None:
    k = Keeper.remote()
    arr = np.full(20 * MiB, 2, dtype=np.uint8)
    assert spindle.get(k.keep.remote(arr)) == 2  # an inline (promoted) argument the actor keeps
    for i in range(3):
        assert spindle.get(total.remote(np.full(20 * MiB, 10 + i, dtype=np.uint8))) == (10 + i) * 20 * MiB
    assert spindle.get(k.first_and_sum.remote()) == (2, 2 * 20 * MiB)


_MAP_AND_WAIT = """
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
os.close(fd)
print("mapped", flush=True)
sys.stdin.readline()
"""


@pytest.fixture(params=["kernel lease", "/proc maps"])
def probe(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "/proc maps":
        monkeypatch.setattr(_store, "_LEASE_WORKS", False)
    else:
        assert _store._lease_works(), "this kernel grants write leases and counts read-only mappings"
    return str(request.param)


def _map_elsewhere(path: str) -> subprocess.Popen[str]:
    reader = subprocess.Popen([sys.executable, "-c", _MAP_AND_WAIT, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "mapped"
    return reader


def test_a_file_another_process_maps_is_in_use_until_that_process_unmaps_it(tmp_path: Any, probe: str) -> None:
    path = os.path.join(_store.SHM_DIR, f"spindle-test-unused-{os.getpid()}")
    with open(path, "wb") as f:
        f.write(b"x" * 8192)
    try:
        assert _store.unused(path)
        reader = _map_elsewhere(path)
        try:
            assert not _store.unused(path)
        finally:
            reader.communicate("\n", timeout=30)
        assert _store.unused(path)
    finally:
        _store.delete_object(path)


def test_a_recycled_spare_that_a_reader_still_maps_is_deleted_not_written(probe: str) -> None:
    node = f"test{os.getpid()}"
    spare = _store_spare.SpareFile(node)

    def freed_object(fill: bytes) -> str:
        path = _store.object_path(node, b"\x01" * 16)
        with open(path, "wb") as f:
            f.write(fill * (1 << 20))
        return path

    try:
        path = freed_object(b"a")
        reader = _map_elsewhere(path)
        try:
            assert spare.give(path, 1 << 20)
            kept = spare.path
            assert spare.take(1 << 20) == ""  # never handed out for writing while mapped
            assert not os.path.exists(kept)
        finally:
            reader.communicate("\n", timeout=30)
        path = freed_object(b"b")
        reader = _map_elsewhere(path)
        assert spare.give(path, 1 << 20)
        reader.communicate("\n", timeout=30)
        got = spare.take(1 << 20)  # its reader is gone now: the file is handed out
        assert got and os.path.getsize(got) == 1 << 20
        _store.delete_object(got)
    finally:
        spare.close()


def test_a_handed_out_recycled_spare_waits_for_the_next_freed_file_instead_of_allocating_a_new_one() -> None:
    node = f"test{os.getpid()}g"
    spare = _store_spare.SpareFile(node)
    prefix = _store.store_prefix(node)

    def freed_object(n: int) -> str:
        path = _store.object_path(node, n.to_bytes(16, "big"))
        with open(path, "wb") as f:
            f.write(b"x" * (1 << 20))
        return path

    def spare_files() -> list[str]:
        d = os.path.dirname(prefix)
        return [n for n in os.listdir(d) if os.path.join(d, n).startswith(prefix + "spare-")]

    try:
        assert spare.give(freed_object(1), 1 << 20)
        taken = spare.take(1 << 20)
        assert taken
        _store.delete_object(taken)  # (written and published as an object, then freed elsewhere)
        assert spare.give(freed_object(2), 1 << 20)  # the next freed file comes back within the grace
        time.sleep(spare.REFILL_GRACE_S + 1.5)  # the background thread had its chance to allocate
        # no fresh file was made meanwhile (each give and each allocation takes the next spare name)
        assert spare.recycled and spare._n == 2 and spare_files() == [os.path.basename(spare.path)]
        _store.delete_object(spare.take(1 << 20))
        assert spare.take(1 << 20) == ""  # none left: a miss asks for a fresh file at once
        deadline = time.monotonic() + 30
        while not spare.path:
            assert time.monotonic() < deadline, "no fresh spare was allocated after a miss"
            time.sleep(0.05)
        assert not spare.recycled and os.path.getsize(spare.path) == 1 << 20
    finally:
        spare.close()
        for n in spare_files():
            _store.delete_object(os.path.join(os.path.dirname(prefix), n))
