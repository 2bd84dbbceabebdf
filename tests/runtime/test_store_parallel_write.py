"""A large frame is written into its store file by several threads at once; every byte lands where it belongs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from spindle import _store
from spindle._serialization import deserialize, serialize


@pytest.mark.parametrize("n", [1, 4097, _store.PARALLEL_MIN - 3, _store.PARALLEL_MIN + 12_345, 33 * 2**20 + 7])
def test_frames_of_odd_sizes_read_back_exactly_after_a_parallel_write(n: int) -> None:
    rng = np.random.default_rng(n)
    arr = rng.integers(0, 256, n, dtype=np.uint8)
    ser = serialize((arr, b"y" * 5000, arr[: n // 3]))
    path = _store.object_path(f"test{os.getpid()}", n.to_bytes(16, "little"))
    try:
        assert _store.write_object(path, ser) == ser.size == os.path.getsize(path)
        a, b, c = deserialize(_store.map_object(path))
        assert np.array_equal(a, arr) and b == b"y" * 5000 and np.array_equal(c, arr[: n // 3])
    finally:
        _store.delete_object(path)


@pytest.mark.parametrize("step", [7, 1000, 4096])
def test_a_frame_cut_into_ranges_is_the_same_bytes_at_the_same_offsets(step: int) -> None:
    ser = serialize((np.arange(30_001, dtype=np.uint16), b"z" * 4099))
    ranges = _store._split(ser.pieces(), step)
    assert [off for off, _ in ranges] == [i * step for i in range(len(ranges))]
    assert all(sum(len(p) for p in ps) == step for _, ps in ranges[:-1])
    assert b"".join(bytes(p) for _, ps in ranges for p in ps) == ser.to_bytes()
