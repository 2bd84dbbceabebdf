"""Ray Core semantics that Ray's own tests rely on: argument checks at .remote(), fail-fast get(),
errors that keep their type (or at least their text), the runtime context, timeline(), wait([])."""

from __future__ import annotations

import threading
import time

import pytest

import spindle
from spindle.exceptions import RayTaskError
from tests.runtime._nodes import wait_until

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
def add(a: int, b: int = 1) -> int:
    return a + b


@spindle.remote
class Box:
    def __init__(self, value: int) -> None:
        self.value = value

    def get(self) -> int:
        return self.value

    def put(self, value: int, *, note: str = "") -> None:
        self.value = value

    async def fail(self) -> None:
        raise KeyError("missing-key")


def test_wrong_arguments_to_a_remote_function_fail_at_remote_with_type_error() -> None:
    with pytest.raises(TypeError, match="too many positional arguments"):
        add.remote(1, 2, 3)
    with pytest.raises(TypeError, match="missing a required argument: 'a'"):
        add.remote(b=2)
    assert spindle.get(add.remote(1, b=5)) == 6


def test_wrong_arguments_to_an_actor_method_or_constructor_fail_at_remote_with_type_error() -> None:
    with pytest.raises(TypeError, match="missing a required argument: 'value'"):
        Box.remote()
    box = Box.remote(3)
    with pytest.raises(TypeError, match="missing a required argument: 'value'"):
        box.put.remote()
    with pytest.raises(TypeError, match="unexpected keyword argument 'other'"):
        box.put.remote(1, other=2)
    spindle.get(box.put.remote(4, note="x"))
    assert spindle.get(box.get.remote()) == 4


def test_a_handle_passed_to_a_task_still_checks_method_arguments() -> None:
    @spindle.remote
    def misuse(handle: object) -> str:
        try:
            handle.put.remote()  # type: ignore[attr-defined]
        except TypeError as e:
            return str(e)
        return "no error"

    assert "missing a required argument" in spindle.get(misuse.remote(Box.remote(1)))


def test_remote_on_an_async_def_function_raises_value_error() -> None:
    async def coro() -> int:
        return 1

    with pytest.raises(ValueError, match="'async def' should not be used for remote tasks"):
        spindle.remote(coro)


def test_every_actor_answers_ray_ready_and_ray_call() -> None:
    box = Box.remote(7)
    assert spindle.get(box.__ray_ready__.remote()) is True
    assert spindle.get(box.__ray_call__.remote(lambda self, extra: self.value + extra, 3)) == 10


def test_get_of_a_list_raises_as_soon_as_one_ref_failed_without_waiting_for_the_others() -> None:
    @spindle.remote
    def slow() -> None:
        time.sleep(60)

    @spindle.remote
    def fails() -> None:
        raise ValueError("boom")

    hanging = slow.remote()
    start = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        spindle.get([hanging, fails.remote()])
    assert time.monotonic() - start < 30
    spindle.cancel(hanging, force=True)


def test_an_exception_raised_in_an_async_actor_method_keeps_its_type() -> None:
    box = Box.remote(1)
    with pytest.raises(KeyError) as info:
        spindle.get(box.fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert "missing-key" in str(info.value)


class NeedsTwoArgs(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.lock = threading.Lock()


def test_an_exception_that_cannot_be_pickled_comes_back_as_ray_task_error_with_message_and_traceback() -> None:
    @spindle.remote
    def raises_unpicklable() -> None:
        raise NeedsTwoArgs("the original message", 2)

    with pytest.raises(RayTaskError) as info:
        spindle.get(raises_unpicklable.remote())
    text = str(info.value)
    assert "the original message" in text
    assert "NeedsTwoArgs" in text
    assert "raises_unpicklable" in text  # the traceback names the function
    assert "executor.py" not in text  # Spindle's own frames are not shown


def test_a_function_closing_over_a_lock_fails_with_an_error_naming_the_function_and_the_culprit() -> None:
    lock = threading.Lock()

    def uses_lock() -> bool:
        return lock.locked()

    with pytest.raises(TypeError) as info:
        spindle.remote(uses_lock).remote()
    assert "uses_lock" in str(info.value)
    assert "'lock'" in str(info.value)


def test_inspect_serializability_names_the_unpicklable_member() -> None:
    from spindle.util import inspect_serializability

    lock = threading.Lock()

    def f() -> object:
        return lock

    ok, failures = inspect_serializability(f, name="f")
    assert not ok
    assert {x.name for x in failures} == {"lock"}
    assert inspect_serializability(add) [0] is True


def test_wait_on_an_empty_list_returns_two_empty_lists() -> None:
    assert spindle.wait([]) == ([], [])
    assert spindle.wait([], num_returns=0) == ([], [])


def test_available_resources_always_has_cpu_even_when_every_cpu_is_taken() -> None:
    @spindle.remote(num_cpus=2)
    def hold() -> None:
        time.sleep(60)

    ref = hold.remote()
    deadline = time.monotonic() + 30
    while spindle.available_resources()["CPU"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spindle.available_resources()["CPU"] == 0
    spindle.cancel(ref, force=True)


def test_runtime_context_in_a_task_reports_ids_names_and_assigned_resources() -> None:
    @spindle.remote(num_cpus=1)
    def probe() -> dict[str, object]:
        c = spindle.get_runtime_context()
        return {"task_id": c.get_task_id(), "name": c.get_task_name(), "fn": c.get_task_function_name(),
                "job": c.get_job_id(), "node": c.get_node_id(), "actor": c.get_actor_id(),
                "res": c.get_assigned_resources(), "ns": c.namespace, "dict": c.get(),
                "gpus": spindle.get_gpu_ids(), "acc": c.get_accelerator_ids()}

    got = spindle.get(probe.options(name="probe-task").remote())
    driver = spindle.get_runtime_context()
    assert got["task_id"] and got["name"] == "probe-task"
    assert str(got["fn"]).endswith("probe")
    assert got["job"] == driver.get_job_id()
    assert got["node"] == driver.get_node_id()
    assert got["actor"] is None
    assert got["res"] == {"CPU": 1.0}
    assert got["ns"] == driver.namespace
    assert got["dict"]["task_id"] == got["task_id"]  # type: ignore[index]
    assert got["gpus"] == [] and got["acc"]["GPU"] == [] and got["acc"]["neuron_cores"] == []
    assert driver.get_task_id() is None and "task_id" not in driver.get()


def test_a_custom_resource_only_task_gets_its_resources_assigned() -> None:
    @spindle.remote(num_cpus=0, resources={"special": 1})
    def custom() -> dict[str, float]:
        return spindle.get_runtime_context().get_assigned_resources()

    assert spindle.get(custom.remote(), timeout=60) == {"special": 1.0}


def test_runtime_context_in_an_actor_reports_the_actor_and_a_handle_to_it() -> None:
    @spindle.remote(num_cpus=0, resources={"special": 1})
    class Who:
        def who(self) -> tuple[str | None, object, str | None, bool]:
            c = spindle.get_runtime_context()
            return c.get_actor_id(), c.current_actor, c.get_task_function_name(), c.was_current_actor_reconstructed

    w = Who.options(name="who-actor").remote()
    actor_id, handle, fn, reconstructed = spindle.get(w.who.remote(), timeout=60)
    assert actor_id == w.actor_id and handle == w
    assert str(fn).endswith("Who.who")
    assert reconstructed is False
    spindle.kill(w)


def test_timeline_returns_chrome_trace_events_of_recent_tasks(tmp_path: object) -> None:
    spindle.get([add.remote(i) for i in range(3)])
    events = spindle.timeline()
    assert events is not None
    mine = [e for e in events if e["name"] == "add"]
    assert len(mine) >= 3
    assert all(e["ph"] == "X" and e["dur"] >= 0 and e["ts"] > 0 for e in mine)
    import json
    import pathlib

    out = pathlib.Path(str(tmp_path)) / "trace.json"
    assert spindle.timeline(str(out)) is None
    assert any(e["name"] == "add" for e in json.loads(out.read_text()))


@spindle.remote
def traced_inner(i: int) -> int:
    return i


@spindle.remote
def traced_outer(n: int) -> int:
    return sum(spindle.get([traced_inner.remote(i) for i in range(n)]))


def test_timeline_covers_the_whole_job_including_tasks_other_workers_submitted() -> None:
    assert spindle.get(traced_outer.remote(4)) == 6

    def inner_seen() -> bool:
        events = spindle.timeline() or []
        return sum(e["name"] == "traced_inner" for e in events) >= 4 and any(e["name"] == "traced_outer" for e in events)

    wait_until(inner_seen, 60, "the nested tasks (submitted by a worker) to show in the timeline")
    inner = [e for e in spindle.timeline() or [] if e["name"] == "traced_inner"]
    assert all(e["ph"] == "X" and e["dur"] >= 0 and e["args"]["worker"] for e in inner)


def test_concurrency_groups_give_a_method_its_own_threads_beside_the_default_group() -> None:
    @spindle.remote(concurrency_groups={"io": 2})
    class Service:
        def __init__(self) -> None:
            self.gate = threading.Event()

        @spindle.method(concurrency_group="io")
        def wait_gate(self) -> str:
            return "opened" if self.gate.wait(60) else "timed out"

        def open_gate(self) -> str:
            self.gate.set()
            return "set"

    svc = Service.remote()
    blocked = [svc.wait_gate.remote(), svc.wait_gate.remote()]  # both io threads wait on the gate
    assert spindle.get(svc.open_gate.remote(), timeout=60) == "set"  # the default group still runs
    assert spindle.get(blocked, timeout=60) == ["opened", "opened"]


def test_a_method_naming_an_undefined_concurrency_group_is_refused_at_creation() -> None:
    @spindle.remote
    class Bad:
        @spindle.method(concurrency_group="missing")
        def m(self) -> None:
            pass

    with pytest.raises(ValueError, match="concurrency group 'missing'"):
        Bad.remote()
