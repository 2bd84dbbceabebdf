"""The agent's pool of freed large store files (``_agent/file_pool``): a freed file is written again only when no
process holds it, each object reads back its own bytes, and the pool stays within its bounds.

The policy (which file, how many to drop) is pure and tested on its own; the pool's file moves are tested on real
tmpfs files with a real second process mapping one; the whole path through a cluster's agent checks that a task
returning a large value in a loop writes into the previous value's file (its inode), and that a value the driver
still holds is never written under it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import spindle
from spindle import _store
from spindle._agent import file_pool
from spindle._agent.file_pool import FilePool, evictions, pick
from spindle._core import context

MiB = 1 << 20


# ---------------------------------------------------------------- policy
@pytest.mark.parametrize(("sizes", "need", "want"), [
    ([], 100, None),
    ([100], 100, 0),
    ([300, 120, 100], 110, 1),  # the smallest that fits
    ([40, 60], 100, 1),  # none fits: the biggest of at least half (extended by the writer)
    ([40, 49], 100, None),  # less than half: not worth it
])
def test_pick_takes_the_smallest_file_that_fits_else_the_biggest_of_at_least_half(
        sizes: list[int], need: int, want: int | None) -> None:
    assert pick(sizes, need) == want


@pytest.mark.parametrize(("sizes", "room", "max_files", "want"), [
    ([10, 10], 100, 4, 0),
    ([10, 10, 10], 25, 4, 1),  # oldest first until the bytes fit
    ([10] * 6, 1000, 4, 2),  # at most max_files
    ([10, 10], 0, 4, 2),  # no room: all go
    ([10, 10], -5, 4, 2),
])
def test_evictions_drop_the_oldest_until_within_count_and_room(sizes: list[int], room: int, max_files: int,
                                                                want: int) -> None:
    assert evictions(sizes, room, max_files) == want


# ---------------------------------------------------------------- the pool on real files
@pytest.fixture
def pool() -> Iterator[FilePool]:
    assert _store._lease_works(), "this kernel grants write leases and counts read-only mappings"
    p = FilePool(f"pooltest{os.getpid()}")
    try:
        yield p
    finally:
        p.fit(0)


def _file(pool: FilePool, name: str, size: int, fill: bytes = b"x") -> str:
    path = pool.prefix.replace("pool-", name)
    with open(path, "wb") as f:
        f.write(fill * size)
    return path


def test_a_freed_file_nobody_holds_is_kept_and_handed_out_under_the_writer_s_temporary_name(pool: FilePool) -> None:
    path = _file(pool, "obj", 16 * MiB)
    inode = os.stat(path).st_ino
    assert pool.offer(path, 16 * MiB, room=1 << 30)
    assert not os.path.exists(path)  # no reader can open it by its object's name any more
    assert pool.bytes == 16 * MiB
    tmp = path + ".123.tmp"
    assert pool.take(16 * MiB, tmp) == tmp
    assert os.stat(tmp).st_ino == inode and pool.bytes == 0
    assert pool.take(16 * MiB, tmp + "2") == ""  # handed out once
    _store.delete_object(tmp)


def test_a_freed_file_another_process_maps_is_deleted_and_the_reader_keeps_its_bytes(pool: FilePool) -> None:
    path = _file(pool, "obj", 16 * MiB, b"r")
    reader = subprocess.Popen([sys.executable, "-c", _MAP_AND_SUM, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "mapped"
    try:
        assert pool.offer(path, 16 * MiB, room=1 << 30)  # handled: deleted, not kept
        assert pool.bytes == 0 and pool.files == []
        assert not [n for n in os.listdir(_store.SHM_DIR) if n.startswith(os.path.basename(pool.prefix))]
    finally:
        out, _ = reader.communicate("\n", timeout=30)
    assert int(out) == 16 * MiB


def test_small_files_and_files_beyond_the_store_s_free_room_are_not_pooled(pool: FilePool) -> None:
    small = _file(pool, "small", 1 * MiB)
    assert not pool.offer(small, 1 * MiB, room=1 << 30) and os.path.exists(small)
    big = _file(pool, "big", 16 * MiB)
    assert not pool.offer(big, 16 * MiB, room=8 * MiB) and os.path.exists(big)
    for p in (small, big):
        _store.delete_object(p)


def test_the_pool_keeps_at_most_max_files_and_yields_its_bytes_to_the_store(pool: FilePool) -> None:
    paths = [_file(pool, f"o{i}-", 16 * MiB) for i in range(file_pool.MAX_FILES + 2)]
    for p in paths:
        assert pool.offer(p, 16 * MiB, room=1 << 30)
    assert len(pool.files) == file_pool.MAX_FILES
    kept = [f.path for f in pool.files]
    pool.fit(20 * MiB)  # the store needs the rest: only the newest file stays
    assert [f.path for f in pool.files] == kept[-1:]
    assert all(not os.path.exists(p) for p in kept[:-1])


def test_files_unused_for_the_idle_time_are_deleted(pool: FilePool) -> None:
    path = _file(pool, "obj", 16 * MiB)
    assert pool.offer(path, 16 * MiB, room=1 << 30)
    kept = pool.files[0].path
    pool.expire(pool.files[0].since + file_pool.IDLE_S / 2)
    assert os.path.exists(kept)
    pool.expire(pool.files[0].since + file_pool.IDLE_S)
    assert pool.files == [] and not os.path.exists(kept)


_MAP_AND_SUM = """
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
os.close(fd)
print("mapped", flush=True)
sys.stdin.readline()
print(mm[:].count(b"r"), flush=True)
"""


# ---------------------------------------------------------------- through a cluster's agent
@spindle.remote
def filled(nbytes: int, value: int) -> Any:
    return np.full(nbytes, value, dtype=np.uint8)


def _path(ref: Any) -> str:
    return _store.object_path(context.core().node_id, ref.binary())


@pytest.mark.usefixtures("cluster")
def test_a_task_returning_a_large_value_in_a_loop_writes_into_the_previous_value_s_file() -> None:
    n = 20 * MiB
    ref = filled.remote(n, 1)
    spindle.get(ref)
    inodes = {os.stat(_path(ref)).st_ino}
    del ref
    for i in range(2, 6):
        ref = filled.remote(n, i)
        got = spindle.get(ref)
        assert got[0] == i and got[-1] == i and int(got.sum()) == i * n  # its own bytes, not the last value's
        inodes.add(os.stat(_path(ref)).st_ino)
        del got, ref
    # the file comes back between calls (at most one more, if a free reached the agent after the next reserve)
    assert len(inodes) <= 2


@pytest.mark.usefixtures("cluster")
def test_a_returned_value_the_driver_still_holds_is_never_written_under_it() -> None:
    n = 20 * MiB
    ref = filled.remote(n, 3)
    held = spindle.get(ref)  # zero-copy: these are the store file's pages
    del ref  # freed at the agent while the array maps it
    for i in range(4):
        assert int(spindle.get(filled.remote(n, 50 + i)).sum()) == (50 + i) * n
    assert held[0] == 3 and int(held.sum()) == 3 * n
