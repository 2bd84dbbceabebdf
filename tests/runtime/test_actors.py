"""Actors on a real embedded cluster: state, ordering, options, failures, restarts, concurrency."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

import spindle
from spindle.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from tests.runtime._nodes import answer_when_restarted

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.value = start

    def incr(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def get(self) -> int:
        return self.value

    def pid(self) -> int:
        return os.getpid()

    @spindle.method(num_returns=2)
    def pair(self) -> tuple[int, int]:
        return self.value, -self.value


def test_state_survives_between_calls_and_calls_run_in_order() -> None:
    c = Counter.remote(10)
    refs = [c.incr.remote() for _ in range(200)]
    assert spindle.get(refs) == list(range(11, 211))
    assert spindle.get(c.get.remote()) == 210


def test_method_num_returns_and_direct_calls_are_rejected() -> None:
    c = Counter.remote(5)
    a, b = c.pair.remote()
    assert spindle.get([a, b]) == [5, -5]
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        c.incr()
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()


def test_handles_can_be_passed_to_tasks_and_used_there() -> None:
    c = Counter.remote()

    @spindle.remote
    def bump(counter: Any, n: int) -> None:
        spindle.get([counter.incr.remote() for _ in range(n)])

    spindle.get([bump.remote(c, 10) for _ in range(4)])
    assert spindle.get(c.get.remote()) == 40


def test_actors_hold_no_cpu_by_default_so_many_fit_beside_tasks() -> None:
    actors = [Counter.remote(i) for i in range(6)]
    assert spindle.get([a.get.remote() for a in actors], timeout=60) == list(range(6))

    @spindle.remote
    def task() -> str:
        return "ran"

    assert spindle.get([task.remote() for _ in range(4)], timeout=60) == ["ran"] * 4


def test_named_actor_lookup_and_get_if_exists() -> None:
    c = Counter.options(name="shared-counter", namespace="tests").remote(100)
    found = spindle.get_actor("shared-counter", namespace="tests")
    assert spindle.get(found.incr.remote()) == 101
    again = Counter.options(name="shared-counter", namespace="tests", get_if_exists=True).remote(0)
    assert spindle.get(again.get.remote()) == 101
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="shared-counter", namespace="tests").remote()
    with pytest.raises(ValueError, match="Failed to look up actor"):
        spindle.get_actor("no-such-actor")
    spindle.kill(c)


def test_a_constructor_error_is_raised_by_every_call() -> None:
    @spindle.remote
    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("bad init")

        def ping(self) -> str:
            return "pong"

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError, match="bad init"):
            spindle.get(b.ping.remote(), timeout=60)


def test_kill_makes_later_calls_raise_actor_died_error() -> None:
    c = Counter.remote()
    assert spindle.get(c.incr.remote()) == 1
    spindle.kill(c)
    with pytest.raises(RayActorError):
        spindle.get(c.incr.remote(), timeout=60)


def test_max_restarts_restarts_the_process_and_reruns_the_constructor() -> None:
    @spindle.remote(max_restarts=1)
    class Fragile:
        def __init__(self) -> None:
            self.calls = 0

        def crash(self) -> None:
            os._exit(1)

        def count(self) -> tuple[int, int]:
            self.calls += 1
            return self.calls, os.getpid()

    f = Fragile.remote()
    _, pid1 = spindle.get(f.count.remote())
    with pytest.raises(ActorUnavailableError):  # in flight when the process died; the actor is restarting
        spindle.get(f.crash.remote(), timeout=60)
    calls, pid2 = answer_when_restarted(f.count.remote)
    assert calls == 1 and pid2 != pid1  # fresh process, constructor ran again
    with pytest.raises(ActorDiedError):
        spindle.get(f.crash.remote(), timeout=60)
    with pytest.raises(ActorDiedError):  # restart budget spent
        spindle.get(f.count.remote(), timeout=60)


def test_max_task_retries_reruns_calls_in_flight_when_the_actor_dies(tmp_path: Any) -> None:
    marker = str(tmp_path / "crashed")

    @spindle.remote(max_restarts=1, max_task_retries=1)
    class CrashOnce:
        def work(self, path: str) -> str:
            if not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            return "done"

    a = CrashOnce.remote()
    assert spindle.get(a.work.remote(marker), timeout=60) == "done"


def test_exit_actor_ends_the_actor_without_restart() -> None:
    @spindle.remote(max_restarts=3)
    class Quitter:
        def quit(self) -> None:
            spindle.exit_actor()

        def ping(self) -> str:
            return "pong"

    q = Quitter.remote()
    assert spindle.get(q.ping.remote()) == "pong"
    with pytest.raises(RayActorError):
        spindle.get(q.quit.remote(), timeout=60)
    with pytest.raises(RayActorError):
        spindle.get(q.ping.remote(), timeout=60)


def test_async_actor_runs_twenty_sleeps_concurrently() -> None:
    @spindle.remote
    class Sleeper:
        async def nap(self, s: float) -> float:
            await asyncio.sleep(s)
            return s

    a = Sleeper.remote()
    spindle.get(a.nap.remote(0))
    start = time.monotonic()
    assert spindle.get([a.nap.remote(0.5) for _ in range(20)], timeout=60) == [0.5] * 20
    assert time.monotonic() - start < 5.0  # serial would take 10 s


def test_await_a_ref_inside_an_async_actor() -> None:
    @spindle.remote
    def slow_value() -> int:
        time.sleep(0.2)
        return 42

    @spindle.remote
    class Awaiter:
        async def wait_for(self, box: list[Any]) -> int:
            return int(await box[0]) + 1

    a = Awaiter.remote()
    assert spindle.get(a.wait_for.remote([slow_value.remote()]), timeout=60) == 43


def test_threaded_actor_runs_max_concurrency_calls_at_once() -> None:
    @spindle.remote(max_concurrency=4)
    class Threaded:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.active = 0
            self.peak = 0

        def work(self) -> None:
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            time.sleep(0.3)
            with self.lock:
                self.active -= 1

        def peak_seen(self) -> int:
            return self.peak

    t = Threaded.remote()
    spindle.get([t.work.remote() for _ in range(8)], timeout=60)
    assert spindle.get(t.peak_seen.remote()) == 4


def test_actor_resources_are_held_when_num_cpus_is_given() -> None:
    @spindle.remote(num_cpus=2)
    class Big:
        def ping(self) -> str:
            return "pong"

    b = Big.remote()
    assert spindle.get(b.ping.remote(), timeout=60) == "pong"
    deadline = time.time() + 5
    while spindle.available_resources().get("CPU", 0) > 0 and time.time() < deadline:
        time.sleep(0.1)
    assert spindle.available_resources().get("CPU", 0) == 0
    spindle.kill(b)
    deadline = time.time() + 10
    while spindle.available_resources().get("CPU", 0) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert spindle.available_resources().get("CPU", 0) == 2


def test_a_handle_passed_to_another_actor_is_used_there() -> None:
    counter = Counter.remote()

    @spindle.remote
    class Forwarder:
        def __init__(self, target: Any) -> None:
            self.target = target

        def bump(self, n: int) -> int:
            return spindle.get([self.target.incr.remote() for _ in range(n)])[-1]

    f = Forwarder.remote(counter)
    assert spindle.get(f.bump.remote(5), timeout=60) == 5
    assert spindle.get(counter.get.remote()) == 5
