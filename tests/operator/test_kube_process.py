"""The real entry point (`python -m spindle_operator`) killed mid-reconcile and restarted: no duplicates.

A ResourceQuota makes "mid-reconcile" deterministic: the first operator creates pods until the quota
rejects the rest (which must show up in the status), is SIGKILLed, the quota is lifted, and a fresh
operator with no memory of the first must create exactly the missing pods.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Admin, spindle_cluster, wait_for, worker_group

pytestmark = pytest.mark.k8s

WORKERS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def operator_process(
    namespace: str | None, kubeconfig: str, log: Path, *, kopf_run: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    url = f"http://127.0.0.1:{free_port()}/healthz"
    scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
    env = dict(os.environ)
    if kopf_run:  # `kopf run -m spindle_operator`: settings come from SPINDLE_OPERATOR_* variables
        argv = [sys.executable, "-m", "kopf", "run", "-m", "spindle_operator", "--standalone", *scope]
        argv += ["--liveness", url]
        env["SPINDLE_OPERATOR_KUBECONFIG"] = kubeconfig
    else:
        argv = [sys.executable, "-m", "spindle_operator", *scope, "--kubeconfig", kubeconfig]
        argv += ["--liveness", url, "--resync-seconds", "5"]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:

        def alive() -> bool:
            assert proc.poll() is None, f"operator exited:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(alive, "the operator's liveness endpoint")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_an_operator_killed_mid_reconcile_is_replaced_without_duplicate_pods(
    admin: Admin, operator_kubeconfig: str, tmp_path: Path
):
    quota = {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "3"}}}
    admin.core.create_namespaced_resource_quota(admin.ns, quota)
    wait_for(lambda: admin.core.read_namespaced_resource_quota("pods", admin.ns).status.hard, "quota status")
    log = tmp_path / "operator.log"

    with operator_process(admin.ns, operator_kubeconfig, log) as (first, _):
        admin.create_cluster(spindle_cluster(worker_group(replicas=WORKERS)))
        status = wait_for(lambda: (s := admin.status()).get("state") == "Failed" and s, "quota failure reported")
        assert "exceeded quota" in status["reason"]
        assert {c["type"]: c["status"] for c in status["conditions"]}["ReplicaFailure"] == "True"
        first.kill()
        first.wait()
    heads, workers = admin.wait_pods(1, 2)
    before = {p.metadata.name for p in heads + workers}

    admin.core.patch_namespaced_resource_quota("pods", admin.ns, {"spec": {"hard": {"pods": "100"}}})
    with operator_process(admin.ns, operator_kubeconfig, log):
        heads, workers = admin.wait_pods(1, WORKERS)
        assert before <= {p.metadata.name for p in heads + workers}
        admin.make_all_ready()
        wait_for(lambda: admin.status().get("state") == "Ready", "Ready after the restart")
        # Nothing was ever created twice, so nothing had to be deleted.
        reasons = {reason for _, reason, _ in admin.events()}
        assert not reasons & {"DuplicateHeadPod", "ScaleDown", "WorkerPodFailed"}, reasons
        assert len(admin.pods()) == 1 + WORKERS


def test_kopf_run_dash_m_spindle_operator_reconciles(admin: Admin, operator_kubeconfig: str, tmp_path: Path):
    with operator_process(admin.ns, operator_kubeconfig, tmp_path / "kopf.log", kopf_run=True):
        admin.create_cluster(spindle_cluster(worker_group(replicas=1)))
        admin.wait_pods(1, 1)


def test_an_operator_watching_all_namespaces_reconciles_with_the_shipped_cluster_role(
    admin: Admin, operator_kubeconfig: str, tmp_path: Path
):
    # This is how manifests/operator/deployment.yaml runs it: cluster-wide lists and watches.
    with operator_process(None, operator_kubeconfig, tmp_path / "operator.log"):
        admin.create_cluster(spindle_cluster(worker_group(replicas=2)))
        admin.wait_pods(1, 2)
        admin.make_all_ready()
        wait_for(lambda: admin.status().get("state") == "Ready", "Ready")
