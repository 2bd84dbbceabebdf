"""``exit_actor()`` as Ray's users rely on it: in constructors, in async actors, with its exception caught,
and the TypeError Ray raises when something that is not an actor calls it (on a real embedded cluster)."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import ActorDiedError
from spindle.util.state import list_actors
from tests.runtime._nodes import wait_until

NON_ACTOR = "exit_actor API is called on a non-actor worker"


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=2)  # the default grace (30 s) for hooks: a loaded machine still runs them in time
    try:
        yield
    finally:
        spindle.shutdown()


def _state(actor: object) -> str:
    rows = list_actors(filters=[("actor_id", "=", actor._actor_id.hex())])  # type: ignore[attr-defined]
    return str(rows[0]["state"]) if rows else ""


def test_exit_actor_in_the_constructor_ends_the_actor_for_good_and_runs_its_atexit_handlers(tmp_path: Path) -> None:
    @spindle.remote(max_restarts=3)
    class Quits:
        def __init__(self, folder: str) -> None:
            base = Path(folder)
            (base / f"init-{os.getpid()}").touch()
            atexit.register(lambda: (base / "atexit").touch())
            spindle.actor.exit_actor()

        def ping(self) -> str:
            return "pong"

    a = Quits.remote(str(tmp_path))
    with pytest.raises(ActorDiedError) as info:
        spindle.get(a.ping.remote(), timeout=60)
    assert "exit_actor() is called" in str(info.value)
    assert "INTENDED_USER_EXIT" in str(info.value)
    wait_until((tmp_path / "atexit").exists, 60, "the actor's atexit handler ran")
    wait_until(lambda: _state(a) == "DEAD", 60, "the state API shows the actor dead")
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(a.ping.remote(), timeout=60)
    assert len(list(tmp_path.glob("init-*"))) == 1  # never restarted, although max_restarts=3


def test_an_actor_whose_method_catches_the_exit_actor_exception_still_exits() -> None:
    @spindle.remote(max_restarts=2)
    class Stubborn:
        def bye(self) -> str:
            try:
                spindle.actor.exit_actor()
            except BaseException:  # noqa: BLE001 - what a careless user does
                pass
            return "still here"

        def ping(self) -> str:
            return "pong"

    s = Stubborn.remote()
    assert spindle.get(s.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(s.bye.remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(s.ping.remote(), timeout=60)


def test_an_async_actor_whose_method_catches_the_exit_actor_exception_still_exits() -> None:
    @spindle.remote
    class AsyncStubborn:
        async def bye(self) -> str:
            try:
                spindle.actor.exit_actor()
            except spindle.exceptions.AsyncioActorExit:  # Ray's type for an async actor (an Exception)
                pass
            return "still here"

        async def ping(self) -> str:
            return "pong"

    s = AsyncStubborn.remote()
    assert spindle.get(s.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(s.bye.remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(s.ping.remote(), timeout=60)


def test_an_async_actor_calling_exit_actor_in_its_constructor_ends() -> None:
    @spindle.remote
    class AsyncQuits:
        def __init__(self) -> None:
            spindle.actor.exit_actor()

        async def ping(self) -> str:
            return "pong"

    a = AsyncQuits.remote()
    with pytest.raises(ActorDiedError, match="exit_actor"):
        spindle.get(a.ping.remote(), timeout=60)


def test_exit_actor_on_the_driver_raises_ray_s_type_error() -> None:
    with pytest.raises(TypeError, match=f"{NON_ACTOR}, 0. Call this API inside an actor method"):
        spindle.actor.exit_actor()


def test_exit_actor_in_a_task_raises_ray_s_type_error_to_the_caller() -> None:
    @spindle.remote
    def not_an_actor() -> None:
        spindle.actor.exit_actor()

    with pytest.raises(TypeError, match=f"{NON_ACTOR}, 1"):
        spindle.get(not_an_actor.remote(), timeout=60)


def test_a_task_launched_by_an_actor_is_not_an_actor_for_exit_actor() -> None:
    @spindle.remote
    def nested() -> str:
        try:
            spindle.actor.exit_actor()
        except TypeError as e:
            return str(e)
        return "no error"

    @spindle.remote
    class Parent:
        def launch(self) -> str:
            return str(spindle.get(nested.remote()))

        def ping(self) -> str:
            return "pong"

    p = Parent.remote()
    assert NON_ACTOR in spindle.get(p.launch.remote(), timeout=60)
    assert spindle.get(p.ping.remote(), timeout=60) == "pong"  # the actor itself carries on
