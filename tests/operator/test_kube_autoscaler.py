"""The autoscaler end to end without a kubelet: a real API server, the operator, and a real Spindle head.

The head and its node agents run as processes on this machine; the test plays the kubelet: for every worker
pod the operator creates it marks the pod running and starts a node agent carrying the pod's node labels
(what the operator's ``SPINDLE_NODE_LABELS`` gives a real pod), and when the operator deletes a pod it
stops that agent. The operator reaches the head through its HTTP API with the token from the cluster's
Secret, exactly as in a cluster. What is checked is what the operator writes: replicas, workersToDelete
(seen through its events), status.autoscaler, and that a worker running a task is never deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from spindle_operator._settings import AutoscalerSettings

from .conftest import Admin, OperatorThread, spindle_cluster, wait_for

pytestmark = pytest.mark.k8s

SPINDLE = str(Path(sys.executable).with_name("spindle"))
SLOW = 120.0  # processes start, agents register, tasks run: generous, a slow machine is only slower


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Kubelet:
    """A head process for the cluster and one node agent process per worker pod."""

    def __init__(self, admin: Admin, tmp: Path) -> None:
        self.admin, self.tmp, self.token = admin, tmp, ""
        self.port, self.dashboard = free_port(), free_port()
        self.env = {**os.environ, "SPINDLE_TEMP_DIR": str(tmp / "spindle"), "SPINDLE_NODE_IP": "127.0.0.1"}
        self.head: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, args: list[str], labels: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        env = {**self.env, "SPINDLE_NODE_LABELS": json.dumps(labels)}
        with (self.tmp / log).open("ab") as out:
            return subprocess.Popen([SPINDLE, "start", *args, "--block"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_head(self, token: str) -> None:
        self.token = self.env["SPINDLE_TOKEN"] = token
        self.head = self._spawn(["--head", "--port", str(self.port), "--dashboard-port", str(self.dashboard),
                                 "--num-cpus", "0"], {"spindle.dev/group": "head"}, "head.log")
        http = urllib3.PoolManager()

        def answers() -> bool:
            assert self.head is not None and self.head.poll() is None, (self.tmp / "head.log").read_text()
            try:
                r = http.request("GET", f"{self.url}/api/autoscaler/state", timeout=2.0, retries=False,
                                 headers={"Authorization": f"Bearer {self.token}"})
            except urllib3.exceptions.HTTPError:
                return False
            return r.status == 200

        wait_for(answers, "the head's autoscaler API", SLOW)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    def sync(self) -> set[str]:
        """Run an agent for every worker pod, stop the agents of deleted pods; the running pod names."""
        pods = {p.metadata.name: p for p in self.admin.pods("worker")}
        for name, pod in pods.items():
            if name not in self.agents:
                self.admin.make_ready(pod)
                labels = {"spindle.dev/pod-name": name, "spindle.dev/group": pod.metadata.labels["spindle.dev/group"]}
                self.agents[name] = self._spawn(["--address", f"127.0.0.1:{self.port}", "--num-cpus", "1"],
                                                labels, f"{name}.log")
        for name in [n for n in self.agents if n not in pods]:
            stop(self.agents.pop(name))
        return set(pods)

    def close(self) -> None:
        for proc in self.agents.values():
            stop(proc)
        if self.head is not None:
            stop(self.head)


@contextlib.contextmanager
def autoscaled_cluster(admin: Admin, kubeconfig: str, tmp: Path, *, idle_timeout: int) -> Iterator[Kubelet]:
    """Operator + cluster (0..2 one-CPU workers, a head with no CPU for tasks) + head process."""
    admin.create_cluster(spindle_cluster(
        {"groupName": "workers", "replicas": 0, "minReplicas": 0, "maxReplicas": 2, "startParams": {"num-cpus": "1"},
         "template": {"spec": {"containers": [{"name": "spindle", "image": "spindle:test"}]}}},
        headGroupSpec={"startParams": {"num-cpus": "0"},
                       "template": {"spec": {"containers": [{"name": "spindle", "image": "spindle:test"}]}}},
        autoscalerOptions={"enabled": True, "idleTimeoutSeconds": idle_timeout, "drainTimeoutSeconds": 300},
    ))
    kubelet = Kubelet(admin, tmp)
    op = OperatorThread(admin.ns, kubeconfig, AutoscalerSettings(
        interval_seconds=0.5, head_url=kubelet.url, drain_poll_seconds=0.5)).start()
    try:
        # The operator creates the token Secret; the head process gets the same token, as the head pod would.
        kubelet.start_head(wait_for(lambda: _read_secret(admin), "the cluster's token Secret"))
        [head] = admin.wait_pods(1, 0)[0]
        admin.make_ready(head)
        yield kubelet
    finally:
        op.stop()
        kubelet.close()


def _read_secret(admin: Admin) -> str | None:
    import base64

    try:
        secret = admin.core.read_namespaced_secret("c-spindle-token", admin.ns)
    except Exception:  # noqa: BLE001 - not there yet
        return None
    return base64.b64decode(secret.data["token"]).decode()


def driver(kubelet: Kubelet, code: str) -> subprocess.Popen[str]:
    env = {**kubelet.env, "SPINDLE_ADDRESS": f"127.0.0.1:{kubelet.port}"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


HOLD = """
    import os, sys, time, spindle
    spindle.init(address="auto")

    @spindle.remote(num_cpus=1)
    def hold(release):
        open(release + ".started", "w").close()
        while not os.path.exists(release):
            time.sleep(0.05)
        return spindle.get_runtime_context().get_node_id()

    refs = [hold.remote(path) for path in sys.argv[1:]]
    print("nodes", len(set(spindle.get(refs))), flush=True)
"""


def explain(admin: Admin, kubelet: Kubelet) -> str:
    """What the operator and the head saw, for a failed wait."""
    http = urllib3.PoolManager()
    try:
        state = http.request("GET", f"{kubelet.url}/api/autoscaler/state", timeout=5.0, retries=False,
                             headers={"Authorization": f"Bearer {kubelet.token}"}).data.decode()
    except urllib3.exceptions.HTTPError as exc:
        state = f"(head unreachable: {exc})"
    head_log = (kubelet.tmp / "head.log").read_text()[-3000:] if (kubelet.tmp / "head.log").exists() else ""
    return (f"\ncluster status: {json.dumps(admin.status(), indent=1)}\nevents: {admin.events()}"
            f"\nhead state: {state}\nhead log tail:\n{head_log}")


def wait_explained(admin: Admin, kubelet: Kubelet, check: Any, what: str) -> Any:
    try:
        return wait_for(check, what, SLOW)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}{explain(admin, kubelet)}") from None


def group(admin: Admin) -> dict[str, Any]:
    groups: list[dict[str, Any]] = admin.cluster()["spec"]["workerGroupSpecs"]
    return groups[0]


def test_queued_tasks_scale_a_group_up_and_idle_workers_are_drained_then_deleted(
    admin: Admin, operator_kubeconfig: str, tmp_path: Path
):
    with autoscaled_cluster(admin, operator_kubeconfig, tmp_path, idle_timeout=2) as kubelet:
        releases = [tmp_path / "release-a", tmp_path / "release-b"]
        proc = driver(kubelet, HOLD.replace("sys.argv[1:]", repr([str(r) for r in releases])))
        try:
            # Two one-CPU tasks and a head without CPUs: the operator asks for two workers.
            wait_explained(admin, kubelet, lambda: group(admin).get("replicas") == 2, "replicas raised to 2")
            wait_for(lambda: len(kubelet.sync()) == 2, "two worker pods", SLOW)
            # One step 0 -> 2 (or two, if the driver's demand reached the head in two reports).
            wait_for(lambda: any(r == "ScaledUp" and m.startswith("group workers: ") and m.endswith("-> 2 workers")
                                 for _, r, m in admin.events()), "a ScaledUp event to 2 workers")
            # Both tasks run at once, so on both new workers (one CPU each).
            wait_for(lambda: all(Path(f"{r}.started").exists() for r in releases), "both tasks running", SLOW)
            for r in releases:
                r.touch()
            out, _ = proc.communicate(timeout=SLOW)
            assert proc.returncode == 0, out
            assert "nodes 2" in out
        finally:
            stop(proc)

        # Idle past the timeout: each worker is drained, then listed in workersToDelete and deleted.
        def gone() -> bool:
            return not kubelet.sync() and group(admin).get("replicas") == 0

        wait_explained(admin, kubelet, gone, "both idle workers removed and replicas 0")

        def posted() -> list[str] | None:  # kopf posts events asynchronously
            reasons = [reason for _, reason, _ in admin.events()]
            counts = [reasons.count(r) for r in ("DrainingWorker", "ScaledDown", "WorkersToDelete")]
            return reasons if min(counts) >= 2 else None

        # Each worker: drained, listed in workersToDelete, deleted by the reconcile as listed.
        wait_for(posted, "drain, scale-down and delete events for both workers")
        status = admin.status()["autoscaler"]
        assert status.get("pendingDrains", []) == []
        assert status["lastDecision"] == "workers=0"
        assert (group(admin).get("scaleStrategy") or {}).get("workersToDelete") in (None, [])


def test_a_worker_running_a_task_outlives_the_scale_down_of_an_idle_one(
    admin: Admin, operator_kubeconfig: str, tmp_path: Path
):
    with autoscaled_cluster(admin, operator_kubeconfig, tmp_path, idle_timeout=2) as kubelet:
        quick, slow = tmp_path / "release-quick", tmp_path / "release-slow"
        quick.touch()  # one task ends at once, the other runs until released
        proc = driver(kubelet, HOLD.replace("sys.argv[1:]", repr([str(quick), str(slow)])))
        try:
            wait_explained(admin, kubelet, lambda: len(kubelet.sync()) == 2, "two worker pods")

            def one_left() -> set[str] | None:
                names = kubelet.sync()
                return names if len(names) == 1 else None

            [survivor] = wait_explained(admin, kubelet, one_left, "the idle worker removed")
            assert proc.poll() is None, "the long task ended early"
            # The busy one stays, well past the idle timeout, for as long as its task runs.
            time.sleep(5)
            assert kubelet.sync() == {survivor} and group(admin)["replicas"] == 1
            slow.touch()
            out, _ = proc.communicate(timeout=SLOW)
            assert proc.returncode == 0, out
        finally:
            stop(proc)
        wait_for(lambda: not kubelet.sync(), "the last worker removed once idle", SLOW)
        wait_for(lambda: any(reason == "WorkersToDelete" and survivor in m for _, reason, m in admin.events()),
                 "the survivor deleted as listed in workersToDelete")
