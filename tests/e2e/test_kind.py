"""Spindle on a real Kubernetes cluster (kind): the operator as a pod from its image and chart, a
SpindleCluster's head and workers as running containers, and a job submission pod computing a result
against the head service, through scaling, pod loss, a head restart, a helm upgrade and deletion.

The tests share one kind cluster and one SpindleCluster ("minimal", from manifests/samples/) and run in
file order; each leaves the cluster Ready with one worker for the next.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import pytest
import yaml

from .conftest import NAMESPACE
from .kind import ROOT, Kind, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SAMPLE = ROOT / "manifests/samples/minimal.yaml"
JOB = ROOT / "examples/kubernetes/primes-job.yaml"
NAME = "minimal"
CLUSTER = f"spindle.dev/cluster={NAME}"
HEAD = f"{CLUSTER},spindle.dev/node-type=head"
WORKERS = f"{CLUSTER},spindle.dev/node-type=worker"
OPERATOR_NS = "spindle-system"
READY_TIMEOUT = 300


def count_primes(start: int, end: int) -> int:
    """Primes in [start, end) by a sieve: the reference the cluster's answer is checked against."""
    sieve = bytearray([1]) * end
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(end**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(range(i * i, end, i)))
    return sum(sieve[start:end])


def running_and_ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return pod.get("status", {}).get("phase") == "Running" and bool(statuses) and all(s["ready"] for s in statuses)


def cluster_status(kind: Kind) -> dict[str, Any]:
    status: dict[str, Any] = kind.get("spc", NAME, "-n", NAMESPACE).get("status") or {}
    return status


def wait_ready(kind: Kind, workers: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Wait until the cluster is Ready with one running head and exactly ``workers`` running workers."""

    def probe() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        heads, pods = kind.pods(NAMESPACE, HEAD), kind.pods(NAMESPACE, WORKERS)
        ok = (
            cluster_status(kind).get("state") == "Ready"
            and len(heads) == 1
            and len(pods) == workers
            and all(running_and_ready(p) for p in heads + pods)
        )
        return (heads[0], pods) if ok else None

    return wait_for(probe, f"cluster {NAME} Ready with a running head and {workers} running worker(s)", READY_TIMEOUT,
                    describe=lambda: kind.kubectl("get", "spc,pods", "-n", NAMESPACE, "-o", "wide", check=False).stdout)


def spindle_status(kind: Kind) -> str:
    [head] = kind.pods(NAMESPACE, HEAD)
    return kind.kubectl("exec", "-n", NAMESPACE, head["metadata"]["name"], "--", "spindle", "status",
                        timeout=120).stdout


def alive_nodes(kind: Kind) -> int:
    match = re.search(r"(\d+) node\(s\) alive", spindle_status(kind))
    assert match, "spindle status printed no node count"
    return int(match.group(1))


def wait_alive_nodes(kind: Kind, n: int) -> None:
    wait_for(lambda: alive_nodes(kind) == n, f"`spindle status` in the head pod to show {n} alive node(s)",
             READY_TIMEOUT, describe=lambda: spindle_status(kind))


def set_replicas(kind: Kind, replicas: int) -> None:
    kind.kubectl("patch", "spc", NAME, "-n", NAMESPACE, "--type=json",
                 "-p", f'[{{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": {replicas}}}]')


def primes_job(name: str, start: int, end: int, chunk: int) -> str:
    """examples/kubernetes/primes-job.yaml under another name and range."""
    job = yaml.safe_load(JOB.read_text())
    job["metadata"]["name"] = name
    job["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "python", "/opt/spindle/examples/primes.py", "--start", str(start), "--end", str(end),
        "--chunk-size", str(chunk),
    ]
    return yaml.safe_dump(job)


def job_finished(kind: Kind, name: str) -> str | None:
    conditions = kind.get("job", name, "-n", NAMESPACE).get("status", {}).get("conditions") or []
    for c in conditions:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return None


def job_output(kind: Kind, name: str, timeout: float = READY_TIMEOUT) -> str:
    def describe() -> str:  # a hung job says where: every process's stacks, the driver's and the cluster's
        return "\n".join([kind.kubectl("describe", "job", name, "-n", NAMESPACE, check=False).stdout,
                          kind.stacks(NAMESPACE, f"job-name={name}"), kind.stacks(NAMESPACE, CLUSTER)])

    result = wait_for(lambda: job_finished(kind, name), f"job {name} to finish", timeout, describe=describe)
    logs = kind.kubectl("logs", "-n", NAMESPACE, f"job/{name}").stdout
    assert result == "Complete", f"job {name} failed; its output:\n{logs}"
    return logs


@pytest.fixture(scope="module")
def minimal(kind: Kind) -> float:
    """`kubectl apply -f manifests/samples/minimal.yaml`; the seconds until the cluster was Ready."""
    began = time.monotonic()
    kind.kubectl("apply", "-n", NAMESPACE, "-f", str(SAMPLE))
    wait_ready(kind, workers=1)
    return time.monotonic() - began


def test_the_operator_runs_as_a_pod_from_its_image_with_the_charts_service_account(kind: Kind) -> None:
    [pod] = kind.pods(OPERATOR_NS, "app.kubernetes.io/name=spindle-operator")
    assert running_and_ready(pod)
    spec = pod["spec"]
    assert spec["containers"][0]["image"] == "spindle-operator:0.1.0"
    assert spec["serviceAccountName"] == "spindle-operator"
    assert spec["securityContext"]["runAsNonRoot"] is True
    account = f"system:serviceaccount:{OPERATOR_NS}:spindle-operator"
    can = kind.kubectl("auth", "can-i", "create", "pods", "-n", NAMESPACE, "--as", account, check=False)
    assert can.stdout.strip() == "yes"
    cannot = kind.kubectl("auth", "can-i", "delete", "nodes", "--as", account, check=False)
    assert cannot.stdout.strip() == "no"


def test_the_minimal_sample_becomes_ready_with_running_head_and_worker_containers(kind: Kind, minimal: float) -> None:
    head, [worker] = wait_ready(kind, workers=1)
    print(f"kubectl apply -> Ready in {minimal:.1f}s", file=sys.stderr)
    for pod in (head, worker):
        assert pod["spec"]["containers"][0]["image"] == "spindle:0.1.0"
        assert pod["status"]["containerStatuses"][0]["state"].get("running")
    printed = kind.kubectl("get", "spc", "-n", NAMESPACE).stdout
    assert re.search(rf"^{NAME}\s+1\s+1\s+Ready\s", printed, re.M), printed
    wait_alive_nodes(kind, 2)


def test_a_job_pod_runs_primes_against_the_head_service(kind: Kind, minimal: float) -> None:
    kind.kubectl("apply", "-n", NAMESPACE, "-f", str(JOB))
    try:
        out = job_output(kind, "primes")
    finally:
        kind.kubectl("delete", "job", "primes", "-n", NAMESPACE, "--wait=false", check=False)
    assert f"Primes between 1,000,000 and 1,200,000: {count_primes(1_000_000, 1_200_000)}" in out


def test_scaling_the_worker_group_adds_and_removes_pods_that_spindle_status_sees(kind: Kind, minimal: float) -> None:
    set_replicas(kind, 2)
    _, workers = wait_ready(kind, workers=2)
    wait_alive_nodes(kind, 3)
    set_replicas(kind, 1)
    _, [left] = wait_ready(kind, workers=1)
    assert left["metadata"]["name"] in {w["metadata"]["name"] for w in workers}
    wait_alive_nodes(kind, 2)


def test_deleting_a_worker_pod_mid_job_loses_no_result(kind: Kind, minimal: float) -> None:
    set_replicas(kind, 2)
    _, workers = wait_ready(kind, workers=2)
    wait_alive_nodes(kind, 3)
    start, end = 10_000_000, 12_000_000
    kind.apply(NAMESPACE, primes_job("primes-loss", start, end, chunk=50_000))
    try:
        wait_for(lambda: any(running_and_ready(p) for p in kind.pods(NAMESPACE, "job-name=primes-loss")),
                 "the job pod to run", READY_TIMEOUT)
        time.sleep(5)  # the driver connects and spreads its 40 tasks over the nodes
        assert job_finished(kind, "primes-loss") is None, "the job finished before a worker could be deleted"
        kind.kubectl("delete", "pod", "-n", NAMESPACE, workers[0]["metadata"]["name"], "--wait=false")
        out = job_output(kind, "primes-loss", timeout=600)
    finally:
        kind.kubectl("delete", "job", "primes-loss", "-n", NAMESPACE, "--wait=false", check=False)
    assert f"Primes between {start:,} and {end:,}: {count_primes(start, end)}" in out
    set_replicas(kind, 1)
    wait_ready(kind, workers=1)


def test_a_deleted_head_pod_is_recreated_and_the_workers_rejoin(kind: Kind, minimal: float) -> None:
    old_head, _ = wait_ready(kind, workers=1)
    kind.kubectl("delete", "pod", "-n", NAMESPACE, old_head["metadata"]["name"], "--wait=false")
    wait_for(lambda: all(p["metadata"]["uid"] != old_head["metadata"]["uid"] for p in kind.pods(NAMESPACE, HEAD)),
             "the old head pod to go", READY_TIMEOUT)
    new_head, _ = wait_ready(kind, workers=1)
    assert new_head["metadata"]["uid"] != old_head["metadata"]["uid"]
    wait_alive_nodes(kind, 2)
    kind.apply(NAMESPACE, primes_job("primes-after-head", 1_000_000, 1_100_000, chunk=20_000))
    try:
        out = job_output(kind, "primes-after-head")
    finally:
        kind.kubectl("delete", "job", "primes-after-head", "-n", NAMESPACE, "--wait=false", check=False)
    assert f"Primes between 1,000,000 and 1,100,000: {count_primes(1_000_000, 1_100_000)}" in out


def test_a_helm_upgrade_with_a_new_image_tag_rolls_the_cluster(kind: Kind) -> None:
    release, chart = "rolled", str(ROOT / "charts/spindle-cluster")
    selector = f"spindle.dev/cluster={release}"
    kind.run(["docker", "tag", "spindle:0.1.0", "spindle:0.1.0-rolled"])
    kind.run(["kind", "load", "docker-image", "--name", kind.name, "spindle:0.1.0-rolled"], timeout=600)
    kind.helm("install", release, chart, "-n", NAMESPACE, "--set", "worker.replicas=1")
    try:

        def images() -> set[str] | None:
            pods = kind.pods(NAMESPACE, selector)
            state = (kind.get("spc", release, "-n", NAMESPACE).get("status") or {}).get("state")
            if state == "Ready" and len(pods) == 2 and all(running_and_ready(p) for p in pods):
                return {p["spec"]["containers"][0]["image"] for p in pods}
            return None

        assert wait_for(images, f"cluster {release} Ready", READY_TIMEOUT) == {"spindle:0.1.0"}
        kind.helm("upgrade", release, chart, "-n", NAMESPACE, "--reuse-values", "--set", "image.tag=0.1.0-rolled")
        wait_for(lambda: images() == {"spindle:0.1.0-rolled"}, f"every pod of {release} on the new image",
                 READY_TIMEOUT, describe=lambda: kind.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout)
    finally:
        kind.helm("uninstall", release, "-n", NAMESPACE, "--wait", check=False, timeout=300)
    wait_for(lambda: kind.pods(NAMESPACE, selector) == [], f"helm uninstall to remove {release}'s pods", READY_TIMEOUT)


def test_kubectl_delete_removes_the_cluster_and_everything_it_owned(kind: Kind, minimal: float) -> None:
    kind.kubectl("delete", "-n", NAMESPACE, "-f", str(SAMPLE), "--wait=true", timeout=300)

    def gone() -> bool:
        left = kind.kubectl("get", "pods,services,secrets", "-n", NAMESPACE, "-l", CLUSTER, "-o", "name").stdout
        return left.strip() == ""

    wait_for(gone, f"the pods, service and secret of {NAME} to be deleted", READY_TIMEOUT,
             describe=lambda: kind.kubectl("get", "all,secrets", "-n", NAMESPACE, check=False).stdout)
