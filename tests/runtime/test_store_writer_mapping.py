"""A writer keeps its spare file mapped across puts, and that never lets it write under a reader.

The spare's read-write mapping stays with a published object's file until the file comes back as the spare;
the kernel is asked (a write lease on the writer's own descriptor) whether any other open file or mapping
still holds it before it is written again. These tests use real processes as readers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import spindle
from spindle import _store, _store_spare
from spindle._core import context
from spindle._serialization import deserialize, serialize

MiB = 1 << 20
NODE = f"test{os.getpid()}m"

_MAP_AND_WAIT = """
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
os.close(fd)
print("mapped", flush=True)
sys.stdin.readline()
print(mm[-1], flush=True)  # the last byte as the reader sees it when let go
"""


def _map_elsewhere(path: str) -> subprocess.Popen[str]:
    reader = subprocess.Popen([sys.executable, "-c", _MAP_AND_WAIT, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "mapped"
    return reader


def _eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    delay, deadline = 0.01, time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@pytest.fixture
def spare() -> Iterator[_store_spare.SpareFile]:
    assert _store_spare.mapping_ok(), "this kernel grants write leases and counts read-only mappings"
    s = _store_spare.SpareFile(NODE)
    yield s
    s.close()
    _store.delete_all(NODE)


def _object(n: int) -> str:
    return _store.object_path(NODE, bytes([n]) * 16)


def _frame(fill: int) -> Any:
    return serialize(np.full(MiB, fill, dtype=np.uint8))


def _read(path: str) -> np.ndarray:
    return np.array(deserialize(_store.map_object(path)))  # a private copy: the mapping goes with the view


def _mapped_spare(spare: _store_spare.SpareFile, fill: int) -> None:
    """Give the spare a freed file of the frame's size and wait until the background thread mapped it."""
    ser = _frame(fill)
    path = _object(200)
    _store.write_object(path, ser)
    assert spare.give(path, ser.size)
    _eventually(lambda: spare.mapped is not None, "the given file is mapped")


def test_the_writer_s_own_mapping_does_not_count_as_in_use_but_any_other_open_file_does(tmp_path: Any) -> None:
    path = os.path.join(_store.SHM_DIR, f"spindle-test-alone-{os.getpid()}")
    with open(path, "wb") as f:
        f.write(b"x" * (4 * MiB))
    m = _store_spare.Mapped(path, 4 * MiB)
    try:
        assert m.alone()
        reader = _map_elsewhere(path)
        try:
            assert not m.alone()
        finally:
            reader.communicate("\n", timeout=30)
        assert m.alone()
        fd = os.open(path, os.O_RDONLY)  # a reader in this very process
        try:
            assert not m.alone()
        finally:
            os.close(fd)
        assert m.alone()
    finally:
        m.close()
        _store.delete_object(path)


def test_an_object_written_through_the_mapping_reads_back_and_its_file_returns_still_mapped(spare: Any) -> None:
    _mapped_spare(spare, 0)
    first = spare.mapped
    path = _object(1)
    ser = _frame(7)
    assert spare.write(path, ser, keep=True) == ser.size
    got = _read(path)
    assert got[0] == 7 and got[-1] == 7 and int(got.sum()) == 7 * MiB
    inode = os.stat(path).st_ino
    assert spare.give(path, ser.size)
    assert spare.mapped is first and os.stat(spare.path).st_ino == inode  # no new file, no new mapping
    path2 = _object(2)
    assert spare.write(path2, _frame(9), keep=True) == ser.size
    assert os.stat(path2).st_ino == inode
    got = _read(path2)
    assert got[0] == 9 and got[-1] == 9 and int(got.sum()) == 9 * MiB


def test_a_freed_file_another_process_still_maps_is_never_written_through_the_kept_mapping(spare: Any) -> None:
    _mapped_spare(spare, 0)
    path = _object(3)
    assert spare.write(path, _frame(5), keep=True)
    reader = _map_elsewhere(path)  # e.g. a worker still holding the object's array
    try:
        assert spare.give(path, _frame(5).size)
        assert spare.mapped is not None  # the kept mapping came back with the file ...
        path2 = _object(4)
        assert spare.write(path2, _frame(6), keep=True) == 0  # ... but the file is not written while mapped there
        assert not os.path.exists(path2)
    finally:
        out, _ = reader.communicate("\n", timeout=30)
    assert out.split()[-1] == "5"  # the reader saw its own value to the end


def test_an_object_not_kept_or_forgotten_drops_its_mapping_and_an_idle_spare_goes_away(
        spare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _mapped_spare(spare, 0)
    a = _object(5)
    assert spare.write(a, _frame(1), keep=False)
    assert a not in spare.kept
    _mapped_spare(spare, 0)
    b = _object(6)
    assert spare.write(b, _frame(2), keep=True)
    assert b in spare.kept
    spare.forget(b)  # e.g. read by this process, or handed to a task that kept it
    assert b not in spare.kept
    assert spare.give(b, _frame(2).size)  # comes back (if ever) without a mapping
    _eventually(lambda: spare.mapped is not None, "the background thread maps it again before the next put")
    monkeypatch.setattr(_store_spare, "SPARE_IDLE_S", 0.2)
    _eventually(lambda: not spare.path and not spare.kept and not spare.doomed, "the idle spare is dropped")


@spindle.remote
def total(arr: Any) -> int:
    return int(arr.sum())


@pytest.mark.usefixtures("cluster")
def test_a_put_and_task_loop_reuses_one_file_and_mapping_and_every_task_sees_its_own_value() -> None:
    files, maps = set(), set()
    for i in range(1, 7):
        ref = spindle.put(np.full(20 * MiB, i, dtype=np.uint8))
        path = _store.object_path(context.core().node_id, ref.binary())
        files.add(os.stat(path).st_ino)
        assert spindle.get(total.remote(ref)) == i * 20 * MiB  # the worker maps it, then lets go
        del ref
        spare = context.core().shm._spare
        assert spare is not None
        _eventually(lambda: spare.recycled and spare.mapped is not None, "the file came back mapped")  # noqa: B023
        maps.add(id(spare.mapped))
    assert len(files) <= 2 and len(maps) <= 2  # the first put's own file (and at most one fresh spare)


@spindle.remote
class Summer:
    def total(self, arr: Any) -> int:
        return int(arr.sum())


@pytest.mark.usefixtures("cluster")
@pytest.mark.parametrize("callee", ["task", "actor method"])
def test_a_large_inline_argument_s_file_is_the_spare_again_as_soon_as_the_call_s_result_is_seen(callee: str) -> None:
    call = total.remote if callee == "task" else Summer.remote().total.remote
    assert spindle.get(call(np.full(20 * MiB, 1, dtype=np.uint8))) == 20 * MiB  # (the first file, a fresh one)
    spare = context.core().shm._spare
    assert spare is not None
    _eventually(lambda: spare.recycled, "the first argument's file came back")
    inodes = set()
    for i in range(2, 6):
        assert spindle.get(call(np.full(20 * MiB, i, dtype=np.uint8))) == i * 20 * MiB
        # no waiting: the next call's put must find the file (the caller let go of the argument before the result)
        assert spare.recycled and spare.mapped is not None
        inodes.add(os.stat(spare.path).st_ino)
    assert len(inodes) == 1


def test_a_fresh_spare_is_written_without_a_mapping_and_mapped_only_once_its_file_comes_back(spare: Any) -> None:
    ser = _frame(3)
    assert spare.write(_object(5), ser, keep=True) == 0  # no spare yet: the caller writes a new file ...
    _eventually(lambda: bool(spare.path), "a fresh spare of that size is allocated")  # ... and asks for one
    assert spare.mapped is None  # an object that never comes back would pay for page tables it never reuses
    spare._doom("", None)  # another round of the background thread: it leaves the fresh spare unmapped too
    _eventually(lambda: not spare.doomed, "the background thread ran a round")
    assert spare.mapped is None and not spare.mapping
    path = _object(6)
    assert spare.write(path, ser, keep=True) == ser.size
    assert path not in spare.kept and int(_read(path).sum()) == 3 * MiB
    assert spare.give(path, ser.size)  # it came back: now mapping it pays off for the next puts
    _eventually(lambda: spare.mapped is not None, "the returned file is mapped")
