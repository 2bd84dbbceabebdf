"""ActorPool with real actors: results, ordering and timeouts over the public API."""

from __future__ import annotations

import os
import time
from types import ModuleType

import pytest

from spindle.util import ActorPool


def make_pool(spindle: ModuleType, n: int) -> ActorPool:
    class Worker:
        def double(self, value: float, delay: float = 0.0) -> float:
            time.sleep(delay)
            return 2 * value

    worker = spindle.remote(Worker)
    return ActorPool([worker.remote() for _ in range(n)])


def test_map_over_real_actors_keeps_order(cluster: ModuleType) -> None:
    pool = make_pool(cluster, 2)
    delays = {1: 0.4, 2: 0.0, 3: 0.2, 4: 0.0}
    out = pool.map(lambda a, v: a.double.remote(v, delays[v]), [1, 2, 3, 4])
    assert list(out) == [2, 4, 6, 8]


def test_map_unordered_over_real_actors_returns_every_result(
    cluster: ModuleType,
) -> None:
    pool = make_pool(cluster, 2)
    out = pool.map_unordered(lambda a, v: a.double.remote(v), range(10))
    assert sorted(out) == [2 * v for v in range(10)]


def test_get_next_unordered_returns_the_fast_result_first(cluster: ModuleType) -> None:
    pool = make_pool(cluster, 2)
    pool.submit(lambda a, v: a.double.remote(v, 2.0), 1)
    pool.submit(lambda a, v: a.double.remote(v, 0.0), 2)
    assert pool.get_next_unordered(timeout=30) == 4
    assert pool.get_next_unordered(timeout=30) == 2


def test_get_next_with_a_timeout_raises_timeout_error(cluster: ModuleType) -> None:
    pool = make_pool(cluster, 1)
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 1)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.05)
    assert pool.get_next(timeout=30) == 2


def test_an_actor_that_dies_is_dropped_from_the_pool(cluster: ModuleType) -> None:
    spindle = cluster

    class Fragile:
        def work(self, value: int) -> int:
            if value < 0:
                os._exit(1)
            return value

    fragile = spindle.remote(Fragile)
    survivor, victim = fragile.remote(), fragile.remote()
    pool = ActorPool([survivor, victim])
    pool.submit(lambda a, v: a.work.remote(v), -1)  # the last idle actor: victim
    with pytest.raises(spindle.exceptions.ActorDiedError):
        pool.get_next(timeout=60)
    assert pool.pop_idle() is survivor
    assert pool.pop_idle() is None
    pool.push(survivor)
    assert list(pool.map(lambda a, v: a.work.remote(v), [1, 2, 3])) == [1, 2, 3]
