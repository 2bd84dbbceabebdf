"""wait() over ObjectRefGenerators, as Ray's ray.wait takes them: a generator is ready when next() would
not block (its next item has arrived, or its stream has ended), on a real embedded cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
def gated(folder: str, n: int) -> Iterator[int]:
    """Yields item i once the file <folder>/go<i> exists."""
    for i in range(n):
        while not os.path.exists(os.path.join(folder, f"go{i}")):
            time.sleep(0.01)
        yield i


def test_a_generator_is_ready_only_once_its_next_item_has_arrived(tmp_path: Path) -> None:
    gen = gated.remote(str(tmp_path), 2)
    ready, not_ready = spindle.wait([gen], timeout=0)
    assert ready == [] and not_ready == [gen]
    (tmp_path / "go0").touch()
    ready, not_ready = spindle.wait([gen], timeout=60)
    assert ready == [gen] and not_ready == []
    assert spindle.get(next(gen)) == 0
    ready, _ = spindle.wait([gen], timeout=0)  # item 1 not yielded yet
    assert ready == []
    (tmp_path / "go1").touch()
    assert spindle.get(next(gen)) == 1


def test_the_documented_wait_then_next_loop_reads_every_item_and_ends(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"go{i}").touch()
    gen = gated.remote(str(tmp_path), 3)
    items = []
    while True:
        ready, _ = spindle.wait([gen], timeout=60)
        assert ready == [gen]  # an ended stream is ready too: next() raises StopIteration at once
        try:
            ref = next(gen)
        except StopIteration:
            break
        items.append(spindle.get(ref))
    assert items == [0, 1, 2]


def test_wait_mixes_refs_and_generators_and_keeps_their_order(tmp_path: Path) -> None:
    @spindle.remote
    def value(x: int) -> int:
        return x

    gen = gated.remote(str(tmp_path), 1)
    ref = value.remote(7)
    ready, not_ready = spindle.wait([gen, ref], num_returns=1, timeout=60)
    assert ready == [ref] and not_ready == [gen]
    (tmp_path / "go0").touch()
    ready, not_ready = spindle.wait([gen, ref], num_returns=2, timeout=60)
    assert ready == [gen, ref] and not_ready == []
    with pytest.raises(ValueError, match="num_returns"):
        spindle.wait([gen, ref], num_returns=3)


def test_wait_refuses_a_list_holding_something_that_is_no_ref_with_or_without_a_generator(tmp_path: Path) -> None:
    ref = spindle.put(1)
    with pytest.raises(TypeError, match="got a list containing int"):
        spindle.wait([ref, 3])  # type: ignore[list-item]
    gen = gated.remote(str(tmp_path), 1)
    with pytest.raises(TypeError, match="got a list containing str"):
        spindle.wait([gen, ref, "x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unique"):
        spindle.wait([gen, ref, ref])
    (tmp_path / "go0").touch()
    assert spindle.get(next(gen)) == 0
