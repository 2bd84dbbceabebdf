"""SpindleJob on a real Kubernetes cluster (kind): the operator pod creates the job's own SpindleCluster,
a submitter pod runs `spindle job submit` against its head service, examples/primes.py (shipped in the
runtime image, where a user finds it) runs as the driver in real pods, the status reaches SUCCEEDED, and
the owned cluster is deleted afterwards (shutdownAfterJobFinishes); a second job runs on an existing
cluster picked by clusterSelector and leaves it running; a third is submitted by the operator itself
(submissionMode HTTPMode), with no submitter pod. A head with its tables on a volume keeps job records when
its pod is replaced.

Self-contained (its own clusters and names), so it can run alone with ``-k`` or after test_kind.py.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
import yaml

from .conftest import NAMESPACE
from .kind import ROOT, Kind, wait_for
from .test_kind import READY_TIMEOUT, count_primes, running_and_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SAMPLE = ROOT / "manifests/samples/minimal.yaml"
START, END, CHUNK = 1_000_000, 1_200_000, 20_000
ENTRYPOINT = f"python /opt/spindle/examples/primes.py --start {START} --end {END} --chunk-size {CHUNK}"
EXPECTED = f"Primes between {START:,} and {END:,}: {count_primes(START, END)}"
JOB_TIMEOUT = 600
# the job's own deadline is later than the test's wait, so a hung job is still running when the wait gives up
# and the failure shows its processes' stacks (kind.stacks), not a submitter already killed by the deadline
DEADLINE_S = JOB_TIMEOUT + 180


def minimal_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())["spec"]
    return copy.deepcopy(spec)


def spindle_job(name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": "spindle.dev/v1alpha1", "kind": "SpindleJob", "metadata": {"name": name},
                           "spec": {"entrypoint": ENTRYPOINT, "activeDeadlineSeconds": DEADLINE_S, **spec}})


def job_status(kind: Kind, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kind.get("spj", name, "-n", NAMESPACE).get("status") or {}
    return status


def wait_finished(kind: Kind, name: str, cluster: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = job_status(kind, name)
        return status if status.get("jobDeploymentStatus") in ("Complete", "Failed") else None

    def describe() -> str:  # a hung job says where: the stacks of the submitter, the head (driver) and workers
        return "\n".join([kind.kubectl("get", "spj,spc,jobs,pods", "-n", NAMESPACE, "-o", "wide", check=False).stdout,
                          kind.stacks(NAMESPACE, f"job-name={name}-submit-1"),
                          kind.stacks(NAMESPACE, f"spindle.dev/cluster={cluster}")])

    return wait_for(probe, f"SpindleJob {name} to finish", JOB_TIMEOUT, describe=describe)


def check_succeeded(kind: Kind, name: str, status: dict[str, Any]) -> None:
    submitter = f"{name}-submit-1"
    logs = kind.kubectl("logs", "-n", NAMESPACE, f"job/{submitter}", check=False).stdout
    assert status["jobDeploymentStatus"] == "Complete", f"{status}\nsubmitter logs:\n{logs}"
    assert status["jobStatus"] == "SUCCEEDED"
    uid = kind.get("spj", name, "-n", NAMESPACE)["metadata"]["uid"]
    assert status["jobId"] == f"{name}-{uid[:8]}-1"
    assert status["attempt"] == 1 and status["failed"] == 0
    began, ended = (datetime.datetime.strptime(status[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("startTime", "endTime"))
    assert began <= ended
    complete = next(c for c in status["conditions"] if c["type"] == "Complete")
    assert complete["status"] == "True" and complete["reason"] == "JobSucceeded"
    assert EXPECTED in logs, logs  # the driver's output, streamed back by `spindle job submit`
    printed = kind.kubectl("get", "spj", name, "-n", NAMESPACE).stdout
    assert "SUCCEEDED" in printed and "Complete" in printed, printed


def test_a_spindlejob_with_its_own_cluster_runs_primes_and_the_cluster_is_deleted_afterwards(kind: Kind) -> None:
    name = "primes-owned"
    cluster = f"{name}-cluster"
    kind.apply(NAMESPACE, spindle_job(name, clusterSpec=minimal_spec(), shutdownAfterJobFinishes=True))
    try:
        # the operator creates the cluster; its head and worker run as pods before the job can start
        wait_for(lambda: any(running_and_ready(p) for p in
                             kind.pods(NAMESPACE, f"spindle.dev/cluster={cluster},spindle.dev/node-type=worker")),
                 f"a running worker pod of the owned cluster {cluster}", READY_TIMEOUT,
                 describe=lambda: kind.kubectl("get", "spj,spc,pods", "-n", NAMESPACE, check=False).stdout)
        status = wait_finished(kind, name, cluster)
        check_succeeded(kind, name, status)
        assert status["clusterName"] == cluster

        def cluster_gone() -> bool:
            left = kind.kubectl("get", "spc,pods,services,secrets", "-n", NAMESPACE, "-l",
                                f"spindle.dev/cluster={cluster}", "-o", "name").stdout.strip()
            spc = kind.kubectl("get", "spc", cluster, "-n", NAMESPACE, check=False)
            return left == "" and spc.returncode != 0 and "NotFound" in spc.stderr

        wait_for(cluster_gone, f"the owned cluster {cluster} and its pods to be deleted", READY_TIMEOUT,
                 describe=lambda: kind.kubectl("get", "spc,pods", "-n", NAMESPACE, check=False).stdout)
        assert job_status(kind, name)["jobStatus"] == "SUCCEEDED"  # the record outlives its cluster
    finally:
        kind.kubectl("delete", "spj", name, "-n", NAMESPACE, "--wait=true", check=False, timeout=300)


def test_a_spindlejob_with_a_cluster_selector_runs_on_an_existing_cluster_and_leaves_it_running(kind: Kind) -> None:
    name, cluster = "primes-selected", "jobs-existing"
    manifest = yaml.safe_load(SAMPLE.read_text())
    manifest["metadata"]["name"] = cluster
    kind.apply(NAMESPACE, yaml.safe_dump(manifest))
    try:
        wait_for(lambda: (kind.get("spc", cluster, "-n", NAMESPACE).get("status") or {}).get("state") == "Ready",
                 f"cluster {cluster} Ready", READY_TIMEOUT)
        kind.apply(NAMESPACE, spindle_job(name, clusterSelector={"spindle.dev/cluster": cluster}))
        status = wait_finished(kind, name, cluster)
        check_succeeded(kind, name, status)
        assert status["clusterName"] == cluster
        # the head keeps the job's record: its own CLI in the head pod reports it
        [head] = kind.pods(NAMESPACE, f"spindle.dev/cluster={cluster},spindle.dev/node-type=head")
        out = kind.kubectl("exec", "-n", NAMESPACE, head["metadata"]["name"], "--", "spindle", "job", "status",
                           status["jobId"], timeout=120).stdout
        assert "SUCCEEDED" in out, out
        kind.kubectl("delete", "spj", name, "-n", NAMESPACE, "--wait=true", timeout=300)
        assert (kind.get("spc", cluster, "-n", NAMESPACE).get("status") or {}).get("state") == "Ready"
    finally:
        kind.kubectl("delete", "spj", name, "-n", NAMESPACE, "--wait=false", check=False)
        kind.kubectl("delete", "spc", cluster, "-n", NAMESPACE, "--wait=true", check=False, timeout=300)


def test_an_http_mode_spindlejob_is_submitted_by_the_operator_itself_without_a_submitter_pod(kind: Kind) -> None:
    name = "primes-http"
    cluster = f"{name}-cluster"
    kind.apply(NAMESPACE, spindle_job(name, clusterSpec=minimal_spec(), shutdownAfterJobFinishes=True,
                                      submissionMode="HTTPMode"))
    try:
        status = wait_finished(kind, name, cluster)
        assert status["jobDeploymentStatus"] == "Complete", status
        assert status["jobStatus"] == "SUCCEEDED" and status["attempt"] == 1 and status["startTime"] <= status["endTime"]
        uid = kind.get("spj", name, "-n", NAMESPACE)["metadata"]["uid"]
        assert status["jobId"] == f"{name}-{uid[:8]}-1"
        jobs = kind.kubectl("get", "jobs", "-n", NAMESPACE, "-l", f"spindle.dev/job={name}", "-o", "name").stdout
        assert jobs.strip() == ""  # the operator talked to the head's job API: no submitter Job
        events = kind.kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                              f"involvedObject.name={name}", "-o", "jsonpath={.items[*].reason}").stdout.split()
        assert "Submitted" in events and "JobSucceeded" in events, events
        wait_for(lambda: kind.kubectl("get", "spc", cluster, "-n", NAMESPACE, check=False).returncode != 0,
                 f"the owned cluster {cluster} to be deleted", READY_TIMEOUT)
    finally:
        kind.kubectl("delete", "spj", name, "-n", NAMESPACE, "--wait=true", check=False, timeout=300)


def test_a_persistent_head_keeps_its_job_records_when_its_pod_is_replaced(kind: Kind) -> None:
    cluster, sample = "persistent-head", (ROOT / "manifests/samples/persistent-head.yaml").read_text()
    head_pods = f"spindle.dev/cluster={cluster},spindle.dev/node-type=head"

    def ready_head(not_uid: str = "") -> dict[str, Any] | None:
        return next((p for p in kind.pods(NAMESPACE, head_pods)
                     if running_and_ready(p) and p["metadata"]["uid"] != not_uid), None)

    def in_head(pod: dict[str, Any], *args: str) -> str:
        return kind.kubectl("exec", "-n", NAMESPACE, pod["metadata"]["name"], "--", "spindle", "job", *args,
                            timeout=180).stdout

    kind.apply(NAMESPACE, sample)  # the claim (bound by kind's local-path provisioner) and the cluster
    try:
        old = wait_for(ready_head, f"a ready head pod of {cluster}", READY_TIMEOUT,
                       describe=lambda: kind.kubectl("get", "spc,pvc,pods", "-n", NAMESPACE, check=False).stdout)
        out = in_head(old, "submit", "--submission-id", "kept-record", "--", "python", "-c", "print('kept' * 2)")
        assert "keptkept" in out, out
        kind.kubectl("delete", "pod", "-n", NAMESPACE, old["metadata"]["name"], "--wait=true", timeout=300)
        new = wait_for(lambda: ready_head(old["metadata"]["uid"]), "a new ready head pod", READY_TIMEOUT,
                       describe=lambda: kind.kubectl("get", "spc,pvc,pods", "-n", NAMESPACE, check=False).stdout)
        # the new head read the record from the volume: the finished job is still there, and known by its id
        assert "SUCCEEDED" in in_head(new, "status", "kept-record")
        assert "kept-record" in in_head(new, "list")
    finally:
        kind.kubectl("delete", "spc", cluster, "-n", NAMESPACE, "--wait=true", check=False, timeout=300)
        kind.kubectl("delete", "pvc", "persistent-head-tables", "-n", NAMESPACE, "--wait=true", check=False,
                     timeout=300)
