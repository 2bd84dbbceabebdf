"""A job on a real two-node cluster (network namespaces): submitted from outside over the job API,
its driver runs tasks on both worker nodes and calls an actor, and its working_dir crosses the network."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
import spindle

@spindle.remote
def where():
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


@pytest.fixture(scope="module")
def cluster(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("jobs-multinode")
    head, a, b = netns_hosts_module(3)
    start_node(TOKEN, head, ["--head", "--port", "6380", "--num-cpus", "0", "--dashboard-port", "8265"], tmp)
    start_node(TOKEN, a, ["--address", f"{head.ip}:6380", "--num-cpus", "2"], tmp)
    start_node(TOKEN, b, ["--address", f"{head.ip}:6380", "--num-cpus", "2"], tmp)
    yield f"http://{head.ip}:8265"


def _client(url: str) -> JobSubmissionClient:
    deadline, delay = time.monotonic() + 60, 0.1
    while True:
        try:
            return JobSubmissionClient(url, token=TOKEN)
        except ConnectionError:
            assert time.monotonic() < deadline, f"the head's job API at {url} did not come up within 60 s"
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def test_a_submitted_driver_uses_tasks_on_both_nodes_and_an_actor(cluster: str, tmp_path: Path) -> None:
    client = _client(cluster)
    (tmp_path / "tasks_lib.py").write_text(LIB)
    (tmp_path / "driver.py").write_text(DRIVER)
    sid = client.submit_job(entrypoint="python driver.py", runtime_env={"working_dir": str(tmp_path)})
    deadline = time.monotonic() + 180
    while not (status := client.get_job_status(sid)).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(sid)
        time.sleep(0.2)
    logs = client.get_job_logs(sid)
    assert status == JobStatus.SUCCEEDED, f"{client.get_job_info(sid).message}\n{logs}"
    assert "nodes 3 task nodes 2 actor total 10" in logs
    info = client.get_job_info(sid)
    assert info.driver_exit_code == 0 and info.driver_info is not None
    assert info.driver_info.node_ip_address == cluster.split("//")[1].split(":")[0]
