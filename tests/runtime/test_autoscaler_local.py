"""The local provider: a head started with ``--autoscale-local MAX`` grows node agents for queued work and
stops them after the idle timeout. Real processes throughout (head, agents it starts, workers, a driver).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import spindle
from spindle import _local_cluster
from spindle.autoscaler.local import HttpHeadApi
from tests.runtime._nodes import wait_until


@pytest.fixture
def autoscaled(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_local_cluster.LocalProcesses, HttpHeadApi]]:
    procs = _local_cluster.start(head=True, num_cpus=0, dashboard_port=0, dashboard_port_fallback=True,
                                 head_args=["--autoscale-local", "2", "--idle-timeout-s", "2"])
    monkeypatch.setenv("SPINDLE_TOKEN", procs.token)
    try:
        spindle.init(address=procs.head_address, log_to_driver=False)
        yield procs, HttpHeadApi(procs.dashboard_address, procs.token)
    finally:
        spindle.shutdown()
        procs.stop()


@spindle.remote(num_cpus=1)
def work(seconds: float) -> tuple[str, float]:
    started = time.time()
    time.sleep(seconds)
    return spindle.get_runtime_context().get_node_id(), started


def local_nodes(api: HttpHeadApi) -> list[dict[str, Any]]:
    return [n for n in api.state()["nodes"] if n["labels"].get("spindle.dev/group") == "local" and n["state"] != "DEAD"]


def test_the_local_provider_grows_from_zero_for_queued_work_and_shrinks_back_after_the_idle_timeout(
        autoscaled: tuple[_local_cluster.LocalProcesses, HttpHeadApi]) -> None:
    procs, api = autoscaled
    assert local_nodes(api) == []
    most = [0]
    done = threading.Event()

    def watch() -> None:  # the number of started nodes never exceeds MAX
        while not done.is_set():
            most[0] = max(most[0], len(local_nodes(api)))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        submitted = time.time()
        results = spindle.get([work.remote(2.0) for _ in range(6)], timeout=240)
        finished = time.time()
        used = {node for node, _ in results}
        started = {n["node_id"]: n for n in local_nodes(api)}
        assert used <= set(started) and len(used) == 2, (used, started)  # the head node has no CPU: all ran on them
        assert all(n["labels"]["spindle.dev/pod-name"].startswith("local-") for n in started.values())
        first_start = min(t for _, t in results)
        removal = wait_until(lambda: local_nodes(api) == [], 120, "the idle nodes to be stopped")
    finally:
        done.set()
        watcher.join()
    assert most[0] == 2
    gone = {n["node_id"]: n["state"] for n in api.state()["nodes"]}
    assert all(gone[n] == "DEAD" for n in used)
    print(f"\nlocal autoscaler: queued -> first task running on a new node {first_start - submitted:.1f} s; "
          f"last task done -> nodes removed {time.time() - finished:.1f} s (idle timeout 2 s; waited {removal:.1f} s)")
    # the cluster still works, and grows again for new work
    assert spindle.get(work.remote(0.1), timeout=120)[0] not in used


@spindle.remote(num_cpus=1, max_retries=0)
def logged(path: str, seconds: float) -> str:
    node = spindle.get_runtime_context().get_node_id()
    with open(path, "a") as f:
        f.write(node + "\n")
    time.sleep(seconds)
    return node


def test_scale_down_removes_the_idle_node_and_the_node_running_a_task_survives_until_it_finishes(
        autoscaled: tuple[_local_cluster.LocalProcesses, HttpHeadApi], tmp_path: Any) -> None:
    _, api = autoscaled
    short_log, long_log = str(tmp_path / "short"), str(tmp_path / "long")
    short = logged.remote(short_log, 0.5)
    long = logged.remote(long_log, 25.0)
    wait_until(lambda: len(local_nodes(api)) == 2, 120, "two nodes for the two queued tasks")
    spindle.get(short, timeout=120)
    wait_until(lambda: os.path.exists(long_log), 120, "the long task to start")
    busy = open(long_log).read().split()[0]
    # the idle node is drained and stopped; the busy one stays while its task runs
    wait_until(lambda: [n["node_id"] for n in local_nodes(api)] == [busy], 60, "the idle node to be removed")
    ready: list[Any] = []
    while not ready:
        assert [n["node_id"] for n in local_nodes(api)] == [busy]
        ready, _ = spindle.wait([long], timeout=0.5)
    assert spindle.get(long) == busy
    assert open(long_log).read().split() == [busy]  # it ran once, never interrupted and retried
    wait_until(lambda: local_nodes(api) == [], 60, "the last node to be removed once idle")
