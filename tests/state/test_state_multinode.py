"""The state API, CLI, logs and metrics of a real two-node cluster (network namespaces): what runs on the
worker machine is seen, and its logs read, through the head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.netns_harness.spindle_nodes import start_node
from tests.state.conftest import eventually

pytestmark = pytest.mark.multinode

TOKEN = "state-multinode-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

DRIVER = """
import sys, time, spindle
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy

@spindle.remote
def where(i):
    print("where-marker", i, spindle.get_runtime_context().get_node_id())
    return spindle.get_runtime_context().get_node_id()

@spindle.remote
def fail_remotely():
    raise RuntimeError("failed on the far node")

spindle.init(address=sys.argv[1])
deadline = time.monotonic() + 60
while len([n for n in spindle.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
seen = set(spindle.get([where.options(scheduling_strategy="SPREAD").remote(i) for i in range(16)]))
far = [n["NodeID"] for n in spindle.nodes() if n["Alive"] and n["NodeID"] != spindle.get_runtime_context().get_node_id()]
try:
    spindle.get(fail_remotely.options(scheduling_strategy=NodeAffinitySchedulingStrategy(far[0], soft=False)).remote())
except RuntimeError:
    pass
print("READY", len(seen), flush=True)
sys.stdin.read()
"""


class Cluster:
    def __init__(self, head_ip: str, worker_ip: str):
        self.url = f"http://{head_ip}:8265"
        self.metrics = f"http://{head_ip}:8080/metrics"
        self.head_ip, self.worker_ip = head_ip, worker_ip

    def rows(self, kind: str, **params: Any) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/api/v0/{kind}", headers=AUTH, params=params, timeout=30)
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()["data"]["result"]["result"]
        return result


@pytest.fixture(scope="module")
def cluster(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("state-multinode")
    head, worker = netns_hosts_module(2)
    start_node(TOKEN, head, ["--head", "--port", "6380", "--num-cpus", "1", "--dashboard-port", "8265"], tmp)
    start_node(TOKEN, worker, ["--address", f"{head.ip}:6380", "--num-cpus", "1", "--labels", '{"tier": "far"}'], tmp)
    c = Cluster(head.ip, worker.ip)

    def both_nodes_reported() -> bool:
        try:
            nodes = c.rows("nodes")
        except requests.ConnectionError:
            return False
        return len([n for n in nodes if n["state"] == "ALIVE" and n["cpu_percent"] is not None]) == 2
    eventually(both_nodes_reported, timeout=90, what="two live nodes reporting usage")
    env = {**os.environ, "SPINDLE_TOKEN": TOKEN}
    env.pop("SPINDLE_ADDRESS", None)
    driver = head.popen([sys.executable, "-c", textwrap.dedent(DRIVER), f"{head.ip}:6380"], env=env,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while not line.startswith("READY"):
            line = driver.stdout.readline()
            assert line or driver.poll() is None, "the driver exited early"
        assert line.split() == ["READY", "2"], line
        yield c
    finally:
        driver.stdin.close()
        driver.wait(timeout=30)


def test_both_nodes_are_listed_with_their_usage_and_the_head_marked(cluster: Cluster) -> None:
    nodes = {n["node_ip"]: n for n in cluster.rows("nodes", detail="true")}
    assert set(nodes) == {cluster.head_ip, cluster.worker_ip}
    assert nodes[cluster.head_ip]["is_head_node"] and not nodes[cluster.worker_ip]["is_head_node"]
    for n in nodes.values():
        assert n["state"] == "ALIVE" and n["resources_total"]["CPU"] == 1.0 and n["mem_total_bytes"] > 0
    assert nodes[cluster.worker_ip]["labels"] == {"tier": "far"}
    only = cluster.rows("nodes", filter_keys="node_ip", filter_predicates="=", filter_values=cluster.worker_ip)
    assert [n["node_ip"] for n in only] == [cluster.worker_ip]


def test_tasks_on_both_machines_are_recorded_with_their_node(cluster: Cluster) -> None:
    # the driver's and the workers' events arrive separately (each flushes every second): wait for the workers'
    rows = eventually(lambda: (r := cluster.rows("tasks", filter_keys=["name", "state"], filter_predicates=["=", "="],
                                                 filter_values=["where", "FINISHED"], limit=100)) and len(r) == 16 and r,
                      what="16 finished where tasks")
    node_ips = {n["node_id"]: n["node_ip"] for n in cluster.rows("nodes")}
    assert {node_ips[r["node_id"]] for r in rows} == {cluster.head_ip, cluster.worker_ip}
    workers = cluster.rows("workers")
    assert {w["ip"] for w in workers if w["worker_type"] == "WORKER"} == {cluster.head_ip, cluster.worker_ip}


def test_the_log_of_a_task_on_the_other_machine_is_read_through_the_head(cluster: Cluster) -> None:
    node_ips = {n["node_id"]: n["node_ip"] for n in cluster.rows("nodes")}
    far = eventually(lambda: [r for r in cluster.rows("tasks", filter_keys=["name", "state"],
                                                      filter_predicates=["=", "="], filter_values=["where", "FINISHED"],
                                                      limit=100) if node_ips[r["node_id"]] == cluster.worker_ip],
                     what="a where task finished on the far node")
    r = requests.get(f"{cluster.url}/api/v0/logs/file", headers=AUTH, params={"task_id": far[0]["task_id"],
                                                                                "lines": -1}, timeout=30)
    assert r.status_code == 200, r.text
    assert "where-marker" in r.text and far[0]["node_id"] in r.text
    assert r.headers["X-Spindle-Log-Node"] == far[0]["node_id"]


def test_an_error_on_the_far_node_shows_its_traceback_and_node(cluster: Cluster) -> None:
    def find() -> list[dict[str, Any]]:
        errors = requests.get(f"{cluster.url}/api/spindle/errors", headers=AUTH, timeout=30).json()["errors"]
        return [e for e in errors if e["name"] == "fail_remotely"]
    [err] = eventually(find, what="the fail_remotely error")
    node_ips = {n["node_id"]: n["node_ip"] for n in cluster.rows("nodes")}
    assert node_ips[err["node_id"]] == cluster.worker_ip
    assert err["error_type"] == "RuntimeError" and "failed on the far node" in err["traceback"]


def test_the_cli_lists_the_nodes_and_prints_the_far_nodes_logs(cluster: Cluster) -> None:
    env = {**os.environ, "SPINDLE_TOKEN": TOKEN}
    out = subprocess.run([sys.executable, "-m", "spindle._cli", "list", "nodes", "--format", "json", "--address",
                          cluster.url], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {n["node_ip"] for n in json.loads(out.stdout)} == {cluster.head_ip, cluster.worker_ip}
    listing = subprocess.run([sys.executable, "-m", "spindle._cli", "logs", "--node-ip", cluster.worker_ip,
                              "--address", cluster.url], env=env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "worker_out:" in listing.stdout and "agent.log" in listing.stdout
    summary = subprocess.run([sys.executable, "-m", "spindle._cli", "summary", "tasks", "--address", cluster.url],
                             env=env, capture_output=True, text=True, timeout=60)
    assert summary.returncode == 0 and "FINISHED:16" in summary.stdout and "FAILED:1" in summary.stdout


def test_metrics_on_8080_cover_both_nodes_and_refuse_a_wrong_token(cluster: Cluster) -> None:
    r = requests.get(cluster.metrics, headers=AUTH, timeout=30)
    assert r.status_code == 200
    families = {f.name: f.samples for f in text_string_to_metric_families(r.text)}
    assert {s.labels["node_ip"] for s in families["spindle_node_cpus"]} == {cluster.head_ip, cluster.worker_ip}
    assert [s.value for s in families["spindle_cluster_resources_total"] if s.labels["resource"] == "CPU"] == [2.0]
    assert requests.get(cluster.metrics, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
