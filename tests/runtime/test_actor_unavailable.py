"""ActorUnavailableError as Ray (2.10+) raises it: an actor that is not dead but lost or restarting fails the
calls that cannot be retried with it, instead of ActorDiedError or holding them (on a real embedded cluster).

The restarting actor's constructor waits for a gate file, so "the actor is restarting" lasts exactly as long
as the test wants, without timing assumptions.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from tests.runtime._nodes import answer_when_restarted, wait_until

pytestmark = pytest.mark.usefixtures("cluster")  # conftest: one embedded cluster for the module


@spindle.remote(max_restarts=1)
class Gated:
    """Its restarts wait for ``gate`` to exist; its state is a counter."""

    def __init__(self, gate: str) -> None:
        if spindle.get_runtime_context().was_current_actor_reconstructed:
            while not os.path.exists(gate):
                time.sleep(0.05)
        self.count = 0

    def incr(self) -> int:
        self.count += 1
        return self.count

    def pid(self) -> int:
        return os.getpid()

    def hang(self) -> None:
        time.sleep(3600)


def test_a_call_in_flight_when_a_restartable_actor_dies_fails_with_actor_unavailable_error(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    a = Gated.remote(str(gate))
    pid = spindle.get(a.pid.remote())
    hanging = a.hang.remote()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorUnavailableError) as info:
        spindle.get(hanging, timeout=60)
    assert isinstance(info.value, RayActorError) and not isinstance(info.value, ActorDiedError)
    assert "may or may not have been executed" in str(info.value)
    assert info.value.actor_id == a._actor_id.hex()  # type: ignore[attr-defined]
    gate.touch()
    assert answer_when_restarted(a.incr.remote) == 1  # a fresh instance


def test_calls_made_while_the_actor_restarts_fail_fast_then_work_once_it_is_back(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    a = Gated.remote(str(gate))
    assert spindle.get(a.incr.remote()) == 1
    os.kill(spindle.get(a.pid.remote()), signal.SIGKILL)
    with pytest.raises(ActorUnavailableError):  # the head may not know yet: lost in flight or refused
        spindle.get(a.incr.remote(), timeout=60)
    with pytest.raises(ActorUnavailableError, match="The actor is restarting"):
        spindle.get(a.incr.remote(), timeout=60)
    gate.touch()
    assert answer_when_restarted(a.incr.remote) == 1  # the old instance's state is gone
    assert spindle.get(a.incr.remote()) == 2


def test_calls_that_may_be_retried_wait_for_the_restart_instead(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    a = Gated.options(max_task_retries=-1).remote(str(gate))
    assert spindle.get(a.incr.remote()) == 1
    os.kill(spindle.get(a.pid.remote()), signal.SIGKILL)
    pending = a.incr.remote()
    ready, _ = spindle.wait([pending], timeout=1.0)
    assert not ready  # held while the restart waits for the gate
    gate.touch()
    assert spindle.get(pending, timeout=120) == 1


def test_an_actor_out_of_restarts_fails_calls_with_actor_died_error_not_unavailable(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    a = Gated.remote(str(gate))
    os.kill(spindle.get(a.pid.remote()), signal.SIGKILL)
    second_pid = answer_when_restarted(a.pid.remote)
    os.kill(second_pid, signal.SIGKILL)
    wait_until(lambda: _died(a), 60, "calls fail with ActorDiedError once the restart budget is spent")


def _died(actor: Any) -> bool:
    try:
        spindle.get(actor.incr.remote(), timeout=60)
    except ActorDiedError:
        return True
    except ActorUnavailableError:
        return False  # the death not known yet: lost in flight
    return False
