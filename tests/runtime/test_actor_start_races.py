"""An actor whose worker dies as it starts is restarted (max_restarts) or dies with a cause, never left hanging,
whichever of the agent's two messages (StartActor's reply, the worker's exit) the head handles first.

The agent's fault injection ``SPINDLE_TESTING_KILL_ACTOR_BEFORE_REPLY=<class>`` kills the worker of a first
incarnation right after its constructor returned and holds the reply saying it started until the head has been
told of the exit: the order that used to leave the actor ALIVE at a dead address. A constructor that kills its own
process is the other order (the reply, no worker, comes after the exit). Real embedded cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import ActorDiedError
from spindle.util.state import get_actor
from tests.runtime._nodes import answer_when_restarted, process_gone

KILL_HOOK = "SPINDLE_TESTING_KILL_ACTOR_BEFORE_REPLY"


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    os.environ[KILL_HOOK] = "DiesAsItStarts"  # the agent (a child of init()) inherits it
    spindle.init(num_cpus=2)
    try:
        yield
    finally:
        spindle.shutdown()
        os.environ.pop(KILL_HOOK, None)


@spindle.remote
class DiesAsItStarts:
    """Its first worker is killed by the agent's fault injection once this constructor returned."""

    def __init__(self, folder: str) -> None:
        with open(os.path.join(folder, "pids"), "a") as f:
            f.write(f"{os.getpid()}\n")

    def pid(self) -> int:
        return os.getpid()


@spindle.remote
class CrashesInConstructor:
    """Its constructor kills its own process, the first time only when ``once``."""

    def __init__(self, folder: str, once: bool) -> None:
        marker = Path(folder, "crashed")
        with open(os.path.join(folder, "pids"), "a") as f:
            f.write(f"{os.getpid()}\n")
        if not (once and marker.exists()):
            marker.touch()
            os._exit(3)

    def pid(self) -> int:
        return os.getpid()


def constructor_pids(folder: Path) -> list[int]:
    return [int(line) for line in (folder / "pids").read_text().split()]


def test_an_actor_whose_worker_exit_reaches_the_head_before_its_start_reply_is_restarted(tmp_path: Path) -> None:
    a = DiesAsItStarts.options(max_restarts=1).remote(str(tmp_path))
    pid = answer_when_restarted(a.pid.remote)  # (as in Ray, a call made while it restarts fails fast)
    first, second = constructor_pids(tmp_path)
    assert pid == second != first
    assert process_gone(first)
    row = get_actor(a.actor_id)
    assert row is not None
    assert (row["state"], row["num_restarts"]) == ("ALIVE", 1)
    assert spindle.get(a.pid.remote(), timeout=60) == pid


def test_without_restarts_callers_of_an_actor_killed_before_its_start_reply_get_actor_died_error(
        tmp_path: Path) -> None:
    a = DiesAsItStarts.options(max_restarts=0).remote(str(tmp_path))
    with pytest.raises(ActorDiedError) as info:
        spindle.get(a.pid.remote(), timeout=60)
    assert "Worker unexpectedly exits with signal SIGKILL" in str(info.value)
    assert info.value.actor_id == a.actor_id
    assert len(constructor_pids(tmp_path)) == 1
    row = get_actor(a.actor_id)
    assert row is not None
    assert (row["state"], row["num_restarts"]) == ("DEAD", 0)


def test_an_actor_whose_process_dies_in_its_constructor_is_restarted_within_max_restarts(tmp_path: Path) -> None:
    a = CrashesInConstructor.options(max_restarts=1).remote(str(tmp_path), True)
    pid = answer_when_restarted(a.pid.remote)
    first, second = constructor_pids(tmp_path)
    assert pid == second != first
    row = get_actor(a.actor_id)
    assert row is not None
    assert (row["state"], row["num_restarts"]) == ("ALIVE", 1)


def test_an_actor_whose_process_dies_in_its_constructor_every_time_dies_once_restarts_are_spent(
        tmp_path: Path) -> None:
    a = CrashesInConstructor.options(max_restarts=2).remote(str(tmp_path), False)
    with pytest.raises(ActorDiedError) as info:
        spindle.get(a.pid.remote(), timeout=60)
    assert "Worker unexpectedly exits with exit code 3" in str(info.value)
    assert len(constructor_pids(tmp_path)) == 3  # the first start and its two restarts
    row = get_actor(a.actor_id)
    assert row is not None
    assert (row["state"], row["num_restarts"]) == ("DEAD", 2)
