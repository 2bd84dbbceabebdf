"""Draining nodes before removal: a draining node gets no new work and is drained only once it holds none.

Real processes: an embedded cluster (head node, 1 CPU) plus extra node agents on loopback; the
drain goes through the head's HTTP API exactly as the operator and the local provider call it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import spindle
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.runtime._autoscaler_http import call, row
from tests.runtime._nodes import Cluster, wait_until


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=1, log_to_driver=False)
    try:
        yield c
    finally:
        c.close()


def on(node_id: str, soft: bool = False) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=soft)


@spindle.remote
def hold(path: str, seconds: float) -> str:
    open(path, "w").close()
    time.sleep(seconds)
    return spindle.get_runtime_context().get_node_id()


@spindle.remote
def where() -> str:
    return spindle.get_runtime_context().get_node_id()


@spindle.remote
def big_array() -> Any:
    return np.ones(4 * 1024 * 1024, dtype=np.uint8)  # in the node's shared-memory store, not inline


@spindle.remote
class Pinned:
    def node(self) -> str:
        return spindle.get_runtime_context().get_node_id()


def drain(c: Cluster, node_id: str, deadline_s: float = 600.0) -> None:
    code, body = call(c, "/api/autoscaler/drain", {"node_id": node_id, "deadline_s": deadline_s, "reason": "test"})
    assert code == 200 and body == {"node_id": node_id, "state": "DRAINING"}, body


def status(c: Cluster, node_id: str) -> dict[str, Any]:
    code, body = call(c, f"/api/autoscaler/drain/{node_id}")
    assert code == 200, body
    return body  # type: ignore[no-any-return]


def test_a_node_running_a_long_task_is_never_drained_while_the_task_runs(cluster: Cluster, tmp_path: Any) -> None:
    b = cluster.add_node(labels={"spindle.dev/group": "cpu"})
    flag = str(tmp_path / "started")
    ref = hold.options(scheduling_strategy=on(b.node_id)).remote(flag, 6.0)
    wait_until(lambda: os.path.exists(flag), 60, "the long task to start")
    drain(cluster, b.node_id)
    drain(cluster, b.node_id)  # idempotent
    assert row(cluster, b.node_id)["state"] == "DRAINING"
    seen = []
    while True:
        ready, _ = spindle.wait([ref], timeout=0)
        s = status(cluster, b.node_id)
        if ready:
            break
        seen.append(s)
        assert s["drained"] is False, s  # checked again and again while the task runs
        time.sleep(0.2)
    assert len(seen) >= 5 and any("running task" in s["reason"] for s in seen)
    assert spindle.get(ref) == b.node_id
    wait_until(lambda: status(cluster, b.node_id)["drained"], 15, "the node to report drained once idle")
    assert status(cluster, b.node_id)["reason"].startswith("idle")
    cluster.kill(b)  # what the provider does next: nothing is lost
    cluster.wait_dead(b)
    assert status(cluster, b.node_id) == {"node_id": b.node_id, "state": "DEAD", "drained": True,
                                          "reason": "the node is gone"}


def test_a_draining_node_gets_no_new_tasks_or_actors_and_undrain_gives_it_work_again(cluster: Cluster) -> None:
    b = cluster.add_node()
    drain(cluster, b.node_id)
    wait_until(lambda: status(cluster, b.node_id)["drained"], 15, "the idle node to report drained")
    # soft affinity to a draining node runs elsewhere; hard affinity waits instead of running there
    assert {spindle.get(where.options(scheduling_strategy=on(b.node_id, soft=True)).remote(), timeout=60)
            for _ in range(5)} == {cluster.local.node_id}
    actor = Pinned.options(scheduling_strategy=on(b.node_id, soft=True)).remote()  # type: ignore[attr-defined]
    assert spindle.get(actor.node.remote(), timeout=60) == cluster.local.node_id
    spindle.kill(actor)
    pinned = where.options(scheduling_strategy=on(b.node_id)).remote()
    ready, _ = spindle.wait([pinned], timeout=2)
    assert ready == []
    code, body = call(cluster, "/api/autoscaler/undrain", {"node_id": b.node_id})
    assert code == 200 and body == {"node_id": b.node_id, "state": "ALIVE"}
    assert spindle.get(pinned, timeout=60) == b.node_id
    assert status(cluster, b.node_id)["drained"] is False and row(cluster, b.node_id)["state"] == "ALIVE"


def test_a_node_holding_the_only_copy_of_a_referenced_object_is_drained_only_once_it_is_released(
        cluster: Cluster) -> None:
    b = cluster.add_node()
    ref = big_array.options(scheduling_strategy=on(b.node_id)).remote()
    spindle.wait([ref], timeout=60, fetch_local=False)
    wait_until(lambda: any("only copy" in r for r in row(cluster, b.node_id)["busy_reasons"]), 15,
               "the node to report the object")
    drain(cluster, b.node_id)
    for _ in range(10):
        s = status(cluster, b.node_id)
        assert s["drained"] is False, s
        time.sleep(0.2)
    assert "only copy of 1 referenced object" in status(cluster, b.node_id)["reason"]
    del ref  # the owner frees it on the node
    wait_until(lambda: status(cluster, b.node_id)["drained"], 30, "the node to be drained once the object is freed")


def test_past_the_deadline_a_busy_node_counts_as_drained_and_its_task_is_retried_elsewhere(
        cluster: Cluster, tmp_path: Any) -> None:
    b = cluster.add_node()
    flag = str(tmp_path / "started")
    ref = hold.options(scheduling_strategy=on(b.node_id, soft=True), max_retries=1).remote(flag, 8.0)
    wait_until(lambda: os.path.exists(flag), 60, "the task to start")
    drain(cluster, b.node_id, deadline_s=1.0)
    wait_until(lambda: status(cluster, b.node_id)["drained"], 15, "the deadline to pass")
    assert "deadline passed" in status(cluster, b.node_id)["reason"]
    cluster.kill(b)  # the provider removes it: the node-loss machinery retries the task on a live node
    assert spindle.get(ref, timeout=120) == cluster.local.node_id


@spindle.remote
def brief() -> str:
    time.sleep(0.1)
    return spindle.get_runtime_context().get_node_id()


def test_a_steady_stream_of_tasks_moves_off_a_draining_node_so_it_drains_long_before_its_deadline(
        cluster: Cluster) -> None:
    b = cluster.add_node()
    stop = threading.Event()
    seen: list[str] = []

    def stream() -> None:  # two tasks at a time, so the driver keeps a lease on each node
        while not stop.is_set():
            seen.extend(spindle.get([brief.remote(), brief.remote()], timeout=60))

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    try:
        wait_until(lambda: b.node_id in seen, 60, "the stream to use the second node")
        drain(cluster, b.node_id, deadline_s=600)
        wait_until(lambda: status(cluster, b.node_id)["drained"], 30, "the node to drain while the stream goes on")
        assert status(cluster, b.node_id)["reason"].startswith("idle")
        count = len(seen)
        wait_until(lambda: len(seen) > count + 10, 60, "the stream to go on")
        assert set(seen[count:]) == {cluster.local.node_id}  # nothing more runs on the draining node
    finally:
        stop.set()
        t.join(timeout=60)
