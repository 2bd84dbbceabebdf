"""spindle.util.queue.Queue against a real local cluster: one async actor shared by everyone."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType
from typing import Any

import pytest

from spindle.util.queue import Empty, Full, Queue


def test_items_come_out_in_fifo_order(cluster: ModuleType) -> None:
    q = Queue()
    for i in range(10):
        q.put(i)
    assert q.qsize() == q.size() == len(q) == 10
    assert [q.get() for _ in range(10)] == list(range(10))
    assert q.empty()


def test_nonblocking_calls_raise_empty_and_full(cluster: ModuleType) -> None:
    q = Queue(maxsize=1)
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    q.put_nowait("x")
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait("y")
    with pytest.raises(Full):
        q.put("y", block=False)
    assert q.get_nowait() == "x"


def test_blocking_get_times_out_with_empty(cluster: ModuleType) -> None:
    q = Queue()
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 5


def test_blocking_put_times_out_with_full(cluster: ModuleType) -> None:
    q = Queue(maxsize=1)
    q.put(1)
    start = time.monotonic()
    with pytest.raises(Full):
        q.put(2, timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 5
    assert q.qsize() == 1


def test_a_timed_out_get_does_not_swallow_a_later_item(cluster: ModuleType) -> None:
    q = Queue()
    with pytest.raises(Empty):
        q.get(timeout=0.1)
    q.put("late")
    assert q.get(timeout=5) == "late"


def test_negative_timeouts_are_rejected(cluster: ModuleType) -> None:
    q = Queue()
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)


def test_batches_go_in_whole_or_not_at_all(cluster: ModuleType) -> None:
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    with pytest.raises(Empty):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2]
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)


def test_a_blocked_get_is_woken_by_a_put_from_a_task(cluster: ModuleType) -> None:
    spindle = cluster

    @spindle.remote
    def produce(q: Queue, items: list[int]) -> None:
        time.sleep(0.2)
        for item in items:
            q.put(item)

    q = Queue()
    done = produce.remote(q, [1, 2, 3])
    assert [q.get(timeout=30) for _ in range(3)] == [1, 2, 3]
    spindle.get(done)


def test_producer_and_consumer_tasks_share_one_bounded_queue(
    cluster: ModuleType,
) -> None:
    spindle = cluster

    @spindle.remote
    def produce(q: Queue, n: int) -> None:
        for i in range(n):
            q.put(i, timeout=30)

    @spindle.remote
    def consume(q: Queue, n: int) -> list[Any]:
        return [q.get(timeout=30) for _ in range(n)]

    q = Queue(maxsize=2)  # the producer must wait for the consumer many times
    out = consume.remote(q, 20)
    spindle.get(produce.remote(q, 20))
    assert spindle.get(out) == list(range(20))


def test_async_variants_work_in_a_coroutine(cluster: ModuleType) -> None:
    q = Queue(maxsize=1)

    async def main() -> list[Any]:
        await q.put_async("a")
        with pytest.raises(Full):
            await q.put_async("b", block=False)
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.1)
        got = [await q.get_async()]
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        return got

    assert asyncio.run(main()) == ["a"]


def test_an_async_actor_can_use_the_queue(cluster: ModuleType) -> None:
    spindle = cluster

    class Relay:
        async def relay(self, src: Queue, dst: Queue, n: int) -> int:
            for _ in range(n):
                await dst.put_async(await src.get_async(timeout=30))
            return n

    src, dst = Queue(), Queue()
    relay = spindle.remote(Relay).remote()
    moved = relay.relay.remote(src, dst, 3)
    for i in range(3):
        src.put(i)
    assert spindle.get(moved, timeout=60) == 3
    assert [dst.get(timeout=30) for _ in range(3)] == [0, 1, 2]


def test_actor_options_reach_the_backing_actor(cluster: ModuleType) -> None:
    spindle = cluster
    q = Queue(actor_options={"name": "util-test-queue"})
    q.put("named")
    assert spindle.get(spindle.get_actor("util-test-queue").qsize.remote()) == 1
    q.shutdown()


def test_shutdown_kills_the_backing_actor(cluster: ModuleType) -> None:
    spindle = cluster
    q = Queue()
    q.put(1)
    actor = q.actor
    q.shutdown()
    assert q.actor is None
    with pytest.raises(spindle.exceptions.RayActorError):
        spindle.get(actor.qsize.remote(), timeout=30)
