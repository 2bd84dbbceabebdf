"""Frames: small values inline, large buffers out of band and zero-copy from the shared-memory store."""

from __future__ import annotations

import os

import numpy as np

from spindle import _store
from spindle._serialization import deserialize, serialize


def test_small_values_round_trip_inline() -> None:
    value = {"a": [1, 2, 3], "b": "text", "c": (None, 1.5)}
    ser = serialize(value)
    assert not ser.buffers
    assert deserialize(ser.to_bytes()) == value


def test_large_numpy_buffers_go_out_of_band_and_round_trip() -> None:
    arr = np.arange(1_000_000, dtype=np.float64)
    ser = serialize({"x": arr})
    assert len(ser.buffers) == 1
    out = deserialize(ser.to_bytes())["x"]
    assert np.array_equal(out, arr)


def test_store_objects_map_zero_copy_and_read_only(tmp_path: object) -> None:
    arr = np.random.default_rng(0).random((500, 500))
    path = _store.object_path("testnode" + os.urandom(4).hex(), os.urandom(16))
    try:
        _store.write_object(path, serialize(arr))
        view = _store.map_object(path)
        out = deserialize(view)
        assert np.array_equal(out, arr)
        assert not out.flags.writeable
        assert not out.flags.owndata  # a view into the mapping, not a copy
    finally:
        _store.delete_object(path)


def test_out_of_band_buffers_are_64_byte_aligned_in_the_frame() -> None:
    arr = np.arange(100_000, dtype=np.float64)
    frame = serialize(arr).to_bytes()
    buf = bytearray(len(frame) + 64)
    base = np.frombuffer(buf, dtype=np.uint8).ctypes.data
    start = (-base) % 64  # lay the frame at an aligned address, as a store mapping is
    buf[start : start + len(frame)] = frame
    out = deserialize(memoryview(buf)[start : start + len(frame)])
    assert out.ctypes.data % 64 == 0
    assert np.array_equal(out, arr)


def test_hand_encoded_chunks_are_exactly_the_proto_chunk_message() -> None:
    from spindle._proto import pb
    from spindle._rpc.transfer import decode_chunk, encode_chunk

    for data in (b"", b"x", os.urandom(300), os.urandom(70_000)):
        wire = encode_chunk(data)
        assert pb.Chunk.FromString(wire).data == data
        assert bytes(decode_chunk(wire)) == data
        assert bytes(decode_chunk(pb.Chunk(data=data, total=12345).SerializeToString())) == data


def test_a_serialized_value_is_freed_with_its_frame_without_waiting_for_the_cyclic_collector() -> None:
    import gc
    import weakref

    gc.disable()  # numpy arrays are not tracked by the collector: only reference counting may free them
    try:
        arr = np.ones(8 << 20, dtype=np.uint8)
        alive = weakref.ref(arr)
        ser = serialize({"x": arr})
        assert len(ser.buffers) == 1
        del arr
        assert alive() is not None  # the frame's out-of-band buffer is the array's memory, until it is written
        del ser
        assert alive() is None  # (the pickler used to keep it: a cycle through its own buffer callback)
    finally:
        gc.enable()
