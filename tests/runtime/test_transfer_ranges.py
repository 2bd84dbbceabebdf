"""How an object is cut into byte ranges pulled on parallel connections (spindle._agent.transfer.ranges)."""

from __future__ import annotations

from spindle._agent.transfer import MAX_STREAMS, RANGE_MIN, ranges

MiB = 1 << 20


def test_a_small_object_goes_on_one_connection() -> None:
    assert ranges(0) == [(0, 0)]
    assert ranges(1) == [(0, 1)]
    assert ranges(RANGE_MIN * 2 - 1) == [(0, RANGE_MIN * 2 - 1)]


def test_a_large_object_is_cut_into_contiguous_ranges_of_nearly_equal_size() -> None:
    size = 100 * MiB + 3
    got = ranges(size)
    assert len(got) == MAX_STREAMS
    assert got[0][0] == 0 and all(a[0] + a[1] == b[0] for a, b in zip(got, got[1:], strict=False))
    assert sum(n for _, n in got) == size
    assert max(n for _, n in got) - min(n for _, n in got) <= MAX_STREAMS


def test_no_range_is_smaller_than_the_minimum_unless_the_object_is() -> None:
    assert ranges(RANGE_MIN * 3 + 12_345) == [(0, 8_392_723), (8_392_723, 8_392_723), (16_785_446, 8_392_723)]
    assert all(n >= RANGE_MIN for _, n in ranges(RANGE_MIN * 3 + 12_345))
