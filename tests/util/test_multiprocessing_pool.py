"""spindle.util.multiprocessing.Pool behaves like multiprocessing.Pool, with actors on a real cluster."""

from __future__ import annotations

import os
import time
from types import ModuleType

import pytest

from spindle.util.multiprocessing import Pool, TimeoutError

pytestmark = pytest.mark.usefixtures("cluster")


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def pid(_: object) -> int:
    return os.getpid()


_SEEN: list[str] = []


def remember(tag: str) -> None:
    os.environ["SPINDLE_POOL_INIT"] = tag


def read_tag(_: object) -> str:
    return os.environ.get("SPINDLE_POOL_INIT", "")


def test_map_starmap_and_apply_give_multiprocessing_results() -> None:
    with Pool(2) as pool:
        assert pool.map(square, range(20)) == [x * x for x in range(20)]
        assert pool.map(square, range(20), chunksize=7) == [x * x for x in range(20)]
        assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.apply(sorted, ([3, 1, 2],), {"reverse": True}) == [3, 2, 1]
        assert pool.map(square, []) == []


def test_work_is_spread_over_every_process() -> None:
    with Pool(2) as pool:
        assert len(set(pool.map(pid, range(16), chunksize=1))) == 2


def test_async_results_have_get_wait_ready_successful_and_callbacks() -> None:
    got: list[object] = []
    errors: list[BaseException] = []
    with Pool(2) as pool:
        result = pool.map_async(square, range(5), callback=got.append)
        assert result.get(timeout=60) == [0, 1, 4, 9, 16]
        assert result.ready() and result.successful()
        failing = pool.apply_async(fail_on_three, (3,), error_callback=errors.append)
        failing.wait(60)
        with pytest.raises(ValueError, match="bad item 3"):
            failing.get()
        assert not failing.successful()
        slow = pool.apply_async(time.sleep, (30,))
        with pytest.raises(TimeoutError):
            slow.get(timeout=0.1)
        with pytest.raises(ValueError, match="not ready"):
            slow.successful()
    deadline = time.monotonic() + 30
    while (not got or not errors) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == [[0, 1, 4, 9, 16]]
    assert isinstance(errors[0], ValueError)


def test_a_failing_item_raises_its_own_exception_with_the_remote_traceback() -> None:
    with Pool(2) as pool:
        with pytest.raises(ValueError, match="bad item 3") as info:
            pool.map(fail_on_three, range(6))
        assert "fail_on_three" in str(info.value.__cause__)


def test_imap_yields_in_order_and_raises_at_the_failing_position() -> None:
    with Pool(2) as pool:
        assert list(pool.imap(square, range(10))) == [x * x for x in range(10)]
        assert list(pool.imap(square, range(10), chunksize=3)) == [x * x for x in range(10)]
        it = pool.imap(fail_on_three, range(6))
        assert [next(it), next(it), next(it)] == [0, 1, 2]
        with pytest.raises(ValueError):
            next(it)


def test_imap_unordered_yields_every_result() -> None:
    with Pool(2) as pool:
        assert sorted(pool.imap_unordered(square, range(10))) == [x * x for x in range(10)]


def test_imap_consumes_an_endless_iterable_lazily() -> None:
    def naturals():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            yield n
            n += 1

    with Pool(2) as pool:
        it = pool.imap(square, naturals())
        assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]


def test_the_initializer_runs_in_every_process() -> None:
    with Pool(2, initializer=remember, initargs=("ready",)) as pool:
        assert set(pool.map(read_tag, range(8), chunksize=1)) == {"ready"}


def test_an_initializer_that_raises_fails_the_pool_at_creation() -> None:
    with pytest.raises(Exception, match="boom"):
        Pool(1, initializer=lambda: (_ for _ in ()).throw(RuntimeError("boom")))


def test_maxtasksperchild_replaces_processes() -> None:
    with Pool(1, maxtasksperchild=1) as pool:
        pids = [pool.apply(os.getpid) for _ in range(3)]
    assert len(set(pids)) == 3


def test_close_join_and_terminate_follow_multiprocessing() -> None:
    pool = Pool(2)
    result = pool.map_async(square, range(4))
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(square, [1])
    pool.join()
    assert result.get() == [0, 1, 4, 9]
    pool.terminate()


def test_asking_for_more_processes_than_cpus_says_how_to_fix_it(cluster: ModuleType) -> None:
    cpus = int(cluster.cluster_resources()["CPU"])
    with pytest.raises(ValueError, match="add nodes"):
        Pool(cpus + 1)
    with pytest.raises(ValueError, match="at least 1"):
        Pool(0)
    with Pool(cpus * 2, ray_remote_args={"num_cpus": 0.5}) as pool:
        assert pool.map(square, [3]) == [9]
