"""A job on a real two-node cluster (network namespaces): submitted from outside over the job API,
its driver runs tasks on both worker nodes and calls an actor, and its working_dir crosses the network."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spindle.job_submission import JobStatus, JobSubmissionClient
from tests.netns_harness.spindle_nodes import start_node

TOKEN = "jobs-multinode-token"

DRIVER = '''
import collections, time, spindle
from tasks_lib import where, Counter

spindle.init()
deadline = time.monotonic() + 60  # the worker nodes may still be joining
while len(nodes := [n for n in spindle.nodes() if n["Alive"]]) < 3 and time.monotonic() < deadline:
    time.sleep(0.2)
seen = collections.Counter(spindle.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(20)]))
counter = Counter.remote()
for _ in range(5):
    counter.add.remote(2)
print("nodes", len(nodes), "task nodes", len(seen), "actor total", spindle.get(counter.total.remote()))
'''

LIB = '''
import time

import spindle

@spindle.remote
def where():
    # long enough that one node cannot finish all 20 before the other node's workers (started for the
    # job's working_dir) are up: SPREAD then shows on both nodes however loaded the machine is
    time.sleep(0.3)
    return spindle.get_runtime_context().get_node_id()

@spindle.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self, k):
        self.n += k
    def total(self):
        return self.n
'''


@dataclass
class Cluster:
    url: str
    head: Any
    a: Any
    b: Any  # the only node with the custom resource "special"
    hosts: Any
    tmp: Path


@pytest.fixture(scope="module")
def cluster(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("jobs-multinode")
    head, a, b = netns_hosts_module(3)
    start_node(TOKEN, head, ["--head", "--port", "6380", "--num-cpus", "0", "--dashboard-port", "8265"], tmp)
    start_node(TOKEN, a, ["--address", f"{head.ip}:6380", "--num-cpus", "2"], tmp)
    start_node(TOKEN, b, ["--address", f"{head.ip}:6380", "--num-cpus", "2", "--resources", '{"special": 1}'], tmp)
    yield Cluster(f"http://{head.ip}:8265", head, a, b, netns_hosts_module, tmp)


def _client(url: str) -> JobSubmissionClient:
    deadline, delay = time.monotonic() + 60, 0.1
    while True:
        try:
            return JobSubmissionClient(url, token=TOKEN)
        except ConnectionError:
            assert time.monotonic() < deadline, f"the head's job API at {url} did not come up within 60 s"
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _finish(client: JobSubmissionClient, sid: str) -> tuple[JobStatus, str]:
    deadline = time.monotonic() + 180
    while not (status := client.get_job_status(sid)).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(sid)
        time.sleep(0.2)
    logs = client.get_job_logs(sid)
    assert status == JobStatus.SUCCEEDED, f"{client.get_job_info(sid).message}\n{logs}"
    return status, logs


def test_a_submitted_driver_uses_tasks_on_both_nodes_and_an_actor(cluster: Cluster, tmp_path: Path) -> None:
    client = _client(cluster.url)
    (tmp_path / "tasks_lib.py").write_text(LIB)
    (tmp_path / "driver.py").write_text(DRIVER)
    sid = client.submit_job(entrypoint="python driver.py", runtime_env={"working_dir": str(tmp_path)})
    _, logs = _finish(client, sid)
    assert "nodes 3 task nodes 2 actor total 10" in logs
    info = client.get_job_info(sid)
    assert info.driver_exit_code == 0 and info.driver_info is not None
    assert info.driver_info.node_ip_address == cluster.head.ip  # no entrypoint resources: on the head


def test_an_entrypoint_with_resources_runs_on_the_node_that_has_them_and_its_driver_uses_both_nodes(
        cluster: Cluster, tmp_path: Path) -> None:
    client = _client(cluster.url)
    (tmp_path / "tasks_lib.py").write_text(LIB)
    (tmp_path / "driver.py").write_text(DRIVER)
    sid = client.submit_job(entrypoint="python driver.py", runtime_env={"working_dir": str(tmp_path)},
                            entrypoint_resources={"special": 1})
    _, logs = _finish(client, sid)
    assert "nodes 3 task nodes 2 actor total 10" in logs  # working_dir shipped to node b; tasks on a and b
    info = client.get_job_info(sid)
    assert info.driver_info is not None and info.driver_info.node_ip_address == cluster.b.ip
    assert info.driver_node_id and info.driver_exit_code == 0
    cpu = client.submit_job(entrypoint="python -c \"print('on a worker')\"", entrypoint_num_cpus=1)
    _, logs = _finish(client, cpu)
    placed = client.get_job_info(cpu).driver_info
    assert placed is not None and placed.node_ip_address in (cluster.a.ip, cluster.b.ip)  # the head has 0 CPUs
    assert logs == "on a worker\n"


def test_a_job_that_fits_no_node_waits_pending_and_runs_when_a_node_that_fits_joins(cluster: Cluster) -> None:
    client = _client(cluster.url)
    sid = client.submit_job(entrypoint="python -c \"print('found my accelerator')\"",
                            entrypoint_resources={"accelerator": 1})
    deadline = time.monotonic() + 60
    while "no node in the cluster offers" not in ((info := client.get_job_info(sid)).message or ""):
        assert time.monotonic() < deadline, info
        time.sleep(0.1)
    assert info.status == JobStatus.PENDING and "accelerator" in info.message
    [c] = cluster.hosts(1)
    start_node(TOKEN, c, ["--address", f"{cluster.head.ip}:6380", "--num-cpus", "1", "--resources",
                          '{"accelerator": 1}'], cluster.tmp)
    _, logs = _finish(client, sid)
    assert logs == "found my accelerator\n"
    info = client.get_job_info(sid)
    assert info.driver_info is not None and info.driver_info.node_ip_address == c.ip
