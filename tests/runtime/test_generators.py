"""Generator tasks on a real embedded cluster: streaming and dynamic returns, errors, retries, cancel.

Where a test needs the generator to be somewhere in its run, the generator and the test talk
through files in the test's tmp dir (same machine), never through sleeps.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import TaskCancelledError
from tests.runtime._nodes import wait_until

pytestmark = pytest.mark.usefixtures("cluster")  # conftest: one embedded cluster for the module


def wait_file(path: str, timeout: float = 60.0) -> None:
    deadline, delay = time.monotonic() + timeout, 0.01
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


@spindle.remote
def count(n: int) -> Iterator[int]:
    for i in range(n):
        yield i * 10


def test_a_generator_function_streams_its_items_by_default() -> None:
    gen = count.remote(4)
    assert type(gen).__name__ == "ObjectRefGenerator"
    assert [spindle.get(ref) for ref in gen] == [0, 10, 20, 30]
    assert gen.is_finished()
    assert spindle.get(gen.completed()) is None
    with pytest.raises(StopIteration):
        next(gen)


def test_items_reach_the_caller_while_the_generator_still_runs(tmp_path: Path) -> None:
    go = str(tmp_path / "go")

    @spindle.remote(num_returns="streaming")
    def held() -> Iterator[str]:
        yield "first"
        wait_file(go)
        yield "second"

    gen = held.remote()
    assert spindle.get(next(gen), timeout=60) == "first"  # while the task waits for "go"
    assert not gen.next_ready()
    Path(go).touch()
    assert spindle.get(next(gen), timeout=60) == "second"
    with pytest.raises(StopIteration):
        next(gen)


def test_async_for_iterates_a_generator_in_a_coroutine() -> None:
    async def consume() -> list[int]:
        return [await ref async for ref in count.remote(3)]

    assert asyncio.run(consume()) == [0, 10, 20]


def test_an_error_mid_stream_surfaces_at_the_failing_item() -> None:
    @spindle.remote
    def breaks() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("the third item failed")

    gen = breaks.remote()
    assert spindle.get(next(gen)) == 1
    assert spindle.get(next(gen)) == 2
    with pytest.raises(ValueError, match="the third item failed"):
        spindle.get(next(gen))
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(ValueError):
        spindle.get(gen.completed())


def test_back_pressure_pauses_the_generator_until_the_caller_consumes(tmp_path: Path) -> None:
    progress = tmp_path / "produced"

    @spindle.remote(num_returns="streaming", _generator_backpressure_num_objects=2)
    def producer() -> Iterator[int]:
        for i in range(6):
            progress.write_text(str(i + 1))  # how many items exist once this one is yielded
            yield i

    gen = producer.remote()
    wait_until(lambda: progress.exists() and progress.read_text() == "2", 60, "two items to be produced")
    ready, _ = spindle.wait([gen.completed()], timeout=0.5)
    assert ready == [] and progress.read_text() == "2"  # paused with 2 unconsumed, not at 6
    assert spindle.get(next(gen)) == 0
    wait_until(lambda: progress.read_text() == "3", 60, "the third item once one was consumed")
    assert [spindle.get(r) for r in gen] == [1, 2, 3, 4, 5]


def test_a_retried_generator_runs_again_and_skips_the_items_already_delivered(tmp_path: Path) -> None:
    marker, delivered = str(tmp_path / "crashed-once"), str(tmp_path / "two-delivered")

    @spindle.remote(max_retries=1)
    def flaky() -> Iterator[tuple[str, int]]:
        attempt = "retry" if os.path.exists(marker) else "first"
        for i in range(4):
            if i == 2 and attempt == "first":
                wait_file(delivered)  # the caller has the first two items
                Path(marker).touch()
                os._exit(1)  # the worker dies
            yield attempt, i

    gen = flaky.remote()
    first = [spindle.get(next(gen), timeout=60) for _ in range(2)]
    Path(delivered).touch()
    assert first == [("first", 0), ("first", 1)]
    assert [spindle.get(r, timeout=60) for r in gen] == [("retry", 2), ("retry", 3)]


def test_a_generator_that_raises_is_retried_with_retry_exceptions(tmp_path: Path) -> None:
    marker = str(tmp_path / "raised-once")

    @spindle.remote(max_retries=1, retry_exceptions=True)
    def flaky() -> Iterator[int]:
        for i in range(3):
            if i == 1 and not os.path.exists(marker):
                Path(marker).touch()
                raise RuntimeError("transient")
            yield i

    assert [spindle.get(r, timeout=60) for r in flaky.remote()] == [0, 1, 2]


def test_cancelling_a_generator_stops_it(tmp_path: Path) -> None:
    progress = tmp_path / "produced"

    @spindle.remote
    def endless() -> Iterator[int]:
        i = 0
        while True:
            progress.write_text(str(i))
            yield i
            i += 1
            time.sleep(0.01)

    gen = endless.remote()
    assert spindle.get(next(gen), timeout=60) == 0
    spindle.cancel(gen)
    with pytest.raises(TaskCancelledError):
        for ref in gen:
            spindle.get(ref, timeout=60)
    with pytest.raises(TaskCancelledError):
        spindle.get(gen.completed(), timeout=60)
    stopped_at = progress.read_text()
    time.sleep(0.3)
    assert progress.read_text() == stopped_at  # the generator no longer runs


def test_dynamic_returns_give_one_ref_to_a_generator_of_refs() -> None:
    @spindle.remote(num_returns="dynamic")
    def split(n: int) -> Iterator[list[int]]:
        for i in range(n):
            yield [i] * 3

    gen = spindle.get(split.remote(3))
    assert len(gen) == 3
    assert [spindle.get(r) for r in gen] == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    # the refs can be passed on to other tasks like any others
    @spindle.remote
    def total(*parts: list[int]) -> int:
        return sum(sum(p) for p in parts)

    assert spindle.get(total.remote(*gen)) == 9


def test_a_non_generator_with_streaming_returns_fails_with_a_clear_error() -> None:
    @spindle.remote(num_returns="streaming")
    def plain() -> int:
        return 3

    with pytest.raises(TypeError, match="not a generator"):
        spindle.get(next(plain.remote()))


@spindle.remote
class Source:
    def __init__(self) -> None:
        self.base = 100

    def items(self, n: int) -> Iterator[int]:
        for i in range(n):
            yield self.base + i

    @spindle.method(num_returns="dynamic")
    def batch(self, n: int) -> Iterator[int]:
        yield from range(n)

    def fails(self) -> Iterator[int]:
        yield 1
        raise KeyError("missing")


@spindle.remote
class AsyncSource:
    async def items(self, n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 2

    async def ping(self) -> str:
        return "pong"


def test_actor_generator_methods_stream_sync_and_async() -> None:
    s = Source.remote()
    assert [spindle.get(r) for r in s.items.remote(3)] == [100, 101, 102]
    assert [spindle.get(r) for r in spindle.get(s.batch.remote(3))] == [0, 1, 2]
    assert [spindle.get(r) for r in spindle.get(s.items.options(num_returns="dynamic").remote(2))] == [100, 101]
    gen = s.fails.remote()
    assert spindle.get(next(gen)) == 1
    with pytest.raises(KeyError):
        spindle.get(next(gen))
    a = AsyncSource.remote()
    assert [spindle.get(r) for r in a.items.remote(4)] == [0, 2, 4, 6]
    assert spindle.get(a.ping.remote()) == "pong"


def test_an_object_ref_generator_cannot_be_passed_to_a_task() -> None:
    @spindle.remote
    def take(g: object) -> None:
        return None

    with pytest.raises(TypeError, match="cannot be passed"):
        take.remote(count.remote(1))
