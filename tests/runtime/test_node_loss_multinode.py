"""A node cut off from the network (its processes alive, its connections silent), in network namespaces.

Unlike a killed process, a vanished machine closes no connection: only the head's heartbeat
timeout notices it. The driver (root namespace, no node of its own) must then move the node's
task and actor elsewhere on the head's word, not wait for TCP keepalive.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle.exceptions import ActorDiedError
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.netns_harness.spindle_nodes import joined_cluster
from tests.runtime._nodes import RelayCaller, Sleeper, wait_until

TOKEN = "node-loss-multinode-token"


@pytest.fixture
def three_hosts(netns_hosts: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    head, a, b = netns_hosts(3)
    with joined_cluster(TOKEN, head, [(a, ["--num-cpus", "1"]), (b, ["--num-cpus", "1"])], tmp_path) as nodes:
        yield {"a": nodes[a.ip], "b": nodes[b.ip], "b_host": b}


@spindle.remote(max_retries=2)
def flagged(flag: str, delay: float) -> str:
    Path(flag).write_text("started")
    time.sleep(delay)
    return spindle.get_runtime_context().get_node_id()


@spindle.remote(max_restarts=1, max_task_retries=1)
class Where:
    def node(self) -> str:
        return spindle.get_runtime_context().get_node_id()


def test_work_on_a_node_cut_off_from_the_network_moves_to_a_live_node(three_hosts: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    b = three_hosts["b"]
    soft_b = NodeAffinitySchedulingStrategy(node_id=b, soft=True)
    actor = Where.options(scheduling_strategy=soft_b).remote()
    assert spindle.get(actor.node.remote(), timeout=60) == b
    flag = tmp_path / "flag"
    wait_until(lambda: spindle.get(flagged.options(scheduling_strategy=soft_b).remote(str(flag), 0), timeout=60) == b,
               60, "a task to be placed on b")
    flag.unlink()
    ref = flagged.options(scheduling_strategy=soft_b).remote(str(flag), 5.0)
    wait_until(flag.exists, 60, "the task to start on b")
    three_hosts["b_host"].run(["ip", "link", "set", "eth0", "down"], check=True)  # b vanishes from the network
    wait_until(lambda: any(n["NodeID"] == b and not n["Alive"] for n in spindle.nodes()), 60, "b declared dead")
    assert spindle.get(ref, timeout=120) == three_hosts["a"]
    assert spindle.get(actor.node.remote(), timeout=120) == three_hosts["a"]


@spindle.remote(max_restarts=1, max_task_retries=1)
class Worker:
    def work(self, flag: str, delay: float) -> str:
        Path(flag).write_text("started")
        time.sleep(delay)
        return spindle.get_runtime_context().get_node_id()

    def node(self) -> str:
        return spindle.get_runtime_context().get_node_id()


def test_actor_calls_in_flight_on_a_vanished_node_are_retried_on_the_restarted_actor_within_max_task_retries(
        three_hosts: dict[str, Any], tmp_path: Path) -> None:
    a, b = three_hosts["a"], three_hosts["b"]
    soft_b = NodeAffinitySchedulingStrategy(node_id=b, soft=True)
    retried = Worker.options(scheduling_strategy=soft_b).remote()
    unretried = Worker.options(scheduling_strategy=soft_b, max_restarts=0, max_task_retries=0).remote()
    assert spindle.get([retried.node.remote(), unretried.node.remote()], timeout=60) == [b, b]
    flag1, flag2 = tmp_path / "flag1", tmp_path / "flag2"
    in_flight = retried.work.remote(str(flag1), 5.0)
    queued = retried.node.remote()  # sent behind the running call
    lost = unretried.work.remote(str(flag2), 5.0)
    wait_until(lambda: flag1.exists() and flag2.exists(), 60, "both calls to start on b")
    three_hosts["b_host"].run(["ip", "link", "set", "eth0", "down"], check=True)  # b vanishes from the network
    assert spindle.get(in_flight, timeout=120) == a  # run again by the actor restarted on a
    assert spindle.get(queued, timeout=120) == a
    with pytest.raises(ActorDiedError, match=f"its node has died. Node Id: {b}"):
        spindle.get(lost, timeout=120)
    with pytest.raises(ActorDiedError, match=f"its node has died. Node Id: {b}"):
        spindle.get(unretried.node.remote(), timeout=120)


def test_a_worker_calling_an_actor_on_a_frozen_node_over_tcp_gets_actor_died_once_the_head_declares_it_dead(
        three_hosts: dict[str, Any], tmp_path: Path) -> None:
    # b's processes stop but its kernel runs: it answers the TCP stream's keepalive probes, so the call on a (a
    # worker, which watches no cluster view) ends only when a's agent passes on the head's verdict.
    a, b = three_hosts["a"], three_hosts["b"]
    callee = Sleeper.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=b, soft=False)).remote()
    caller = RelayCaller.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=a, soft=False)).remote()
    flag = tmp_path / "flag"
    ended = caller.call.remote(callee, str(flag), 600.0)
    wait_until(flag.exists, 60, "the callee's call to start on b")
    three_hosts["b_host"].signal_all(signal.SIGSTOP)
    try:
        wait_until(lambda: any(n["NodeID"] == b and not n["Alive"] for n in spindle.nodes()), 60, "b declared dead")
        got = spindle.get(ended, timeout=60)
        assert got.startswith("ActorDiedError") and f"its node has died. Node Id: {b}" in got, got
    finally:
        three_hosts["b_host"].signal_all(signal.SIGKILL)
