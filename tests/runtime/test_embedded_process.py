"""``init()`` with no address runs its head and node agent in one process; `spindle start` keeps them apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from spindle import _local_cluster, _procs

PY = sys.executable

DRIVER = """
import json, os, sys, time, psutil, requests, spindle
from spindle import _procs
from spindle._core import api
from spindle.job_submission import JobSubmissionClient

spindle.init(num_cpus=2)
local = api._state["local"]

@spindle.remote
def square(i):
    return i * i

@spindle.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self):
        self.n += 1
        return self.n

assert spindle.get([square.remote(i) for i in range(50)]) == [i * i for i in range(50)]
c = Counter.remote()
assert spindle.get([c.add.remote() for _ in range(5)]) == [1, 2, 3, 4, 5]
roles = sorted(filter(None, (_procs.info(p.pid).role() for p in psutil.Process().children(recursive=True)
                             if _procs.info(p.pid) is not None)))

headers = {"Authorization": "Bearer " + local.token}
def finished_squares():
    r = requests.get(local.dashboard_address + "/api/v0/tasks/summarize", headers=headers, timeout=30).json()
    return r["data"]["result"]["node_id_to_summary"]["cluster"]["summary"].get("square", {}).get("state_counts")
deadline, delay = time.monotonic() + 60, 0.05
while finished_squares() != {"FINISHED": 50}:
    assert time.monotonic() < deadline, finished_squares()
    time.sleep(delay)
    delay = min(delay * 2, 0.5)
nodes = requests.get(local.dashboard_address + "/api/v0/nodes", headers=headers, timeout=30).json()
[node] = nodes["data"]["result"]["result"]

client = JobSubmissionClient(local.dashboard_address, headers=headers)
job = client.submit_job(entrypoint="python -c \\"import spindle; spindle.init(); "
                                   "print('job says', spindle.get(spindle.remote(lambda: 6 * 7).remote()))\\"")
deadline, delay = time.monotonic() + 120, 0.1
while str(client.get_job_status(job)) not in ("JobStatus.SUCCEEDED", "SUCCEEDED", "JobStatus.FAILED", "FAILED"):
    assert time.monotonic() < deadline, client.get_job_status(job)
    time.sleep(delay)
    delay = min(delay * 2, 1.0)
status, logs = str(client.get_job_status(job)), client.get_job_logs(job)
pids = [p.pid for p in local.procs]
spindle.shutdown()
print(json.dumps({"roles": roles, "pids": pids, "node": node["state"], "head": node["is_head_node"],
                  "status": status, "logs": logs, "agent_log": os.path.exists(os.path.join(local.session_dir, "logs",
                                                                                               "agent.log"))}))
"""


def test_an_embedded_cluster_is_one_process_that_runs_tasks_actors_jobs_and_the_state_api() -> None:
    out = subprocess.run([PY, "-c", textwrap.dedent(DRIVER)], capture_output=True, text=True, timeout=400,
                         env={**os.environ, "SPINDLE_ADDRESS": "", "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "head" not in got["roles"] and "agent" not in got["roles"]
    assert got["roles"].count("embedded") == 1 and "worker" in got["roles"]
    assert len(got["pids"]) == 1 and got["node"] == "ALIVE" and got["head"] is True
    assert got["status"].endswith("SUCCEEDED") and "job says 42" in got["logs"]
    assert got["agent_log"]  # the one process logs where the node's agent always did
    assert all(_procs.info(p) is None for p in got["pids"])  # shutdown stopped it


def test_spindle_start_keeps_the_head_and_the_agent_in_separate_processes() -> None:
    saved = os.environ.pop("SPINDLE_ADDRESS", None)
    try:
        procs = _local_cluster.start(num_cpus=1, dashboard_port=-1)
    finally:
        if saved is not None:
            os.environ["SPINDLE_ADDRESS"] = saved
    try:
        roles = sorted(i.role() for i in map(_procs.info, (p.pid for p in procs.procs)) if i is not None)
        assert roles == ["agent", "head"]
    finally:
        procs.stop()


def test_splitting_the_embedded_cluster_on_request_gives_the_two_processes_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDLE_EMBEDDED_SPLIT", "1")
    monkeypatch.delenv("SPINDLE_ADDRESS", raising=False)
    procs = _local_cluster.start(num_cpus=1, dashboard_port=-1, one_process=True)
    try:
        roles = sorted(i.role() for i in map(_procs.info, (p.pid for p in procs.procs)) if i is not None)
        assert roles == ["agent", "head"]
    finally:
        procs.stop()
