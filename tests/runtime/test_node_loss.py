"""Node loss, case by case: a killed node agent (and its workers) costs no result and hangs nobody.

Real processes: an embedded cluster plus extra node agents on loopback (see ``_nodes``); the
driver is this test process. Each test builds its own cluster, since it kills parts of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

import spindle
from spindle._core import leases
from spindle.exceptions import (
    ActorDiedError,
    NodeDiedError,
    ObjectLostError,
    ObjectReconstructionFailedError,
    WorkerCrashedError,
)
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.runtime._nodes import Cluster, RelayCaller, Sleeper, wait_until


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=1)
    try:
        yield c
    finally:
        c.close()


def on(node_id: str, soft: bool = True) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=soft)


@spindle.remote
def node_of(delay: float = 0.0) -> str:
    time.sleep(delay)
    return spindle.get_runtime_context().get_node_id()


@spindle.remote
def started_then_sleep(flag: str, delay: float) -> str:
    Path(flag).touch()
    time.sleep(delay)
    return spindle.get_runtime_context().get_node_id()


def test_a_killed_agent_is_marked_dead_within_seconds_and_listed_with_its_reason(cluster: Cluster) -> None:
    b = cluster.add_node()
    cluster.kill(b)
    took = cluster.wait_dead(b, timeout=15)
    assert took < 15
    dead = next(n for n in spindle.nodes() if n["NodeID"] == b.node_id)
    assert dead["Alive"] is False and dead["State"] == "DEAD"
    assert "refuses connections" in dead["DeathReason"] or "missed heartbeats" in dead["DeathReason"]
    assert spindle.cluster_resources()["CPU"] == 1  # only the live node counts


def test_tasks_running_on_a_killed_node_are_retried_on_a_live_node(cluster: Cluster, tmp_path: Path) -> None:
    b = cluster.add_node()
    flag = tmp_path / "started"
    ref = started_then_sleep.options(scheduling_strategy=on(b.node_id)).remote(str(flag), 3.0)
    wait_until(flag.exists, 60, "the task to start on node b")
    cluster.kill(b)
    assert spindle.get(ref, timeout=60) == cluster.local.node_id


def test_a_task_without_retries_on_a_killed_node_fails_with_worker_crashed_error(cluster: Cluster,
                                                                                 tmp_path: Path) -> None:
    b = cluster.add_node()
    flag = tmp_path / "started"
    ref = started_then_sleep.options(scheduling_strategy=on(b.node_id), max_retries=0).remote(str(flag), 30.0)
    wait_until(flag.exists, 60, "the task to start on node b")
    cluster.kill(b)
    with pytest.raises(WorkerCrashedError, match="no retries left"):
        spindle.get(ref, timeout=60)


def test_a_driver_whose_own_agent_died_moves_to_a_live_node(cluster: Cluster, tmp_path: Path) -> None:
    b = cluster.add_node()
    flag = tmp_path / "started"
    inflight = started_then_sleep.options(scheduling_strategy=on(cluster.local.node_id)).remote(str(flag), 3.0)
    wait_until(flag.exists, 60, "the task to start on the driver's node")
    cluster.kill(cluster.nodes[0])
    assert spindle.get(inflight, timeout=60) == b.node_id
    assert spindle.get([node_of.remote() for _ in range(4)], timeout=60) == [b.node_id] * 4
    assert spindle.get_runtime_context().get_node_id() == b.node_id  # same machine: it adopted that node


def test_with_no_node_left_tasks_fail_with_node_died_error_and_run_again_once_a_node_joins(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "NO_NODE_TIMEOUT_S", 2.0)
    assert spindle.get(node_of.remote(), timeout=60) == cluster.local.node_id
    cluster.kill(cluster.nodes[0])
    start = time.monotonic()
    with pytest.raises(NodeDiedError, match="no live node is left.*spindle start --address"):
        spindle.get(node_of.remote(), timeout=60)
    assert time.monotonic() - start < 30
    c = cluster.add_node()
    assert spindle.get(node_of.remote(), timeout=60) == c.node_id


def test_spindle_status_and_new_drivers_show_dead_nodes_when_none_is_alive(cluster: Cluster) -> None:
    cluster.kill(cluster.nodes[0])
    cluster.wait_dead(cluster.nodes[0])
    env = {**os.environ, "SPINDLE_TOKEN": cluster.local.token}
    status = subprocess.run([sys.executable, "-m", "spindle._cli", "status", "--address", cluster.head_address],
                            capture_output=True, text=True, env=env, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "0 node(s) alive, 1 dead" in status.stdout
    assert cluster.local.node_id[:8] in status.stdout and "dead" in status.stdout
    driver = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import spindle
        spindle.init(address="{cluster.head_address}")
        print([n["State"] for n in spindle.nodes()])
    """)], capture_output=True, text=True, env=env, timeout=120)
    assert driver.returncode == 0, driver.stderr
    assert "['DEAD']" in driver.stdout
    assert "no live nodes yet" not in driver.stderr


def test_an_actor_on_a_killed_node_restarts_on_a_live_node(cluster: Cluster) -> None:
    b = cluster.add_node(resources={"b": 1})

    @spindle.remote(max_restarts=1, max_task_retries=1)
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def incr(self) -> tuple[int, str]:
            self.n += 1
            return self.n, spindle.get_runtime_context().get_node_id()

    c = Counter.options(scheduling_strategy=on(b.node_id)).remote()
    assert spindle.get(c.incr.remote(), timeout=60) == (1, b.node_id)
    cluster.kill(b)
    assert spindle.get(c.incr.remote(), timeout=60) == (1, cluster.local.node_id)  # a fresh instance


def test_an_actor_without_restarts_on_a_killed_node_dies_naming_the_node(cluster: Cluster) -> None:
    b = cluster.add_node()

    @spindle.remote
    class Echo:
        def ping(self) -> str:
            return "pong"

    e = Echo.options(scheduling_strategy=on(b.node_id, soft=False)).remote()
    assert spindle.get(e.ping.remote(), timeout=60) == "pong"
    cluster.kill(b)
    with pytest.raises(ActorDiedError, match=f"its node has died. Node Id: {b.node_id}"):  # Ray's wording
        spindle.get(e.ping.remote(), timeout=60)


def test_a_worker_calling_an_actor_on_a_frozen_node_gets_actor_died_once_the_head_declares_the_node_dead(
        cluster: Cluster, tmp_path: Path) -> None:
    # A frozen node's kernel keeps the actor stream (a Unix socket here) open: only the head's verdict, which the
    # caller's agent passes on to its workers, ends the call. Before that notice the call waited for ever.
    b = cluster.add_node()
    callee = Sleeper.options(scheduling_strategy=on(b.node_id, soft=False)).remote()
    caller = RelayCaller.options(scheduling_strategy=on(cluster.local.node_id, soft=False)).remote()
    flag = tmp_path / "flag"
    ended = caller.call.remote(callee, str(flag), 600.0)
    wait_until(flag.exists, 60, "the callee's call to start on b")
    cluster.freeze(b)
    cluster.wait_dead(b)
    got = spindle.get(ended, timeout=60)
    assert got.startswith("ActorDiedError") and f"its node has died. Node Id: {b.node_id}" in got, got


@spindle.remote(max_retries=1)
def big(i: int) -> np.ndarray:
    return np.full(500_000, i)


def test_a_task_output_whose_node_died_is_reconstructed(cluster: Cluster) -> None:
    b = cluster.add_node()
    ref = big.options(scheduling_strategy=on(b.node_id)).remote(7)
    spindle.wait([ref], timeout=60)
    cluster.kill(b)
    value = spindle.get(ref, timeout=60)
    assert value.shape == (500_000,) and int(value[0]) == 7


def test_a_lost_task_output_passed_to_another_task_is_reconstructed_first(cluster: Cluster) -> None:
    b = cluster.add_node()
    ref = big.options(scheduling_strategy=on(b.node_id)).remote(3)
    spindle.wait([ref], timeout=60)
    cluster.kill(b)

    @spindle.remote
    def total(a: np.ndarray) -> int:
        return int(a.sum())

    assert spindle.get(total.remote(ref), timeout=60) == 3 * 500_000


def test_a_lost_output_with_no_retries_left_raises_object_reconstruction_failed_naming_it(cluster: Cluster) -> None:
    b = cluster.add_node()
    ref = big.options(scheduling_strategy=on(b.node_id), max_retries=0).remote(1)
    spindle.wait([ref], timeout=60)
    cluster.kill(b)
    with pytest.raises(ObjectReconstructionFailedError, match=f"{ref.hex()}.*no retries left"):
        spindle.get(ref, timeout=60)


def test_a_put_value_whose_node_died_raises_object_lost_error_naming_it(cluster: Cluster) -> None:
    b = cluster.add_node()
    ref = spindle.put(np.ones(500_000))
    cluster.kill(cluster.nodes[0])
    assert spindle.get(node_of.remote(), timeout=60) == b.node_id  # the driver has moved to node b
    with pytest.raises(ObjectLostError, match=f"{ref.hex()}.*put\\(\\)") as lost:
        spindle.get(ref, timeout=60)
    assert type(lost.value) is ObjectLostError  # no task to re-run: not a failed reconstruction (as in Ray)


def test_a_killed_drivers_running_task_does_not_leave_a_busy_worker_in_the_pool(tmp_path: Path) -> None:
    from spindle import _local_cluster

    procs = _local_cluster.start(num_cpus=1)
    flag = tmp_path / "started"
    env = {**os.environ, "SPINDLE_TOKEN": procs.token}
    victim = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time, spindle
        spindle.init(address="{procs.head_address}")
        @spindle.remote
        def long():
            open("{flag}", "w").write(str(os.getpid()))
            time.sleep(300)
        spindle.get(long.remote())
    """)], env=env)
    try:
        wait_until(lambda: flag.exists() and flag.read_text() != "", 60, "the long task to start")
        busy_pid = int(flag.read_text())
        victim.kill()
        victim.wait()
        os.environ["SPINDLE_TOKEN"] = procs.token
        spindle.init(address=procs.head_address)
        try:
            @spindle.remote
            def pid() -> int:
                return os.getpid()

            assert spindle.get(pid.remote(), timeout=60) != busy_pid  # not queued behind the orphaned task
            wait_until(lambda: not psutil.pid_exists(busy_pid) or psutil.Process(busy_pid).status() == "zombie",
                       30, "the orphaned task's worker to be stopped")
        finally:
            spindle.shutdown()
            os.environ.pop("SPINDLE_TOKEN", None)
    finally:
        if victim.poll() is None:
            victim.kill()
        procs.stop()


def test_a_large_put_after_the_drivers_node_died_is_stored_on_a_live_node(cluster: Cluster) -> None:
    b = cluster.add_node()
    cluster.kill(cluster.nodes[0])
    ref = spindle.put(np.ones(500_000))
    assert spindle.get_runtime_context().get_node_id() == b.node_id
    assert float(spindle.get(ref, timeout=60).sum()) == 500_000
