"""SpindleJob in HTTPMode against the real API server and a real head: the operator (as its least-privilege
ServiceAccount) reads the cluster's token Secret and submits to the head's job API itself; the test plays the
kubelet (pod phases) and the head pod (a Spindle head on the host started with the cluster's token, which
the operator reaches through its head_url setting, as the autoscaler tests do)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from spindle import _local_cluster
from spindle._rpc.net import free_port
from spindle.job_submission import JobStatus, JobSubmissionClient
from spindle_operator._settings import AutoscalerSettings

from .conftest import Admin, OperatorThread, spindle_cluster, wait_for, worker_group
from .test_kube_jobs import Jobs, make_cluster_ready

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def jobs(admin: Admin, kube_api: Any) -> Iterator[Jobs]:
    with kube_api.api_client() as api:
        yield Jobs(admin, api)


@dataclass
class Http:
    url: str
    token: str


@pytest.fixture
def shared(admin: Admin, kube_namespace: str, operator_kubeconfig: str) -> Iterator[Http]:
    """The operator pointed at a head on the host, the Ready SpindleCluster "shared", and that head started
    with the cluster's token (read from the Secret the operator created), as the head pod would be."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    op = OperatorThread(kube_namespace, operator_kubeconfig,
                        autoscaler=AutoscalerSettings(head_url=url, request_timeout_seconds=10.0)).start()
    procs = None
    saved = os.environ.pop("SPINDLE_ADDRESS", None)
    try:
        admin.create_cluster(spindle_cluster(worker_group(replicas=1), name="shared"))
        make_cluster_ready(admin, "shared")
        secret = admin.core.read_namespaced_secret("shared-spindle-token", admin.ns)
        token = base64.b64decode(secret.data["token"]).decode()
        procs = _local_cluster.start(num_cpus=1, token=token, dashboard_port=port, dashboard_port_fallback=False)
        yield Http(url, token)
    finally:
        op.stop()
        if procs is not None:
            procs.stop()
        if saved is not None:
            os.environ["SPINDLE_ADDRESS"] = saved


def test_http_mode_submits_to_the_head_follows_the_job_and_completes_without_a_submitter(
        admin: Admin, jobs: Jobs, shared: Http) -> None:
    url, token = shared.url, shared.token
    job = jobs.create(clusterSelector={"spindle.dev/cluster": "shared"}, submissionMode="HTTPMode",
                      entrypoint="python -c \"import os, time; time.sleep(1); print('via http', os.environ['A'])\"",
                      runtimeEnv={"env_vars": {"A": "ok"}})
    sid = f"j-{job['metadata']['uid'][:8]}-1"
    status = jobs.wait_status("Complete", timeout=90)
    assert (status["jobStatus"], status["jobId"], status["attempt"]) == ("SUCCEEDED", sid, 1)
    head = JobSubmissionClient(url, token=token)
    assert head.get_job_status(sid) == JobStatus.SUCCEEDED
    assert head.get_job_logs(sid) == "via http ok\n"
    assert jobs.submitter("j-submit-1") is None  # no submitter Job in HTTPMode
    admin.wait_events("Submitted", "JobSucceeded", name="j")


def test_http_mode_a_failed_job_is_retried_as_a_fresh_submission_then_fails_with_the_heads_reason(
        admin: Admin, jobs: Jobs, shared: Http) -> None:
    url, token = shared.url, shared.token
    job = jobs.create(clusterSelector={"spindle.dev/cluster": "shared"}, submissionMode="HTTPMode",
                      entrypoint="python -c 'import sys; sys.exit(3)'", backoffLimit=1)
    status = jobs.wait_status("Failed", timeout=90)
    uid8 = job["metadata"]["uid"][:8]
    assert (status["reason"], status["failed"], status["attempt"]) == ("JobFailed", 2, 2)
    assert f"job j-{uid8}-2 ended FAILED: Job entrypoint command failed with exit code 3" in status["message"]
    listed = {j.submission_id: j.status for j in JobSubmissionClient(url, token=token).list_jobs()}
    assert listed[f"j-{uid8}-1"] == listed[f"j-{uid8}-2"] == JobStatus.FAILED  # two fresh submissions


def test_http_mode_the_deadline_stops_the_job_on_the_head(
        admin: Admin, jobs: Jobs, shared: Http) -> None:
    url, token = shared.url, shared.token
    job = jobs.create(clusterSelector={"spindle.dev/cluster": "shared"}, submissionMode="HTTPMode",
                      entrypoint="sleep 300", activeDeadlineSeconds=3)
    status = jobs.wait_status("Failed", timeout=90)
    assert status["reason"] == "DeadlineExceeded"
    sid = f"j-{job['metadata']['uid'][:8]}-1"
    head = JobSubmissionClient(url, token=token)
    wait_for(lambda: head.get_job_status(sid) == JobStatus.STOPPED, "the head to report the job STOPPED", 60)


def test_http_mode_an_unreachable_head_is_reported_not_waited_on_silently(
        admin: Admin, jobs: Jobs, kube_namespace: str, operator_kubeconfig: str) -> None:
    op = OperatorThread(kube_namespace, operator_kubeconfig,  # nothing listens on port 9
                        autoscaler=AutoscalerSettings(head_url="http://127.0.0.1:9", request_timeout_seconds=2.0))
    op.start()
    try:
        admin.create_cluster(spindle_cluster(worker_group(replicas=1), name="shared"))
        make_cluster_ready(admin, "shared")
        jobs.create(clusterSelector={"spindle.dev/cluster": "shared"}, submissionMode="HTTPMode")
        admin.wait_events("FailedSubmit", name="j")
        assert jobs.status().get("jobDeploymentStatus") in (None, "Initializing")  # not counted as submitted
    finally:
        op.stop()
