"""The state API, logs, SSE feed and metrics of a real cluster running real tasks and actors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.state.conftest import Cluster, eventually

DRIVER = """
import os, sys, time, spindle

@spindle.remote
def square(i):
    print("square says", i)
    return i * i

@spindle.remote
def explode():
    raise KeyError("no such key: spindle-test")

@spindle.remote
def linger(path):
    while not os.path.exists(path):
        time.sleep(0.05)
    return "done"

@spindle.remote
class Keeper:
    def ping(self):
        return "pong"

spindle.init(address=sys.argv[1])
assert spindle.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
try:
    spindle.get(explode.remote())
except KeyError:
    pass
k = Keeper.options(name="keeper").remote()
assert spindle.get(k.ping.remote()) == "pong"
ref = linger.remote(sys.argv[2])
print("READY", flush=True)
assert spindle.get(ref) == "done"
print("DONE", flush=True)
sys.stdin.read()  # keep the driver (and its actor) alive until the test closes stdin
"""


@pytest.fixture(scope="module")
def workload(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A driver that ran tasks, a failing task and an actor, and keeps ``linger`` running until the flag file."""
    flag = str(tmp_path_factory.mktemp("flag") / "release")
    env = {**os.environ, "SPINDLE_TOKEN": cluster.token}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER), cluster.procs.head_address, flag],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        line = ""
        while "READY" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "the driver exited early"
        yield flag
    finally:
        open(flag, "w").close()
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_every_task_is_listed_with_its_function_state_node_and_worker(cluster: Cluster, workload: str) -> None:
    # the driver's and the workers' events arrive separately (each flushes every second): wait for the workers'
    squares = eventually(lambda: len(rows := cluster.rows("tasks", filter_keys=["name", "state"],
                                                          filter_predicates=["=", "="],
                                                          filter_values=["square", "FINISHED"], limit=1000)) == 20
                         and rows, what="20 finished square tasks")
    assert all(r["node_id"] and r["worker_id"] and r["worker_pid"] and r["type"] == "NORMAL_TASK" for r in squares)
    assert cluster.rows("tasks", filter_keys="name", filter_predicates="=", filter_values="square", limit=5).__len__() == 5
    detail = cluster.rows("tasks", filter_keys="name", filter_predicates="=", filter_values="square", limit=1,
                          detail="true")[0]
    assert detail["required_resources"] == {"CPU": 1.0} and detail["creation_time_ms"] <= detail["start_time_ms"]
    wanted = {"explode", "linger", "Keeper.ping", "Keeper.__init__"}
    eventually(lambda: wanted <= {r["name"] for r in cluster.rows("tasks", filter_keys="name", filter_predicates="!=",
                                                                  filter_values="square", limit=1000)},
               what=f"tasks {wanted}")


def test_a_failed_task_shows_its_traceback_in_the_errors(cluster: Cluster, workload: str) -> None:
    def find() -> list[dict[str, object]]:
        return [e for e in cluster.get("/api/spindle/errors").json()["errors"] if e["name"] == "explode"]
    [err] = eventually(find, what="the explode error")
    assert err["error_type"] == "KeyError"
    assert "no such key: spindle-test" in str(err["message"])
    assert "Traceback (most recent call last)" in str(err["traceback"]) and "in explode" in str(err["traceback"])
    [row] = cluster.rows("tasks", filter_keys="name", filter_predicates="=", filter_values="explode", detail="1")
    assert row["state"] == "FAILED" and row["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert "spindle-test" in row["error_message"]


def test_the_worker_running_linger_names_it_and_summaries_count_by_function(cluster: Cluster, workload: str) -> None:
    busy = eventually(lambda: [w for w in cluster.rows("workers") if w["current_task_name"] == "linger"],
                      what="a worker running linger")
    assert busy[0]["worker_type"] == "WORKER" and busy[0]["pid"] > 0
    summary = cluster.get("/api/v0/tasks/summarize").json()["data"]["result"]["node_id_to_summary"]["cluster"]["summary"]
    assert summary["square"]["state_counts"] == {"FINISHED": 20}
    assert summary["explode"]["state_counts"] == {"FAILED": 1}
    assert summary["linger"]["state_counts"] == {"RUNNING": 1}
    drivers = [w for w in cluster.rows("workers") if w["worker_type"] == "DRIVER"]
    assert len(drivers) == 1 and drivers[0]["is_alive"] is True


def test_actors_nodes_and_jobs_are_listed_with_rays_fields(cluster: Cluster, workload: str) -> None:
    # its pid comes with the agent's next report (every second)
    [actor] = eventually(lambda: [a for a in cluster.rows("actors", filter_keys="name", filter_predicates="=",
                                                          filter_values="keeper") if a["pid"]],
                         what="the keeper actor with its pid")
    assert actor["class_name"] == "Keeper" and actor["state"] == "ALIVE" and actor["pid"] > 0
    summary = cluster.get("/api/v0/actors/summarize").json()["data"]["result"]["node_id_to_summary"]["cluster"]
    assert summary["summary"]["Keeper"]["state_counts"] == {"ALIVE": 1}
    [node] = eventually(lambda: [n for n in cluster.rows("nodes") if n["cpu_percent"] is not None], what="usage")
    assert node["state"] == "ALIVE" and node["is_head_node"] is True and node["resources_total"]["CPU"] == 2.0
    assert 0 < node["mem_used_bytes"] < node["mem_total_bytes"]
    jobs = cluster.rows("jobs")
    assert [j["status"] for j in jobs if j["type"] == "DRIVER"] == ["RUNNING"]


def test_the_log_of_a_task_is_found_by_its_task_id(cluster: Cluster, workload: str) -> None:
    rows = eventually(lambda: cluster.rows("tasks", filter_keys=["name", "state"], filter_predicates=["=", "="],
                                           filter_values=["square", "FINISHED"], limit=1), what="a finished square task")
    r = cluster.get("/api/v0/logs/file", task_id=rows[0]["task_id"], lines=-1)
    assert r.status_code == 200, r.text
    assert "square says" in r.text
    listing = cluster.get("/api/v0/logs", node_id=rows[0]["node_id"]).json()["data"]["result"]
    assert any(name.endswith(".out") for name in listing["worker_out"]) and listing["agent"] == ["agent.log"]
    missing = cluster.get("/api/v0/logs/file", node_id=rows[0]["node_id"], filename="nope.log")
    assert missing.status_code == 404 and "agent.log" in missing.json()["error"]
    bad = cluster.get("/api/v0/logs/file", node_id=rows[0]["node_id"], filename="../../etc/passwd")
    assert bad.status_code == 404 and "not a log file name" in bad.json()["error"]


def test_a_log_stream_follows_appended_lines(cluster: Cluster, workload: str) -> None:
    [node] = cluster.rows("nodes")
    path = os.path.join(cluster.procs.session_dir, "logs", "extra.log")
    with open(path, "w") as f:
        f.write("old line\nlast line\n")
    with requests.get(cluster.url + "/api/v0/logs/stream", headers=cluster.auth, stream=True, timeout=30,
                      params={"node_id": node["node_id"], "filename": "extra.log", "lines": 1}) as r:
        assert r.status_code == 200
        chunks = r.iter_content(chunk_size=None)
        assert next(chunks) == b"last line\n"
        with open(path, "a") as f:
            f.write("appended later\n")
        assert next(chunks) == b"appended later\n"


def test_the_event_stream_sends_the_overview_and_task_summaries(cluster: Cluster, workload: str) -> None:
    with requests.get(cluster.url + "/api/spindle/events", headers=cluster.auth, stream=True, timeout=30) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        events: list[str] = []
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                events.append(line[7:])
            if {"overview", "tasks"} <= set(events):
                break
    overview = cluster.get("/api/spindle/overview").json()
    assert overview["cluster"]["resources_total"]["CPU"] == 2.0 and overview["cluster"]["num_nodes_alive"] == 1
    assert overview["nodes"][0]["samples"] and overview["workers"]


def test_metrics_parse_with_prometheus_client_and_count_tasks_by_function(cluster: Cluster, workload: str) -> None:
    def scrape() -> dict[str, list[tuple[dict[str, str], float]]]:
        r = requests.get(cluster.metrics_url + "/metrics", headers=cluster.auth, timeout=30)
        assert r.status_code == 200
        return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(r.text)}
    families = eventually(lambda: (m := scrape()) and any(
        labels == {"state": "FINISHED", "name": "square"} and v == 20 for labels, v in m["spindle_tasks"]) and m,
        what="20 finished squares in the metrics")
    assert ({"resource": "CPU"}, 2.0) in families["spindle_cluster_resources_total"]
    assert ({"state": "ALIVE"}, 1.0) in families["spindle_actors"]
    assert ({"state": "ALIVE"}, 1.0) in families["spindle_cluster_nodes"]
    assert any(v >= 2 for _, v in families["spindle_node_workers"])
    assert any(labels == {"status": "RUNNING"} for labels, _ in families["spindle_jobs"])


def test_a_wrong_or_missing_token_is_refused_by_the_state_api_and_the_metrics(cluster: Cluster) -> None:
    for url in (cluster.url + "/api/v0/tasks", cluster.url + "/api/spindle/overview", cluster.metrics_url + "/metrics"):
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401


def test_bad_queries_get_a_clear_400(cluster: Cluster) -> None:
    r = cluster.get("/api/v0/tasks", limit="-1")
    assert r.status_code == 400 and "limit=-1 must be between 1" in r.json()["error"]
    r = cluster.get("/api/v0/nodes", filter_keys="colour", filter_predicates="=", filter_values="red")
    assert r.status_code == 400 and "cannot filter nodes by 'colour'" in r.json()["error"]
    r = cluster.get("/api/v0/logs/file", task_id="ffff")
    assert r.status_code == 404 and "no task 'ffff'" in r.json()["error"]


def test_finishing_the_lingering_task_frees_its_worker(cluster: Cluster, workload: str) -> None:
    open(workload, "w").close()
    eventually(lambda: not [w for w in cluster.rows("workers") if w["current_task_name"] == "linger"],
               what="linger to finish")


def _cli(cluster: Cluster, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINDLE_TOKEN": cluster.token}
    return subprocess.run([sys.executable, "-m", "spindle._cli", *argv, "--address", cluster.url], env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_lists_filters_summarizes_and_prints_a_tasks_log(cluster: Cluster, workload: str) -> None:
    eventually(lambda: len(cluster.rows("tasks", filter_keys=["name", "state"], filter_predicates=["=", "="],
                                        filter_values=["square", "FINISHED"], limit=100)) == 20, what="20 squares")
    out = _cli(cluster, "list", "tasks", "--filter", "name=square", "--filter", "state!=RUNNING", "--limit", "3",
               "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3 and {r["name"] for r in rows} == {"square"}
    assert "pass --limit for more" in out.stderr
    table = _cli(cluster, "list", "actors", "--filter", "class_name=Keeper")
    assert table.returncode == 0 and "CLASS_NAME" in table.stdout and "Keeper" in table.stdout
    summary = _cli(cluster, "summary", "tasks")
    assert summary.returncode == 0 and "square" in summary.stdout and "FINISHED:20" in summary.stdout
    logs = _cli(cluster, "logs", "--task-id", rows[0]["task_id"], "--tail", "-1")
    assert logs.returncode == 0 and "square says" in logs.stdout
    got = _cli(cluster, "get", "tasks", rows[0]["task_id"])
    assert got.returncode == 0 and json.loads(got.stdout)["task_id"] == rows[0]["task_id"]
    bad = _cli(cluster, "list", "tasks", "--filter", "nonsense")
    assert bad.returncode == 2 and "is not KEY=VALUE or KEY!=VALUE" in bad.stderr
    missing = _cli(cluster, "get", "actors", "00ff")
    assert missing.returncode == 1 and "no actor '00ff'" in missing.stderr
    for argv in (["list", "--help"], ["summary", "--help"], ["logs", "--help"], ["get", "--help"]):
        assert subprocess.run([sys.executable, "-m", "spindle._cli", *argv], capture_output=True,
                              timeout=30).returncode == 0


def test_the_sdk_speaks_rays_signatures(cluster: Cluster, workload: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from spindle.util import state

    monkeypatch.setenv("SPINDLE_TOKEN", cluster.token)
    rows = eventually(lambda: state.list_tasks(cluster.url, filters=[("name", "=", "square"), ("state", "=", "FINISHED")],
                                               limit=2), what="finished square tasks")
    assert len(rows) == 2 and rows[0].name == "square" and rows[0]["state"] == "FINISHED"
    task = state.get_task(rows[0].task_id, address=cluster.url)
    assert task is not None and task.required_resources == {"CPU": 1.0}
    [actor] = state.list_actors(cluster.url, filters=[("name", "=", "keeper")], detail=True)
    assert state.get_actor(actor.actor_id, address=cluster.url).class_name == "Keeper"  # type: ignore[union-attr]
    assert state.summarize_tasks(cluster.url)["node_id_to_summary"]["cluster"]["summary"]["square"][
        "state_counts"]["FINISHED"] == 20
    assert state.summarize_actors(cluster.url)["node_id_to_summary"]["cluster"]["summary"]["Keeper"]
    [node] = state.list_nodes(cluster.url)
    assert node.is_head_node and state.list_workers(cluster.url, filters=[("worker_type", "=", "DRIVER")])
    assert "worker_out" in state.list_logs(cluster.url, node_id=node.node_id)
    assert "square says" in "".join(state.get_log(cluster.url, task_id=rows[0].task_id, tail=-1))
    assert state.list_jobs(cluster.url)[0]["type"] == "DRIVER"
    with pytest.raises(ValueError, match="give \\(key, '=' or '!=', value\\)"):
        state.list_tasks(cluster.url, filters=[("name", "~", "x")])
    with pytest.raises(RuntimeError, match="status 401"):
        monkeypatch.setenv("SPINDLE_TOKEN", "wrong")
        state.list_nodes(cluster.url)
