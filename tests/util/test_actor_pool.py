"""ActorPool semantics (Ray's), checked on a simulated clock without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from spindle.util import ActorPool
from spindle.util import actor_pool as actor_pool_module
from tests.util._fake_cluster import FakeActor, FakeActorDiedError, FakeCluster, FakeRef


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster()
    monkeypatch.setattr(actor_pool_module, "spindle", fake)
    return fake


def actors(sim: FakeCluster, n: int) -> list[FakeActor]:
    return [FakeActor(sim, f"a{i}") for i in range(n)]


def durations(table: dict[int, float]) -> Any:
    """fn(actor, value) whose call on `value` takes table[value] seconds."""
    return lambda a, v: a.work(v, table[v])


def test_map_yields_results_in_submission_order_even_when_later_ones_finish_first(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 2))
    results = pool.map(durations({1: 5, 2: 1, 3: 1, 4: 1}), [1, 2, 3, 4])
    assert [v for _, v in results] == [1, 2, 3, 4]


def test_map_unordered_yields_results_as_they_finish(sim: FakeCluster) -> None:
    pool = ActorPool(actors(sim, 3))
    results = pool.map_unordered(durations({1: 5, 2: 3, 3: 1}), [1, 2, 3])
    assert [v for _, v in results] == [3, 2, 1]


def test_map_is_lazy_until_iterated(sim: FakeCluster) -> None:
    workers = actors(sim, 1)
    pool = ActorPool(workers)
    results = pool.map(durations({1: 1, 2: 1}), [1, 2])
    assert workers[0].calls == [1]  # the second value waits for a free actor
    assert next(results) == ("a0", 1)
    assert workers[0].calls == [1, 2]


def test_map_drops_results_pending_from_earlier_submissions(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 2))
    pool.submit(durations({9: 100}), 9)
    assert [v for _, v in pool.map(durations({1: 1}), [1])] == [1]


def test_submit_queues_values_until_a_result_is_collected(sim: FakeCluster) -> None:
    workers = actors(sim, 1)
    pool = ActorPool(workers)
    pool.submit(durations({1: 1}), 1)
    pool.submit(durations({2: 1}), 2)
    assert not pool.has_free()
    # the first call has long finished, but its actor stays busy until the result is collected
    sim.now = 10
    assert workers[0].calls == [1]
    assert pool.get_next() == ("a0", 1)
    assert workers[0].calls == [1, 2]
    assert pool.get_next() == ("a0", 2)
    assert not pool.has_next()
    assert pool.has_free()


def test_get_next_on_an_empty_pool_raises_stop_iteration(sim: FakeCluster) -> None:
    with pytest.raises(StopIteration):
        ActorPool(actors(sim, 1)).get_next()
    with pytest.raises(StopIteration):
        ActorPool(actors(sim, 1)).get_next_unordered()


def test_get_next_timeout_raises_and_keeps_the_task(sim: FakeCluster) -> None:
    pool = ActorPool(actors(sim, 1))
    pool.submit(durations({1: 5}), 1)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=1)
    assert pool.has_next()
    assert not pool.has_free()
    assert pool.get_next() == ("a0", 1)


def test_get_next_ignore_if_timedout_drops_the_task_and_frees_its_actor(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 1))
    pool.submit(durations({1: 5}), 1)
    pool.submit(durations({2: 1}), 2)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=1, ignore_if_timedout=True)
    # the queued value went to the freed actor, and is now the next result
    assert pool.get_next() == ("a0", 2)
    assert not pool.has_next()


def test_get_next_unordered_timeout_raises_and_keeps_the_task(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 1))
    pool.submit(durations({1: 5}), 1)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=1)
    assert pool.get_next_unordered() == ("a0", 1)


def test_get_next_unordered_ignore_if_timedout_drops_a_task(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 1))
    pool.submit(durations({1: 5}), 1)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next_unordered(timeout=1, ignore_if_timedout=True)
    assert not pool.has_next()
    assert pool.has_free()


def test_ordered_get_after_unordered_ones_caught_up_is_rejected(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 2))
    pool.submit(durations({1: 5}), 1)
    pool.submit(durations({2: 1}), 2)
    # idle actors are taken from the end of the list, so value 2 went to a0
    assert pool.get_next_unordered() == ("a0", 2)
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()


def test_ordered_get_continues_after_an_unordered_one_of_an_earlier_task(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 2))
    pool.submit(durations({1: 1}), 1)
    pool.submit(durations({2: 5}), 2)
    assert pool.get_next_unordered()[1] == 1
    assert pool.get_next()[1] == 2


def test_pop_idle_and_push(sim: FakeCluster) -> None:
    a0, a1 = actors(sim, 2)
    pool = ActorPool([a0])
    pool.submit(durations({1: 1}), 1)
    assert pool.pop_idle() is None
    assert pool.get_next() == ("a0", 1)
    assert pool.pop_idle() is a0
    assert not pool.has_free()
    pool.push(a1)
    assert pool.has_free()
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a1)


def test_push_rejects_a_busy_actor_and_gives_a_new_one_queued_work(
    sim: FakeCluster,
) -> None:
    a0, a1 = actors(sim, 2)
    pool = ActorPool([a0])
    pool.submit(durations({1: 5}), 1)
    pool.submit(durations({2: 1}), 2)
    with pytest.raises(ValueError):
        pool.push(a0)
    pool.push(a1)
    assert a1.calls == [2]
    assert pool.get_next_unordered() == ("a1", 2)


def test_has_free_is_false_while_values_wait_for_an_actor(sim: FakeCluster) -> None:
    pool = ActorPool(actors(sim, 1))
    assert pool.has_free()
    pool.submit(durations({1: 1}), 1)
    assert not pool.has_free()


def test_a_failed_call_raises_and_returns_its_actor_to_the_pool(
    sim: FakeCluster,
) -> None:
    pool = ActorPool(actors(sim, 1))
    pool.submit(lambda a, v: a.work(v, error=ZeroDivisionError("boom")), 1)
    with pytest.raises(ZeroDivisionError):
        pool.get_next()
    assert pool.has_free()


def test_an_actor_that_died_is_not_returned_to_the_pool(sim: FakeCluster) -> None:
    a0, a1 = actors(sim, 2)
    pool = ActorPool([a0, a1])
    pool.submit(lambda a, v: a.work(v, error=FakeActorDiedError()), 1)  # runs on a1
    with pytest.raises(FakeActorDiedError):
        pool.get_next()
    assert pool.pop_idle() is a0
    assert pool.pop_idle() is None


def test_multi_return_futures_are_supported(sim: FakeCluster) -> None:
    pool = ActorPool(actors(sim, 2))
    assert list(pool.map(lambda a, v: a.pair(v), [1, 2, 3])) == [
        [1, -1],
        [2, -2],
        [3, -3],
    ]
    assert sorted(pool.map_unordered(lambda a, v: a.pair(v), [1, 2])) == [
        [1, -1],
        [2, -2],
    ]
    pool.submit(lambda a, v: a.pair(v), 4)
    assert pool.get_next(timeout=5) == [4, -4]


def test_multi_return_futures_are_yielded_unordered_as_soon_as_each_is_whole(sim: FakeCluster) -> None:
    pool = ActorPool(actors(sim, 2))

    def pair(actor: FakeActor, value: int) -> list[FakeRef]:
        return [FakeRef(sim.now + value, value=value), FakeRef(sim.now + value, value=-value)]

    pool.submit(pair, 5)
    pool.submit(pair, 1)
    assert pool.get_next_unordered() == [1, -1]
    assert sim.now == 1  # it did not wait for the slower future
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=1)
    assert pool.get_next_unordered() == [5, -5]
