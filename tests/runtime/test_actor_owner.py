"""Actors and their owners, as in Ray: ``.remote()`` with ObjectRef constructor arguments returns at once (the
actor is DEPENDENCIES_UNREADY until they are ready), and an actor made by a worker dies with that worker or
its node, even before its arguments were ready (real processes: a head, node agents, workers).

Arguments that are "not ready" come from a task waiting for a gate file the test never (or later) creates.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle.exceptions import ActorDiedError
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from spindle.util.state import list_actors
from tests.runtime._nodes import Cluster, wait_until


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=3)
    try:
        yield c
    finally:
        c.close()


@spindle.remote(num_cpus=0)
def gated(path: str) -> int:
    while not os.path.exists(path):
        time.sleep(0.05)
    return 42


@spindle.remote(num_cpus=0)
class Child:
    def __init__(self, value: int) -> None:
        self.value = value

    def get(self) -> int:
        return self.value


@spindle.remote(num_cpus=0)
class Owner:
    def make(self, gate: str) -> list[Any]:
        return [Child.remote(gated.remote(gate))]  # in a list: the handle escapes, the actor stays owned here

    def pid(self) -> int:
        return os.getpid()


@spindle.remote(num_cpus=0)
def make_in_a_task(gate: str) -> tuple[list[Any], int]:
    return [Child.remote(gated.remote(gate))], os.getpid()


def _state(actor: Any) -> str:
    rows = list_actors(filters=[("actor_id", "=", actor._actor_id.hex())])
    return str(rows[0]["state"]) if rows else ""


def _owner_died(actor: Any) -> None:
    wait_until(lambda: _state(actor) == "DEAD", 60, "the orphaned actor to be DEAD")
    with pytest.raises(ActorDiedError, match="owner has died"):
        spindle.get(actor.get.remote(), timeout=60)


def test_remote_with_an_unready_argument_returns_at_once_and_the_actor_waits_for_it(
        cluster: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    child = Child.remote(gated.remote(str(gate)))  # returns although the argument is not ready
    wait_until(lambda: _state(child) == "DEPENDENCIES_UNREADY", 60, "the actor to show DEPENDENCIES_UNREADY")
    gate.touch()
    assert spindle.get(child.get.remote(), timeout=60) == 42
    assert _state(child) == "ALIVE"


def test_an_argument_that_failed_fails_the_actor_s_creation(cluster: Cluster) -> None:
    @spindle.remote
    def broken() -> int:
        raise ValueError("no value for you")

    child = Child.remote(broken.remote())
    with pytest.raises(ActorDiedError, match="no value for you"):
        spindle.get(child.get.remote(), timeout=60)


def test_an_actor_whose_owner_actor_dies_before_its_arguments_are_ready_is_cleaned_up(
        cluster: Cluster, tmp_path: Path) -> None:
    owner = Owner.remote()
    [child] = spindle.get(owner.make.remote(str(tmp_path / "never")), timeout=60)
    wait_until(lambda: _state(child) == "DEPENDENCIES_UNREADY", 60, "the child to wait for its argument")
    spindle.kill(owner)
    _owner_died(child)


def test_an_actor_whose_owner_task_worker_crashes_before_its_arguments_are_ready_is_cleaned_up(
        cluster: Cluster, tmp_path: Path) -> None:
    [child], pid = spindle.get(make_in_a_task.remote(str(tmp_path / "never")), timeout=60)
    wait_until(lambda: _state(child) == "DEPENDENCIES_UNREADY", 60, "the child to wait for its argument")
    os.kill(pid, signal.SIGKILL)
    _owner_died(child)


def test_an_alive_actor_dies_with_the_actor_that_created_it(cluster: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    owner = Owner.remote()
    [child] = spindle.get(owner.make.remote(str(gate)), timeout=60)
    assert spindle.get(child.get.remote(), timeout=60) == 42
    os.kill(spindle.get(owner.pid.remote()), signal.SIGKILL)
    _owner_died(child)


def test_an_actor_whose_owner_s_node_dies_before_its_arguments_are_ready_is_cleaned_up(
        cluster: Cluster, tmp_path: Path) -> None:
    """Runs last in this module: it kills a node."""
    b = cluster.add_node(num_cpus=1)
    owner = Owner.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=b.node_id, soft=False)).remote()
    [child] = spindle.get(owner.make.remote(str(tmp_path / "never")), timeout=60)
    wait_until(lambda: _state(child) == "DEPENDENCIES_UNREADY", 60, "the child to wait for its argument")
    cluster.kill(b)
    _owner_died(child)
