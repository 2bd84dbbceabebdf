"""Autoscaling on a real Kubernetes cluster (kind): workers appear for queued work and go once idle, and a
worker still running a task is never removed by a scale-down.

An autoscaled SpindleCluster starts with no workers (0..2 one-CPU workers) and a head that offers no CPU
to tasks, so every task needs a worker. A driver in the head pod submits a long task and then a short
one: the first worker runs the long task, the second the short one; the second then idles past the idle
timeout and is drained and deleted while the first keeps running its task, and goes only once idle too.
The times from demand to a running worker pod and from idle to a removed pod are printed (and checked
against generous bounds only, never tight ones: performance lives in bench/).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
import yaml

from .conftest import NAMESPACE
from .kind import Kind, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAME = "autoscaled"
CLUSTER = f"spindle.dev/cluster={NAME}"
HEAD = f"{CLUSTER},spindle.dev/node-type=head"
WORKERS = f"{CLUSTER},spindle.dev/node-type=worker"
IDLE_TIMEOUT = 20
LONG_TASK_S = 150
SLOW = 300


def container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "spindle:0.1.0",
            "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}


CLUSTER_YAML = yaml.safe_dump({
    "apiVersion": "spindle.dev/v1alpha1",
    "kind": "SpindleCluster",
    "metadata": {"name": NAME},
    "spec": {
        "autoscalerOptions": {"enabled": True, "idleTimeoutSeconds": IDLE_TIMEOUT, "upscalingMode": "Default"},
        "headGroupSpec": {"startParams": {"num-cpus": "0"},
                          "template": {"spec": {"containers": [container("spindle-head")]}}},
        "workerGroupSpecs": [{"groupName": "workers", "replicas": 0, "minReplicas": 0, "maxReplicas": 2,
                              "template": {"spec": {"containers": [container("spindle-worker")]}}}],
    },
})

DRIVER = textwrap.dedent(f"""
    import time, spindle
    spindle.init(address="auto")

    @spindle.remote(num_cpus=1)
    def work(seconds):
        time.sleep(seconds)
        return spindle.get_runtime_context().get_node_id()

    print("submitted", flush=True)
    long = work.remote({LONG_TASK_S})
    time.sleep(1)  # the long task is first in line for the first worker
    short = work.remote(5)
    print("short done", spindle.get(short), flush=True)
    print("long done", spindle.get(long), flush=True)
""")


class Lines:
    """A process's output lines with the monotonic time each arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen.append((time.monotonic(), line.rstrip("\n")))

    def at(self, prefix: str) -> float | None:
        return next((t for t, line in self.seen if line.startswith(prefix)), None)

    def text(self) -> str:
        return "\n".join(line for _, line in self.seen)


def running(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("state", {}).get("running") for s in statuses)


def poll(probe: Any, what: str, timeout: float, describe: Any = None) -> Any:
    """Fixed half-second polling, so the measured times are not stretched by backoff."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = describe() if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{seen}")
        time.sleep(0.5)


def all_pods(kind: Kind) -> dict[str, dict[str, Any]]:
    """Worker pods by name, terminating ones included."""
    items = kind.get("pods", "-n", NAMESPACE, "-l", WORKERS)["items"]
    return {p["metadata"]["name"]: p for p in items}


def live(pods: dict[str, dict[str, Any]]) -> set[str]:
    return {n for n, p in pods.items() if not p["metadata"].get("deletionTimestamp")}


def test_workers_come_for_queued_work_and_go_once_idle_but_never_while_running_a_task(kind: Kind) -> None:
    describe = lambda: kind.kubectl("get", "spc,pods,events", "-n", NAMESPACE, "-o", "wide",  # noqa: E731
                                    check=False).stdout
    kind.apply(NAMESPACE, CLUSTER_YAML)
    try:
        head = wait_for(lambda: [p for p in kind.pods(NAMESPACE, HEAD) if running(p)], "a running head pod", SLOW,
                        describe=describe)[0]["metadata"]["name"]
        wait_for(lambda: (kind.get("spc", NAME, "-n", NAMESPACE).get("status") or {}).get("state") == "Ready",
                 f"{NAME} Ready with no workers", SLOW, describe=describe)
        assert all_pods(kind) == {}

        env = {**kind.env, "KUBECONFIG": str(kind.kubeconfig)}
        proc = subprocess.Popen(["kubectl", "exec", "-n", NAMESPACE, head, "--", "python", "-u", "-c", DRIVER],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(proc)
        try:
            demand = poll(lambda: out.at("submitted"), "the driver to submit", SLOW, out.text)
            first = poll(lambda: [n for n, p in all_pods(kind).items() if running(p)], "a running worker pod",
                         SLOW, describe)
            to_first = time.monotonic() - demand
            both = poll(lambda: (r := [n for n, p in all_pods(kind).items() if running(p)]) and len(r) == 2 and r,
                        "two running worker pods", SLOW, describe)
            to_both = time.monotonic() - demand

            # The short task ends on the second worker; that worker goes after the idle timeout while the
            # first still runs the long task.
            idle = poll(lambda: out.at("short done"), "the short task", SLOW, out.text)
            gone = poll(lambda: (left := live(all_pods(kind))) and len(left) == 1 and left,
                        "the idle worker's pod deleted", SLOW, describe)
            to_delete_idle = time.monotonic() - idle
            [survivor] = gone
            assert survivor in both
            assert proc.poll() is None and out.at("long done") is None, "the long task ended before the check"
            poll(lambda: set(all_pods(kind)) == {survivor}, "the idle worker's pod gone", SLOW, describe)
            to_gone_idle = time.monotonic() - idle
            events = kind.kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                                  f"involvedObject.name={NAME}", "-o", "custom-columns=R:.reason,M:.message").stdout
            assert "DrainingWorker" in events and "ScaledDown" in events, events

            # The busy worker survives for as long as its task runs.
            proc.wait(timeout=LONG_TASK_S + SLOW)
            assert proc.returncode == 0, out.text()
            finished = out.at("long done")
            assert finished is not None, out.text()
            assert survivor in live(all_pods(kind)), "the worker running the long task was removed under it"
        finally:
            if proc.poll() is None:
                proc.kill()
        poll(lambda: not live(all_pods(kind)), "the last worker's pod deleted once idle", SLOW, describe)
        to_delete_last = time.monotonic() - finished
        poll(lambda: not all_pods(kind), "the last worker's pod gone", SLOW, describe)
        to_gone_last = time.monotonic() - finished
        spec = kind.get("spc", NAME, "-n", NAMESPACE)
        assert spec["spec"]["workerGroupSpecs"][0]["replicas"] == 0
        print(f"\nautoscaling in kind: demand -> first running worker pod {to_first:.1f}s (first pod {first[0]}), "
              f"-> both {to_both:.1f}s; idle -> pod deleted {to_delete_idle:.1f}s, -> pod gone {to_gone_idle:.1f}s "
              f"(idle timeout {IDLE_TIMEOUT}s); last worker idle -> deleted {to_delete_last:.1f}s, "
              f"-> gone {to_gone_last:.1f}s", file=sys.stderr)
        assert to_delete_idle >= IDLE_TIMEOUT - 2  # never before the idle timeout (the line arrives a bit late)
    finally:
        kind.kubectl("delete", "spc", NAME, "-n", NAMESPACE, "--wait=true", check=False, timeout=300)
