"""Task failures that used to hang or mislead (real 2-CPU cluster): exceptions the driver can't unpickle,
a crash-looping task with unlimited retries, and a function that captured a huge object."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import RayTaskError, TaskCancelledError

pytestmark = pytest.mark.usefixtures("cluster")


class NeedsTwoArgs(Exception):
    """Pickles as NeedsTwoArgs(first) (BaseException keeps only args), so it can't be rebuilt anywhere."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)
        self.second = second


def test_an_exception_the_driver_cannot_unpickle_surfaces_as_ray_task_error_with_its_traceback(
        tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"

    @spindle.remote(max_retries=2, retry_exceptions=True)
    def fails(path: str) -> None:
        with open(path, "a") as f:
            f.write("x")
        raise NeedsTwoArgs("first", "second")

    ref = fails.remote(str(attempts))
    with pytest.raises(RayTaskError) as info:
        spindle.get(ref, timeout=60)
    text = str(info.value)
    assert "NeedsTwoArgs: first" in text and "could not be unpickled" in text
    assert attempts.read_text() == "xxx"  # the first run and both retries
    assert spindle.get(_double.remote(21), timeout=60) == 42  # the result thread is alive


def test_an_unpicklable_exception_without_retries_also_raises_ray_task_error() -> None:
    @spindle.remote
    def fails() -> None:
        raise NeedsTwoArgs("only", "once")

    with pytest.raises(RayTaskError, match="NeedsTwoArgs: only"):
        spindle.get(fails.remote(), timeout=60)


@spindle.remote
def _double(x: int) -> int:
    return 2 * x


def test_a_crash_looping_task_with_unlimited_retries_does_not_block_its_shape(tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"

    @spindle.remote(max_retries=-1)
    def crash(path: str) -> None:
        with open(path, "a") as f:
            f.write("x")
        os._exit(1)

    looping = crash.remote(str(crashes))
    deadline = time.time() + 60
    while (not crashes.exists() or len(crashes.read_text()) < 2) and time.time() < deadline:
        time.sleep(0.05)
    assert len(crashes.read_text()) >= 2  # it is crash-looping
    assert spindle.get([_double.remote(i) for i in range(20)], timeout=60) == [2 * i for i in range(20)]
    spindle.cancel(looping)
    with pytest.raises(TaskCancelledError):
        spindle.get(looping, timeout=60)
    count = len(crashes.read_text())
    time.sleep(1.0)
    assert len(crashes.read_text()) <= count + 1  # cancelled: no more retries (one may have been in flight)


def test_a_function_capturing_a_huge_object_is_refused_before_anything_is_sent() -> None:
    huge = b"x" * 120_000_000

    @spindle.remote
    def uses_huge() -> int:
        return len(huge)

    with pytest.raises(ValueError) as info:
        uses_huge.remote()
    message = str(info.value)
    assert "uses_huge" in message and "is too large" in message and "MiB" in message
    assert "spindle.put()" in message


def test_an_actor_class_capturing_a_huge_object_is_refused() -> None:
    huge = b"x" * 120_000_000

    @spindle.remote
    class Holder:
        def size(self) -> int:
            return len(huge)

    with pytest.raises(ValueError, match="actor class 'Holder' is too large"):
        Holder.remote()


def test_a_large_closure_warns_but_runs() -> None:
    big = b"y" * 12_000_000

    @spindle.remote
    def uses_big() -> int:
        return len(big)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = uses_big.remote()
    assert any("is very large" in str(w.message) for w in caught)
    assert spindle.get(ref, timeout=60) == 12_000_000


def test_tasks_queued_behind_a_task_that_kills_its_worker_are_placed_again_without_losing_a_retry() -> None:
    from spindle.exceptions import WorkerCrashedError

    @spindle.remote(max_retries=0)
    def work(i: int) -> int:
        if i < 0:
            os._exit(1)
        return i

    # measured as short, so the calls below are pipelined several per worker behind the crashing one
    assert spindle.get([work.remote(0) for _ in range(3000)], timeout=120) == [0] * 3000
    crasher = work.remote(-1)
    others = [work.remote(i) for i in range(1, 201)]
    with pytest.raises(WorkerCrashedError):
        spindle.get(crasher, timeout=60)
    assert spindle.get(others, timeout=60) == list(range(1, 201))
