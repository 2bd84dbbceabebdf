"""A burst of tasks on a real cluster: every task reaches the state API, complete, with its times in order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.state.conftest import Cluster, eventually

N = 3000

DRIVER = f"""
import sys, spindle

@spindle.remote
def burst_noop(i):
    return i

spindle.init(address=sys.argv[1])
assert spindle.get([burst_noop.remote(i) for i in range({N})]) == list(range({N}))
spindle.shutdown()  # flushes the driver's last batch
"""


def test_every_task_of_a_burst_reaches_the_state_api_complete_and_in_order(cluster: Cluster) -> None:
    env = {**os.environ, "SPINDLE_TOKEN": cluster.token}
    subprocess.run([sys.executable, "-c", textwrap.dedent(DRIVER), cluster.procs.head_address], env=env, check=True,
                   timeout=600)

    def summary() -> dict[str, int]:
        body = cluster.get("/api/v0/tasks/summarize").json()["data"]["result"]["node_id_to_summary"]["cluster"]
        counts: dict[str, int] = body["summary"].get("burst_noop", {}).get("state_counts", {})
        return counts

    eventually(lambda: summary() == {"FINISHED": N}, timeout=60, what=f"{N} finished burst_noop tasks")
    rows = cluster.rows("tasks", filter_keys="name", filter_predicates="=", filter_values="burst_noop",
                        limit=2 * N, detail="true")
    assert len(rows) == N and len({r["task_id"] for r in rows}) == N
    for r in rows:
        assert r["state"] == "FINISHED" and r["node_id"] and r["worker_id"] and r["worker_pid"]
        assert r["creation_time_ms"] <= r["start_time_ms"] <= r["end_time_ms"], r
        assert r["required_resources"] == {"CPU": 1.0}
    text = requests.get(cluster.metrics_url + "/metrics", headers=cluster.auth, timeout=30).text
    [dropped] = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == "spindle_task_events_dropped_total"]
    assert dropped == 0
