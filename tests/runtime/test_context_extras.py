"""The smaller Ray Core lookups Ray programs use: the runtime context's placement group id, ``is_canceled()``
and temp dir, ``util.list_named_actors``, ``util.get_node_ip_address``, and the generator and worker-mode names
(on a real embedded cluster)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import ActorAlreadyExistsError, PendingCallsLimitExceeded, TaskCancelledError
from spindle.util import (
    as_completed,
    get_node_ip_address,
    list_named_actors,
    map_unordered,
    placement_group,
    remove_placement_group,
)
from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.runtime._nodes import wait_until


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=2, namespace="extras")
    try:
        yield
    finally:
        spindle.shutdown()


def test_the_placement_group_id_is_the_group_the_task_runs_in_and_none_outside() -> None:
    @spindle.remote(num_cpus=1)
    def where() -> str | None:
        return spindle.get_runtime_context().get_placement_group_id()

    pg = placement_group([{"CPU": 1}])
    spindle.get(pg.ready(), timeout=60)
    inside = where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    assert spindle.get(inside, timeout=60) == pg.id.hex()
    assert spindle.get(where.remote(), timeout=60) is None
    assert spindle.get_runtime_context().get_placement_group_id() is None

    @spindle.remote(num_cpus=1)
    def captures() -> bool:
        return bool(spindle.get_runtime_context().should_capture_child_tasks_in_placement_group())

    def in_pg(capture: bool) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=capture)

    assert spindle.get(captures.options(scheduling_strategy=in_pg(True)).remote(), timeout=60) is True
    assert spindle.get(captures.options(scheduling_strategy=in_pg(False)).remote(), timeout=60) is False
    remove_placement_group(pg)


def test_a_sync_actor_call_sees_is_canceled_after_cancel_and_its_caller_gets_task_cancelled(tmp_path: Path) -> None:
    @spindle.remote
    class Looper:
        def __init__(self) -> None:
            self.saw = False

        def loop(self, flag: str) -> str:
            Path(flag).touch()
            while not spindle.get_runtime_context().is_canceled():
                time.sleep(0.02)
            self.saw = True
            return "stopped"

        def saw_cancel(self) -> bool:
            return self.saw

    a = Looper.remote()
    flag = tmp_path / "running"
    ref = a.loop.remote(str(flag))
    wait_until(flag.exists, 60, "the call to start")
    spindle.cancel(ref)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=60)
    assert spindle.get(a.saw_cancel.remote(), timeout=60) is True
    assert spindle.get_runtime_context().is_canceled() is False


def test_list_named_actors_lists_live_named_actors_of_this_namespace_or_all() -> None:
    @spindle.remote
    class Named:
        def ping(self) -> str:
            return "pong"

    here = Named.options(name="extras-here").remote()
    there = Named.options(name="extras-there", namespace="elsewhere").remote()
    spindle.get([here.ping.remote(), there.ping.remote()], timeout=60)
    assert "extras-here" in list_named_actors() and "extras-there" not in list_named_actors()
    everywhere = list_named_actors(all_namespaces=True)
    assert {"name": "extras-there", "namespace": "elsewhere"} in everywhere
    spindle.kill(here)
    wait_until(lambda: "extras-here" not in list_named_actors(), 60, "the killed actor to leave the list")
    spindle.kill(there)


def test_node_ip_and_temp_dir_are_the_node_s() -> None:
    @spindle.remote
    def ip_and_tmp() -> tuple[str, str]:
        return get_node_ip_address(), spindle.get_runtime_context().get_temp_dir()

    ip, tmp = spindle.get(ip_and_tmp.remote(), timeout=60)
    assert ip == get_node_ip_address()
    assert tmp == spindle.get_runtime_context().get_temp_dir() and os.path.isdir(tmp)


def test_generator_types_and_worker_modes_have_ray_s_names() -> None:
    @spindle.remote(num_returns="streaming")
    def gen() -> Iterator[int]:
        yield 1

    g = gen.remote()
    assert isinstance(g, spindle.ObjectRefGenerator)
    assert [spindle.get(r) for r in g] == [1]
    assert (spindle.SCRIPT_MODE, spindle.WORKER_MODE) == (0, 1)


def test_a_taken_actor_name_raises_actor_already_exists_error_which_is_a_value_error() -> None:
    @spindle.remote
    class Unique:
        pass

    first = Unique.options(name="extras-unique").remote()
    with pytest.raises(ActorAlreadyExistsError, match="already taken") as info:
        Unique.options(name="extras-unique").remote()
    assert isinstance(info.value, ValueError)
    spindle.kill(first)


def test_max_pending_calls_refuses_calls_beyond_the_limit_until_answers_come_back(tmp_path: Path) -> None:
    @spindle.remote(max_pending_calls=2)
    class Gate:
        def wait(self, gate: str) -> str:
            while not os.path.exists(gate):
                time.sleep(0.02)
            return "through"

    gate = tmp_path / "gate"
    g = Gate.remote()
    pending = [g.wait.remote(str(gate)), g.wait.remote(str(gate))]
    with pytest.raises(PendingCallsLimitExceeded, match="max_pending_calls"):
        g.wait.remote(str(gate))
    gate.touch()
    assert spindle.get(pending, timeout=60) == ["through", "through"]
    assert spindle.get(g.wait.remote(str(gate)), timeout=60) == "through"
    with pytest.raises(ValueError, match="max_pending_calls"):
        Gate.options(max_pending_calls=0).remote()


@spindle.remote
def gated_value(value: int, gate: str) -> int:
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    return value


def test_as_completed_yields_a_ready_result_before_one_still_running(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    refs = [gated_value.remote(1, str(gate)), gated_value.remote(2, "")]
    got = []
    for value in as_completed(refs, chunk_size=1):
        got.append(value)
        gate.touch()  # the first one finishes only after the second was handed out
    assert got == [2, 1]
    assert sorted(as_completed([gated_value.remote(i, "") for i in range(5)], chunk_size=2)) == [0, 1, 2, 3, 4]
    refs_back = list(as_completed([gated_value.remote(7, "")], yield_obj_refs=True))
    assert spindle.get(refs_back) == [7]
    with pytest.raises(ValueError, match="chunk_size"):
        list(as_completed(refs, chunk_size=0))
    with pytest.raises(ValueError, match="chunk_size"):
        list(as_completed(refs, num_returns=1))


def test_map_unordered_maps_a_remote_function_over_items_with_backpressure() -> None:
    @spindle.remote
    def square(x: int) -> int:
        return x * x

    assert sorted(map_unordered(square, range(7), backpressure_size=2, chunk_size=1)) == [x * x for x in range(7)]
    assert sorted(map_unordered(square, [3, 4], backpressure_size=None)) == [9, 16]
    with pytest.raises(ValueError, match="backpressure_size"):
        list(map_unordered(square, [1], backpressure_size=0))


def test_the_session_name_is_the_clusters_and_the_same_in_the_driver_a_task_and_an_actor() -> None:
    @spindle.remote
    def in_task() -> str:
        return spindle.get_runtime_context().get_session_name()

    @spindle.remote
    class InActor:
        def name(self) -> str:
            return spindle.get_runtime_context().get_session_name()

    here = spindle.get_runtime_context().get_session_name()
    assert isinstance(here, str) and here
    assert spindle.get(in_task.remote(), timeout=60) == here
    assert spindle.get(InActor.remote().name.remote(), timeout=60) == here
