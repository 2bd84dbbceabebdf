"""Actors waiting for resources wait in the head's queue, not on a head thread each, and all start when the
resources appear (a node joins, or an actor holding them ends); killing a waiting actor takes it out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

import spindle
from spindle.exceptions import ActorDiedError
from spindle.util.state import list_actors
from tests.runtime._nodes import Cluster, wait_until

WAITING = 200  # more than the head's gRPC server has threads (64), and than it has threads in all


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=1)
    try:
        yield c
    finally:
        c.close()


def _head_process() -> psutil.Process:
    found = [p for p in psutil.Process().children(recursive=True) if "spindle._head" in p.cmdline()]
    assert len(found) == 1, found
    return found[0]


def _states(actors: list[Any]) -> dict[str, str]:
    ids = {a._actor_id.hex() for a in actors}
    return {r["actor_id"]: r["state"] for r in list_actors(limit=10_000) if r["actor_id"] in ids}


@spindle.remote(num_cpus=0, resources={"later": 1})
class Later:
    def pid(self) -> int:
        return os.getpid()


def test_more_pending_actors_than_head_threads_hold_no_head_thread_and_all_start_when_a_node_brings_the_resource(
        cluster: Cluster) -> None:
    head = _head_process()
    actors = [Later.remote() for _ in range(WAITING)]
    wait_until(lambda: list(_states(actors).values()).count("PENDING_CREATION") == WAITING, 300,
               f"{WAITING} actors pending at the head")
    # its own ~16 threads, its gRPC server's pool (at most 64) and node probes (at most 8), however loaded the
    # machine: fewer than the actors waiting (a thread per waiting actor made it 200 more than that)
    assert head.num_threads() < WAITING

    killed, rest = actors[0], actors[1:]
    spindle.kill(killed)
    wait_until(lambda: _states([killed]).get(killed._actor_id.hex()) == "DEAD", 120, "the killed actor DEAD")

    cluster.add_node(num_cpus=1, resources={"later": WAITING}, wait_for_work=False)  # its agent starts 199 actors
    pids = spindle.get([a.pid.remote() for a in rest], timeout=600)
    assert len(set(pids)) == WAITING - 1  # one worker each, all started
    states = _states(actors)
    assert list(states.values()).count("ALIVE") == WAITING - 1
    assert states[killed._actor_id.hex()] == "DEAD"  # taken out of the queue: it never started
    with pytest.raises(ActorDiedError):
        spindle.get(killed.pid.remote(), timeout=60)
    for a in rest:
        spindle.kill(a)


@spindle.remote(num_cpus=0, resources={"slot": 1})
class Slot:
    def pid(self) -> int:
        return os.getpid()


def test_an_actor_waiting_for_a_resource_another_actor_holds_starts_once_that_actor_is_killed(
        cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1, resources={"slot": 1})
    holder = Slot.remote()
    spindle.get(holder.pid.remote(), timeout=120)
    waiters: list[Any] = []
    for _ in range(3):  # one at a time: creation is asynchronous, and the head queues actors in the order they reach it
        waiters.append(Slot.remote())
        wait_until(lambda: _states(waiters[-1:]) == {waiters[-1]._actor_id.hex(): "PENDING_CREATION"}, 60,
                   f"waiter {len(waiters)} pending at the head")
    for i, w in enumerate(waiters):
        spindle.kill(holder)
        assert spindle.get(w.pid.remote(), timeout=120) > 0  # the slot it frees goes to the next in line
        assert list(_states(waiters[i + 1:]).values()).count("PENDING_CREATION") == len(waiters) - i - 1
        holder = w
    spindle.kill(holder)
