"""A real multi-node cluster: a head and two node agents, each in its own network namespace and IP.

The driver runs in the root namespace and reaches the cluster over the test bridge, as a driver
outside a Kubernetes cluster would; it has no node of its own, so every value it needs from a
node's store is streamed to it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import spindle
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.netns_harness.spindle_nodes import joined_cluster
from tests.runtime._nodes import answer_when_restarted

TOKEN = "multinode-test-token"


@pytest.fixture(scope="module")
def three_hosts(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("multinode")
    head, a, b = netns_hosts_module(3)
    with joined_cluster(TOKEN, head, [(a, ["--num-cpus", "2"]), (b, ["--num-cpus", "2"])], tmp) as nodes:
        yield {"a": nodes[a.ip], "b": nodes[b.ip], "head": nodes[head.ip], "hosts": (head, a, b)}


def on(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


@spindle.remote
def where() -> str:
    time.sleep(0.05)
    return spindle.get_runtime_context().get_node_id()


def test_cluster_resources_sum_both_nodes(three_hosts: dict[str, Any]) -> None:
    assert spindle.cluster_resources()["CPU"] == 4
    assert len(spindle.nodes()) == 3


def test_tasks_run_on_both_nodes(three_hosts: dict[str, Any]) -> None:
    seen = set(spindle.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(20)]))
    assert seen == {three_hosts["a"], three_hosts["b"]}
    seen = set(spindle.get([where.remote() for _ in range(40)]))
    assert three_hosts["head"] not in seen  # the head node offers no CPU


def test_a_large_object_made_on_one_node_is_consumed_on_the_other(three_hosts: dict[str, Any]) -> None:
    @spindle.remote
    def make(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    @spindle.remote
    def consume(arr: np.ndarray) -> tuple[float, str]:
        return float(arr.sum()), spindle.get_runtime_context().get_node_id()

    n = 5_000_000  # 40 MB: lives in node A's store, streamed to node B
    ref = make.options(scheduling_strategy=on(three_hosts["a"])).remote(n)
    total, node = spindle.get(consume.options(scheduling_strategy=on(three_hosts["b"])).remote(ref))
    assert total == n * (n - 1) / 2 and node == three_hosts["b"]
    local = spindle.get(ref)  # and to the driver, which has no node of its own
    assert local.shape == (n,)
    big = spindle.put(np.ones(3_000_000))
    total, node = spindle.get(consume.options(scheduling_strategy=on(three_hosts["a"])).remote(big))
    assert total == 3_000_000 and node == three_hosts["a"]


def test_killing_a_worker_mid_task_retries_it(three_hosts: dict[str, Any], tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    @spindle.remote(max_retries=2)
    def long_task(path: str) -> str:
        if not os.path.exists(path):
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(path + ".tmp", path)
            time.sleep(60)
        return f"retried on {spindle.get_runtime_context().get_node_id()}"

    ref = long_task.options(scheduling_strategy=on(three_hosts["b"])).remote(str(pid_file))
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert spindle.get(ref, timeout=60) == f"retried on {three_hosts['b']}"


def test_an_actor_lives_on_the_second_node_and_is_called_directly(three_hosts: dict[str, Any]) -> None:
    @spindle.remote
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def incr(self) -> tuple[int, str]:
            self.n += 1
            return self.n, spindle.get_runtime_context().get_node_id()

    c = Counter.options(scheduling_strategy=on(three_hosts["b"])).remote()
    results = spindle.get([c.incr.remote() for _ in range(10)])
    assert [r[0] for r in results] == list(range(1, 11))
    assert {r[1] for r in results} == {three_hosts["b"]}


def _node_of_pool_process(_: object) -> str:
    return spindle.get_runtime_context().get_node_id()


def test_a_multiprocessing_pool_spreads_its_processes_over_the_nodes(three_hosts: dict[str, Any]) -> None:
    from spindle.util.multiprocessing import Pool

    with Pool() as pool:  # one process per CPU: four, two on each node
        assert len(pool._actors) == 4
        seen = set(pool.map(_node_of_pool_process, range(32), chunksize=1))
    assert seen == {three_hosts["a"], three_hosts["b"]}


def test_losing_a_node_restarts_its_actors_and_retries_its_tasks_elsewhere(three_hosts: dict[str, Any]) -> None:
    """Runs last: it kills node B outright (every process in its namespace gets SIGKILL)."""
    a, b = three_hosts["a"], three_hosts["b"]
    soft_b = NodeAffinitySchedulingStrategy(node_id=b, soft=True)

    @spindle.remote(max_restarts=1)
    class Survivor:
        def where(self) -> str:
            return spindle.get_runtime_context().get_node_id()

    @spindle.remote(max_retries=2)
    def slow_where() -> str:
        time.sleep(3)
        return spindle.get_runtime_context().get_node_id()

    actor = Survivor.options(scheduling_strategy=soft_b).remote()
    assert spindle.get(actor.where.remote(), timeout=60) == b
    task = slow_where.options(scheduling_strategy=soft_b).remote()
    time.sleep(1.0)
    host_b = three_hosts["hosts"][2]
    host_b.signal_all(signal.SIGKILL)
    assert spindle.get(task, timeout=120) == a
    assert answer_when_restarted(actor.where.remote) == a
    deadline = time.monotonic() + 30
    while any(n["Alive"] for n in spindle.nodes() if n["NodeID"] == b):
        assert time.monotonic() < deadline, "the head never noticed node B died"
        time.sleep(0.5)
    assert spindle.cluster_resources()["CPU"] == 2

