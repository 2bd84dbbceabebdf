"""How actors end, as Ray's users see it: graceful exits run the actor's hooks, kills don't, and every
ActorDiedError says why the actor died (on a real embedded cluster)."""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from tests.runtime._nodes import answer_when_restarted, process_gone, wait_until


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    # a short grace period so the hung-hook test ends quickly (the agent and workers inherit it)
    os.environ["SPINDLE_ACTOR_GRACEFUL_SHUTDOWN_S"] = "3"
    spindle.init(num_cpus=2)
    try:
        yield
    finally:
        spindle.shutdown()
        os.environ.pop("SPINDLE_ACTOR_GRACEFUL_SHUTDOWN_S", None)




@spindle.remote
class Hooked:
    """Leaves a file per hook that ran: <tag>.shutdown, <tag>.del, <tag>.atexit."""

    def __init__(self, folder: str, tag: str) -> None:
        self.base = base = os.path.join(folder, tag)
        atexit.register(lambda: Path(base + ".atexit").touch())

    def __ray_shutdown__(self) -> None:
        Path(self.base + ".shutdown").touch()

    def __del__(self) -> None:
        Path(self.base + ".del").touch()

    def pid(self) -> int:
        return os.getpid()

    def bye(self) -> None:
        spindle.exit_actor()

    def crash(self, code: int) -> None:
        os._exit(code)

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "finished"


def hooks_run(folder: Path, tag: str) -> set[str]:
    return {p.suffix[1:] for p in folder.iterdir() if p.stem == tag}




def test_exit_actor_runs_the_shutdown_hook_del_and_atexit_and_callers_see_an_intended_exit(tmp_path: Path) -> None:
    a = Hooked.remote(str(tmp_path), "exit")
    pid = spindle.get(a.pid.remote())
    with pytest.raises(ActorDiedError) as info:
        spindle.get(a.bye.remote(), timeout=60)
    assert "exit_actor() is called" in str(info.value)
    assert "INTENDED_USER_EXIT" in str(info.value)
    assert "class_name: Hooked" in str(info.value)
    assert info.value.actor_id == a.actor_id
    assert not info.value.actor_init_failed
    with pytest.raises(ActorDiedError, match="exit_actor\\(\\) is called"):
        spindle.get(a.pid.remote(), timeout=60)
    wait_until(lambda: process_gone(pid), 60, "the actor's process exited")
    assert hooks_run(tmp_path, "exit") == {"shutdown", "del", "atexit"}


def test_calls_queued_behind_exit_actor_never_run_and_fail_with_actor_died_error(tmp_path: Path) -> None:
    a = Hooked.remote(str(tmp_path), "queued")
    spindle.get(a.pid.remote())
    bye, after = a.bye.remote(), a.slow.remote(0)
    for ref in (bye, after):
        with pytest.raises(ActorDiedError, match="exit_actor"):
            spindle.get(ref, timeout=60)


def test_ray_terminate_runs_the_hooks_after_the_calls_queued_before_it(tmp_path: Path) -> None:
    a = Hooked.remote(str(tmp_path), "term")
    slow = a.slow.remote(0.5)
    done = a.__ray_terminate__.remote()
    assert spindle.get(slow, timeout=60) == "finished"
    with pytest.raises(ActorDiedError):
        spindle.get(done, timeout=60)
    wait_until(lambda: hooks_run(tmp_path, "term") == {"shutdown", "del", "atexit"}, 60, "the hooks ran")


def test_an_actor_whose_last_handle_goes_out_of_scope_finishes_its_calls_then_runs_its_hooks(tmp_path: Path) -> None:
    a = Hooked.remote(str(tmp_path), "scope")
    pid = spindle.get(a.pid.remote())
    pending = a.slow.remote(0.5)
    del a
    assert spindle.get(pending, timeout=60) == "finished"
    wait_until(lambda: hooks_run(tmp_path, "scope") == {"shutdown", "del", "atexit"}, 60, "the hooks ran")
    wait_until(lambda: process_gone(pid), 60, "the actor's process exited")


def test_an_actor_whose_handle_was_passed_to_another_actor_outlives_its_creators_handle(tmp_path: Path) -> None:
    @spindle.remote
    class Keeper:
        def keep(self, handles: list[object]) -> None:
            self.h = handles[0]

        def call_pid(self) -> int:
            return int(spindle.get(self.h.pid.remote()))  # type: ignore[attr-defined]

    a = Hooked.remote(str(tmp_path), "shared")
    pid = spindle.get(a.pid.remote())
    k = Keeper.remote()
    spindle.get(k.keep.remote([a]))
    del a
    time.sleep(0.5)  # a wrong out-of-scope kill would be under way by now
    assert spindle.get(k.call_pid.remote(), timeout=60) == pid
    assert hooks_run(tmp_path, "shared") == set()


def test_a_named_actor_ends_with_its_creators_last_handle_as_in_ray(tmp_path: Path) -> None:
    named = Hooked.options(name="lifecycle-named").remote(str(tmp_path), "named")
    spindle.get(named.pid.remote())
    also = spindle.get_actor("lifecycle-named")  # a second handle in the creating process keeps it
    del named
    assert spindle.get(also.pid.remote(), timeout=60) > 0
    del also
    wait_until(lambda: hooks_run(tmp_path, "named") == {"shutdown", "del", "atexit"}, 60, "the named actor ended")
    with pytest.raises(ValueError):
        spindle.get_actor("lifecycle-named")


def test_kill_runs_no_hooks_and_callers_are_told_it_was_killed(tmp_path: Path) -> None:
    a = Hooked.remote(str(tmp_path), "kill")
    pid = spindle.get(a.pid.remote())
    spindle.kill(a)
    with pytest.raises(ActorDiedError, match="killed by `ray.kill`"):
        spindle.get(a.pid.remote(), timeout=60)
    wait_until(lambda: process_gone(pid), 60, "the actor's process exited")
    assert hooks_run(tmp_path, "kill") == set()


def test_a_crashed_actor_worker_is_reported_with_its_exit_code(tmp_path: Path) -> None:
    a = Hooked.remote(str(tmp_path), "crash")
    with pytest.raises(ActorDiedError) as info:
        spindle.get(a.crash.remote(7), timeout=60)
    assert "SYSTEM_ERROR" in str(info.value) and "exit code 7" in str(info.value)
    with pytest.raises(ActorDiedError, match="exit code 7"):
        spindle.get(a.pid.remote(), timeout=60)
    assert hooks_run(tmp_path, "crash") == set()


def test_a_failed_constructor_is_reported_with_its_traceback_and_actor_init_failed() -> None:
    @spindle.remote
    class Broken:
        def __init__(self) -> None:
            raise ValueError("no config here")

        def ping(self) -> int:
            return 1

    b = Broken.remote()
    with pytest.raises(ActorDiedError) as info:
        spindle.get(b.ping.remote(), timeout=60)
    err = info.value
    assert err.actor_init_failed
    assert "error raised in its creation task" in str(err)
    assert "ValueError: no config here" in str(err) and "in __init__" in str(err)
    assert "_core/executor.py" not in str(err)  # the user's frames only
    assert isinstance(err.cause, ValueError)


def test_a_hung_shutdown_hook_does_not_keep_the_actor_alive(tmp_path: Path) -> None:
    @spindle.remote
    class Stuck:
        def __ray_shutdown__(self) -> None:
            time.sleep(3600)

        def pid(self) -> int:
            return os.getpid()

    s = Stuck.remote()
    pid = spindle.get(s.pid.remote())
    del s
    wait_until(lambda: process_gone(pid), 60, "the actor's process was force-ended after the grace period")


def test_an_async_actor_calling_exit_actor_runs_its_shutdown_hook(tmp_path: Path) -> None:
    @spindle.remote
    class AsyncHooked:
        def __init__(self, path: str) -> None:
            self.path = path

        def __ray_shutdown__(self) -> None:
            Path(self.path).touch()

        async def bye(self) -> None:
            spindle.exit_actor()

    a = AsyncHooked.remote(str(tmp_path / "async.shutdown"))
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(a.bye.remote(), timeout=60)
    wait_until((tmp_path / "async.shutdown").exists, 60, "the async actor's shutdown hook ran")


def test_kill_without_no_restart_restarts_an_actor_that_may_restart() -> None:
    @spindle.remote(max_restarts=1)
    class Phoenix:
        def __init__(self) -> None:
            self.calls = 0

        def count(self) -> tuple[int, int]:
            self.calls += 1
            return self.calls, os.getpid()

    p = Phoenix.remote()
    assert spindle.get(p.count.remote())[0] == 1
    _, pid1 = spindle.get(p.count.remote())
    spindle.kill(p, no_restart=False)
    calls, pid2 = answer_when_restarted(p.count.remote)
    assert calls == 1 and pid2 != pid1  # a new process ran the constructor again
    spindle.kill(p, no_restart=False)  # the restart budget is spent: now it stays dead
    wait_until(lambda: _died_killed(p), 60, "calls fail with the kill as the cause")


def test_kill_without_no_restart_ends_an_actor_without_max_restarts() -> None:
    @spindle.remote
    class Once:
        def ping(self) -> str:
            return "pong"

    o = Once.remote()
    spindle.get(o.ping.remote())
    spindle.kill(o, no_restart=False)
    with pytest.raises(ActorDiedError, match="killed by `ray.kill`"):
        spindle.get(o.ping.remote(), timeout=60)


def test_actor_errors_pickle_with_their_fields() -> None:
    import cloudpickle

    died = ActorDiedError("text", actor_id="ab12")
    back = cloudpickle.loads(cloudpickle.dumps(died))
    assert type(back) is ActorDiedError and str(back) == "text" and back.actor_id == "ab12"
    unavailable = ActorUnavailableError("connection reset", b"\x01\x02")
    back2 = cloudpickle.loads(cloudpickle.dumps(unavailable))
    assert isinstance(back2, RayActorError) and back2.actor_id == "0102"
    assert "may or may not have been executed" in str(back2)


def _died_killed(actor: object) -> bool:
    try:
        spindle.get(actor.count.remote(), timeout=60)  # type: ignore[attr-defined]
    except ActorUnavailableError:
        return False  # lost in flight before the caller heard of the kill
    except ActorDiedError as e:
        assert "killed by `ray.kill`" in str(e)
        return True
    return False
