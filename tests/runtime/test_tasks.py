"""Remote functions on a real embedded cluster: results, options, errors, retries, nesting, objects."""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import time
from typing import Any

import numpy as np
import pytest

import spindle
from spindle.exceptions import GetTimeoutError, RayTaskError, TaskCancelledError, WorkerCrashedError

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
def square(x: int) -> int:
    return x * x


def test_results_come_back_in_submission_order() -> None:
    assert spindle.get([square.remote(i) for i in range(50)]) == [i * i for i in range(50)]
    assert spindle.get(square.remote(7)) == 49


def test_calling_a_remote_function_directly_says_to_use_remote() -> None:
    with pytest.raises(TypeError, match=r"square\.remote\(\)"):
        square(3)


def test_a_second_init_raises_unless_ignored() -> None:
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        spindle.init()
    spindle.init(ignore_reinit_error=True)
    assert spindle.is_initialized()


def test_num_returns_gives_one_ref_per_value() -> None:
    @spindle.remote(num_returns=3)
    def three() -> tuple[int, int, int]:
        return 1, 2, 3

    refs = three.remote()
    assert len(refs) == 3
    assert spindle.get(refs) == [1, 2, 3]
    assert spindle.get(square.options(num_returns=1).remote(4)) == 16


def test_object_refs_are_hashable_and_awaitable() -> None:
    ref = square.remote(5)
    assert ref in {ref}

    async def main() -> Any:
        return await ref

    assert asyncio.run(main()) == 25


def test_top_level_refs_are_resolved_and_nested_refs_stay_refs() -> None:
    @spindle.remote
    def inspect(a: Any, box: list[Any]) -> tuple[int, bool, int]:
        return a, isinstance(box[0], spindle.ObjectRef), spindle.get(box[0])

    inner = spindle.put(11)
    assert spindle.get(inspect.remote(square.remote(3), [inner])) == (9, True, 11)


def test_a_task_error_is_both_a_ray_task_error_and_the_users_exception() -> None:
    @spindle.remote
    def fail() -> None:
        raise KeyError("missing-key")

    with pytest.raises(KeyError) as info:
        spindle.get(fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert "missing-key" in str(info.value)
    assert "Traceback" in str(info.value) and "fail" in str(info.value)


def test_errors_propagate_through_dependent_tasks() -> None:
    @spindle.remote
    def fail() -> int:
        raise ValueError("upstream")

    with pytest.raises(ValueError, match="upstream"):
        spindle.get(square.remote(fail.remote()))


def test_exceptions_are_retried_only_when_asked(tmp_path: Any) -> None:
    counter = tmp_path / "count"

    @spindle.remote(max_retries=2, retry_exceptions=[ValueError])
    def flaky(path: str) -> int:
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, "w").write(str(n + 1))
        if n < 2:
            raise ValueError(f"attempt {n}")
        return n

    assert spindle.get(flaky.remote(str(counter))) == 2

    counter.unlink()

    @spindle.remote(max_retries=2)
    def no_retry(path: str) -> int:
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, "w").write(str(n + 1))
        raise ValueError("never retried")

    with pytest.raises(ValueError):
        spindle.get(no_retry.remote(str(counter)))
    assert counter.read_text() == "1"


def test_a_worker_killed_mid_task_is_retried(tmp_path: Any) -> None:
    marker = tmp_path / "died-once"

    @spindle.remote(max_retries=1)
    def die_once(path: str) -> str:
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "survived"

    assert spindle.get(die_once.remote(str(marker)), timeout=60) == "survived"


def test_a_worker_crash_without_retries_raises_worker_crashed_error() -> None:
    @spindle.remote(max_retries=0)
    def die() -> None:
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        spindle.get(die.remote(), timeout=60)


def test_an_unpicklable_argument_is_named_in_the_error() -> None:
    @spindle.remote
    def takes_two(a: int, b: object) -> int:
        return a

    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"argument 2 .*lock"):
        takes_two.remote(1, lock)


def test_nested_tasks_do_not_deadlock_when_parents_fill_every_cpu() -> None:
    @spindle.remote
    def child(i: int) -> int:
        return i

    @spindle.remote
    def parent(n: int) -> int:
        return sum(spindle.get([child.remote(i) for i in range(n)]))

    assert spindle.get([parent.remote(4) for _ in range(4)], timeout=120) == [6, 6, 6, 6]


def test_get_timeout_raises_get_timeout_error() -> None:
    @spindle.remote
    def slow() -> int:
        time.sleep(3)
        return 1

    ref = slow.remote()
    with pytest.raises(GetTimeoutError):
        spindle.get(ref, timeout=0.2)
    assert isinstance(GetTimeoutError(), TimeoutError)
    assert spindle.get(ref, timeout=60) == 1


def test_get_rejects_non_refs() -> None:
    with pytest.raises(TypeError):
        spindle.get(42)


def test_wait_returns_ready_refs_first_and_validates_like_ray() -> None:
    @spindle.remote
    def sleep_for(s: float) -> float:
        time.sleep(s)
        return s

    fast, slow = sleep_for.remote(0.0), sleep_for.remote(5.0)
    ready, pending = spindle.wait([slow, fast], num_returns=1, timeout=30)
    assert ready == [fast] and pending == [slow]
    ready, pending = spindle.wait([slow], timeout=0.1)
    assert ready == [] and pending == [slow]
    with pytest.raises(TypeError):
        spindle.wait(fast)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        spindle.wait([fast, fast])
    with pytest.raises(ValueError):
        spindle.wait([fast], num_returns=2)
    spindle.cancel(slow, force=True)


def test_wait_takes_the_first_ready_refs_in_list_order_and_keeps_the_rest_in_order() -> None:
    done = [spindle.put(i) for i in range(4)]
    event = spindle.put(None)

    @spindle.remote
    def block(_: Any) -> None:
        time.sleep(60)

    blocked = [block.remote(event) for _ in range(2)]
    refs = [blocked[0], done[0], done[1], blocked[1], done[2], done[3]]
    ready, pending = spindle.wait(refs, num_returns=3, timeout=30)
    assert ready == [done[0], done[1], done[2]] and pending == [blocked[0], blocked[1], done[3]]
    ready, pending = spindle.wait(tuple(refs), num_returns=4, timeout=0.2)  # the timeout: all that are ready
    assert ready == done and pending == blocked
    with pytest.raises(TypeError, match="list containing int"):
        spindle.wait([done[0], 7])  # type: ignore[list-item]
    for ref in blocked:
        spindle.cancel(ref, force=True)


def test_cancel_a_queued_and_a_running_task() -> None:
    @spindle.remote
    def spin(s: float) -> str:
        end = time.time() + s
        while time.time() < end:
            time.sleep(0.01)
        return "finished"

    running = [spin.remote(30) for _ in range(2)]
    queued = spin.remote(30)
    time.sleep(1.0)
    spindle.cancel(queued)
    with pytest.raises(TaskCancelledError):
        spindle.get(queued, timeout=30)
    for ref in running:
        spindle.cancel(ref)
    for ref in running:
        with pytest.raises(TaskCancelledError):
            spindle.get(ref, timeout=30)


def test_tasks_needing_missing_resources_wait_instead_of_failing(capfd: Any) -> None:
    @spindle.remote(resources={"unobtainium": 1})
    def never() -> int:
        return 1

    ref = never.remote()
    ready, _ = spindle.wait([ref], timeout=1.5)
    assert ready == []
    assert "unobtainium" in capfd.readouterr().err
    spindle.cancel(ref)


def test_custom_resources_are_respected() -> None:
    @spindle.remote(resources={"special": 1}, num_cpus=0)
    def special() -> str:
        return "ran"

    assert spindle.get(special.remote(), timeout=60) == "ran"


def test_put_and_get_small_and_large_values() -> None:
    assert spindle.get(spindle.put({"k": [1, 2]})) == {"k": [1, 2]}
    with pytest.raises(TypeError):
        spindle.put(spindle.put(1))


def test_numpy_arrays_come_back_zero_copy_and_read_only() -> None:
    arr = np.arange(4_000_000, dtype=np.float64)
    out = spindle.get(spindle.put(arr))
    assert np.array_equal(out, arr)
    assert not out.flags.writeable and not out.flags.owndata


def test_a_task_consumes_a_large_object_by_ref() -> None:
    @spindle.remote
    def total(m: np.ndarray) -> float:
        return float(m.sum())

    matrix = spindle.put(np.ones((1000, 1000)))
    assert spindle.get([total.remote(matrix) for _ in range(4)]) == [1_000_000.0] * 4


def test_large_task_results_travel_through_the_store() -> None:
    @spindle.remote
    def make(n: int) -> np.ndarray:
        return np.full(n, 3, dtype=np.int64)

    out = spindle.get(make.remote(2_000_000))
    assert out.shape == (2_000_000,) and int(out[-1]) == 3


def _store_files() -> int:
    """This cluster's store files only (other clusters on the machine, e.g. parallel test runs, share /dev/shm)."""
    from spindle._store import SHM_DIR, store_prefix

    mine = os.path.basename(store_prefix(spindle.get_runtime_context().get_node_id()))
    return sum(1 for n in os.listdir(SHM_DIR) if n.startswith(mine))


def test_dropped_objects_are_freed_so_a_put_loop_runs_in_bounded_memory() -> None:
    from spindle._store import object_path

    before = _store_files()
    for i in range(30):
        ref = spindle.put(np.ones(2_000_000))  # 16 MB each, ~480 MB if nothing were freed
        if i == 0:  # the files counted are the ones this cluster's puts create
            assert os.path.exists(object_path(spindle.get_runtime_context().get_node_id(), ref.binary()))
        del ref
    deadline = time.time() + 10
    while _store_files() > before + 2 and time.time() < deadline:
        time.sleep(0.1)
    assert _store_files() <= before + 2


def test_runtime_env_vars_reach_the_task() -> None:
    @spindle.remote(runtime_env={"env_vars": {"SPINDLE_TEST_VAR": "hello"}})
    def read_env() -> str | None:
        return os.environ.get("SPINDLE_TEST_VAR")

    assert spindle.get(read_env.remote()) == "hello"


def test_runtime_context_and_cluster_resources() -> None:
    @spindle.remote
    def ids() -> tuple[str, str | None, str]:
        ctx = spindle.get_runtime_context()
        return ctx.get_node_id(), ctx.get_task_id(), ctx.get_job_id()

    node_id, task_id, job_id = spindle.get(ids.remote())
    assert node_id == spindle.get_runtime_context().get_node_id()
    assert task_id and job_id == spindle.get_runtime_context().get_job_id()
    assert spindle.cluster_resources()["CPU"] == 2
    assert spindle.cluster_resources()["special"] == 1
    nodes = spindle.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"] and nodes[0]["NodeID"] == node_id


def test_exceptions_pickle_round_trip() -> None:
    err = RayTaskError("f", "tb", ValueError("x")).as_instanceof_cause()
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ValueError) and isinstance(back, RayTaskError)


def test_cancelling_a_parent_cancels_the_tasks_it_submitted(tmp_path: Any) -> None:
    marker = tmp_path / "child-finished"

    @spindle.remote
    def child(path: str) -> None:
        time.sleep(4)
        open(path, "w").close()

    @spindle.remote
    def parent(path: str) -> None:
        spindle.get(child.remote(path))

    ref = parent.remote(str(marker))
    time.sleep(1.5)
    spindle.cancel(ref)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=30)
    time.sleep(4)
    assert not marker.exists()
