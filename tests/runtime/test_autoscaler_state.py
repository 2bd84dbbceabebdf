"""What the head tells an autoscaler: node labels, pending demand by shape, idleness, over its HTTP API.

Real processes: an embedded cluster (head + agent + workers) plus extra node agents on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import spindle
from spindle.autoscaler.sdk import request_resources
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.runtime._autoscaler_http import call, row, state
from tests.runtime._nodes import Cluster, wait_until


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=1, log_to_driver=False)
    try:
        yield c
    finally:
        c.close()


def demand(c: Cluster) -> dict[tuple[tuple[tuple[str, float], ...], str], tuple[int, bool]]:
    return {(tuple(sorted(d["shape"].items())), d["kind"]): (d["count"], d["infeasible"])
            for d in state(c)["pending_demand"]}


@spindle.remote
def labels_here() -> dict[str, str]:
    return spindle.get_runtime_context().get_node_labels()


@spindle.remote
def hold(path: str, seconds: float) -> str:
    open(path, "w").close()
    time.sleep(seconds)
    return spindle.get_runtime_context().get_node_id()


def test_node_labels_show_in_nodes_the_state_api_and_the_runtime_context(cluster: Cluster) -> None:
    n = cluster.add_node(labels={"spindle.dev/group": "cpu", "spindle.dev/pod-name": "pod-a"})
    listed = next(x for x in spindle.nodes() if x["NodeID"] == n.node_id)
    assert listed["Labels"] == {"spindle.dev/group": "cpu", "spindle.dev/pod-name": "pod-a"}
    assert row(cluster, n.node_id)["labels"] == {"spindle.dev/group": "cpu", "spindle.dev/pod-name": "pod-a"}
    on = NodeAffinitySchedulingStrategy(node_id=n.node_id, soft=False)
    assert spindle.get(labels_here.options(scheduling_strategy=on).remote(), timeout=60) == listed["Labels"]
    head = next(x for x in state(cluster)["nodes"] if x["node_id"] == cluster.local.node_id)
    assert head["is_head_node"] is True and row(cluster, n.node_id)["is_head_node"] is False


def test_labels_come_from_the_environment_and_bad_labels_are_refused_clearly(cluster: Cluster) -> None:
    env = {**os.environ, "SPINDLE_TOKEN": cluster.local.token, "SPINDLE_NODE_LABELS": "[1, 2]"}
    bad = subprocess.run([sys.executable, "-m", "spindle._agent", "--head", cluster.head_address], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "SPINDLE_NODE_LABELS must be a JSON object" in bad.stderr
    env["SPINDLE_NODE_LABELS"] = '{"spindle.dev/group": "env-group", "zone": "a"}'
    proc = subprocess.Popen([sys.executable, "-m", "spindle._agent", "--head", cluster.head_address, "--num-cpus",
                             "0", "--node-ip", "127.0.0.1", "--labels", '{"zone": "b"}'], env=env,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: any(x["Labels"].get("spindle.dev/group") == "env-group" for x in spindle.nodes()
                               if x["Alive"]), 60, "the node with labels from the environment")
        got = next(x for x in spindle.nodes() if x["Labels"].get("spindle.dev/group") == "env-group")
        assert got["Labels"] == {"spindle.dev/group": "env-group", "zone": "b"}  # --labels wins over the env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_queued_tasks_show_as_demand_by_shape_until_they_run(cluster: Cluster, tmp_path: Any) -> None:
    @spindle.remote(num_cpus=64)
    def too_big() -> int:
        return 1

    @spindle.remote(num_cpus=1, resources={"nowhere": 1})
    def waits() -> int:
        return 1

    huge = too_big.remote()
    queued = [waits.remote() for _ in range(3)]
    want = {((("CPU", 64.0),), "task"): (1, True), ((("CPU", 1.0), ("nowhere", 1.0)), "task"): (3, True)}
    wait_until(lambda: all(demand(cluster).get(k) == v for k, v in want.items()), 30, "the demand report")
    spindle.cancel(huge)
    for r in queued:
        spindle.cancel(r)
    wait_until(lambda: not any(k in demand(cluster) for k in want), 30, "the demand to clear")


def test_pending_actors_and_requested_resources_are_demand_and_requests_replace_each_other(cluster: Cluster) -> None:
    @spindle.remote(num_cpus=1, resources={"gpu-ish": 2})
    class Waiting:
        def ping(self) -> int:
            return 1

    a = Waiting.remote()  # type: ignore[attr-defined]
    wait_until(lambda: demand(cluster).get(((("CPU", 1.0), ("gpu-ish", 2.0)), "actor")) == (1, True), 30,
               "the pending actor's demand")
    spindle.kill(a)
    wait_until(lambda: ((("CPU", 1.0), ("gpu-ish", 2.0)), "actor") not in demand(cluster), 30, "the actor to go")

    request_resources(num_cpus=3, bundles=[{"CPU": 2, "special": 1}])
    d = demand(cluster)
    assert d[((("CPU", 1.0),), "request")] == (3, False)
    assert d[((("CPU", 2.0), ("special", 1.0)), "request")] == (1, True)
    assert state(cluster)["requested_resources"] == [{"CPU": 1.0}] * 3 + [{"CPU": 2.0, "special": 1.0}]
    code, body = call(cluster, "/api/autoscaler/request_resources", {"bundles": [{"CPU": 4}]})
    assert code == 200 and body == {"bundles": [{"CPU": 4.0}]}
    assert state(cluster)["requested_resources"] == [{"CPU": 4.0}]
    request_resources()
    assert state(cluster)["requested_resources"] == []
    with pytest.raises(TypeError, match="num_cpus must be a non-negative int"):
        request_resources(num_cpus=-1)
    with pytest.raises(TypeError, match="non-negative numbers"):
        request_resources(bundles=[{"CPU": "many"}])  # type: ignore[dict-item]


def test_a_node_is_busy_while_it_runs_a_task_and_idle_afterwards_with_its_idle_time(cluster: Cluster,
                                                                                     tmp_path: Any) -> None:
    n = cluster.add_node(labels={"spindle.dev/group": "cpu"})
    flag = str(tmp_path / "started")
    ref = hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n.node_id, soft=False)).remote(
        flag, 3.0)
    wait_until(lambda: os.path.exists(flag), 60, "the task to start")
    wait_until(lambda: any("running task" in r for r in row(cluster, n.node_id)["busy_reasons"]), 10,
               "the node to report its running task")
    assert row(cluster, n.node_id)["idle_s"] is None
    assert spindle.get(ref, timeout=60) == n.node_id
    wait_until(lambda: row(cluster, n.node_id)["idle_s"] is not None, 10, "the node to report idle")
    first = row(cluster, n.node_id)["idle_s"]
    wait_until(lambda: row(cluster, n.node_id)["idle_s"] > first, 10, "the idle time to grow")
    assert row(cluster, n.node_id)["busy_reasons"] == []


def test_the_autoscaler_api_requires_the_token_and_names_bad_input(cluster: Cluster) -> None:
    code, body = call(cluster, "/api/autoscaler/state", token="wrong")
    assert code == 401 and "token" in body["error"]
    code, body = call(cluster, "/api/autoscaler/drain", {"node_id": "f" * 32})
    assert code == 404 and "no node" in body["error"]
    code, body = call(cluster, "/api/autoscaler/drain", {"deadline_s": 5})
    assert code == 400 and "node_id" in body["error"]
    code, body = call(cluster, "/api/autoscaler/drain", {"node_id": cluster.local.node_id})
    assert code == 400 and "never drained" in body["error"]
    code, body = call(cluster, "/api/autoscaler/request_resources", {"bundles": [{"CPU": -1}]})
    assert code == 400 and "non-negative" in body["error"]
    code, body = call(cluster, f"/api/autoscaler/drain/{'e' * 32}")
    assert code == 404
