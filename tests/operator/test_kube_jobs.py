"""SpindleJob lifecycles against the real API server, with the operator running as its least-privilege
ServiceAccount. The test plays the kubelet: it writes pod phases; the real job controller turns a
submitter pod's phase into the submitter Job's Complete/Failed condition."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import GROUP, VERSION, Admin, OperatorThread, spindle_cluster, wait_for, worker_group

JOBS = "spindlejobs"


class Jobs:
    def __init__(self, admin: Admin, api: client.ApiClient) -> None:
        self.admin, self.ns = admin, admin.ns
        self.batch: Any = client.BatchV1Api(api)

    def create(self, name: str = "j", **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SpindleJob", "metadata": {"name": name},
                "spec": {"entrypoint": "python -c 'print(1)'", **spec}}
        result: dict[str, Any] = self.admin.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, JOBS, body)
        return result

    def status(self, name: str = "j") -> dict[str, Any]:
        obj = self.admin.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, JOBS, name)
        return obj.get("status") or {}

    def wait_status(self, deployment: str, name: str = "j", timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            return st if st.get("jobDeploymentStatus") == deployment else None

        found: dict[str, Any] = wait_for(check, f"SpindleJob {name} {deployment} (now {self.status(name)})", timeout)
        return found

    def submitter(self, name: str) -> Any:
        try:
            return self.batch.read_namespaced_job(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def wait_submitter_pod(self, submitter: str) -> Any:
        def check() -> Any:
            pods = self.admin.core.list_namespaced_pod(self.ns, label_selector=f"job-name={submitter}").items
            return pods[0] if pods else None

        return wait_for(check, f"the pod of submitter Job {submitter}", 60)

    def finish_pod(self, pod: Any, phase: str) -> None:
        code = 0 if phase == "Succeeded" else 1
        status = {"phase": phase, "containerStatuses": [{
            "name": pod.spec.containers[0].name, "image": pod.spec.containers[0].image, "imageID": "", "ready": False,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                                        "startedAt": "2026-01-01T00:00:00Z",
                                                        "finishedAt": "2026-01-01T00:00:01Z"}}}]}
        self.admin.core.patch_namespaced_pod_status(pod.metadata.name, self.ns, {"status": status})

    def cluster_exists(self, name: str) -> bool:
        try:
            self.admin.cluster(name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise


@pytest.fixture
def jobs(admin: Admin, kube_api: Any) -> Iterator[Jobs]:
    with kube_api.api_client() as api:
        yield Jobs(admin, api)


def own_cluster_spec() -> dict[str, Any]:
    return copy.deepcopy(spindle_cluster(worker_group(replicas=1))["spec"])


def make_cluster_ready(admin: Admin, name: str) -> None:
    workers = sum(g["replicas"] for g in admin.cluster(name)["spec"].get("workerGroupSpecs", []))
    admin.wait_pods(1, workers, name=name)
    admin.make_all_ready(name)
    wait_for(lambda: admin.status(name).get("state") == "Ready", f"SpindleCluster {name} Ready")


def test_a_job_on_its_own_cluster_completes_and_its_cluster_is_deleted(operator: OperatorThread, admin: Admin,
                                                                        jobs: Jobs) -> None:
    job = jobs.create(clusterSpec=own_cluster_spec(), shutdownAfterJobFinishes=True,
                      runtimeEnv={"env_vars": {"A": "1"}})
    wait_for(lambda: jobs.cluster_exists("j-cluster"), "the job's own SpindleCluster")
    cluster = admin.cluster("j-cluster")
    assert cluster["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    # the operator creates the cluster, then patches the job's status: wait for the patch
    wait_for(lambda: jobs.status().get("jobDeploymentStatus") == "Initializing", "the job Initializing")
    assert jobs.submitter("j-submit-1") is None  # not before the cluster is ready
    make_cluster_ready(admin, "j-cluster")
    submitter = wait_for(lambda: jobs.submitter("j-submit-1"), "the submitter Job of attempt 1")
    main = submitter.spec.template.spec.containers[0]
    uid8 = job["metadata"]["uid"][:8]
    assert main.command == ["spindle", "job", "submit", "--address",
                            f"http://j-cluster-head-svc.{admin.ns}.svc:8265", "--submission-id", f"j-{uid8}-1",
                            "--runtime-env-json", '{"env_vars": {"A": "1"}}', "--", "python -c 'print(1)'"]
    token = next(e for e in main.env if e.name == "SPINDLE_TOKEN")
    assert token.value_from.secret_key_ref.name == "j-cluster-spindle-token"
    status = jobs.wait_status("Running")
    assert status["jobId"] == f"j-{uid8}-1" and status["dashboardURL"].endswith(".svc:8265")
    jobs.finish_pod(jobs.wait_submitter_pod("j-submit-1"), "Succeeded")
    status = jobs.wait_status("Complete")
    assert status["jobStatus"] == "SUCCEEDED" and status["endTime"]
    wait_for(lambda: not jobs.cluster_exists("j-cluster"), "the owned cluster deleted after the job finished")
    assert jobs.status()["jobDeploymentStatus"] == "Complete"  # and the job stays Complete
    admin.wait_events("CreatedCluster", "CreatedSubmitter", "JobSucceeded", "DeletedCluster", name="j")


def test_a_failed_submitter_is_retried_as_a_fresh_submission_then_the_job_fails_with_the_reason(
        operator: OperatorThread, admin: Admin, jobs: Jobs) -> None:
    admin.create_cluster(spindle_cluster(worker_group(replicas=1), name="shared"))
    make_cluster_ready(admin, "shared")
    jobs.create(clusterSelector={"spindle.dev/cluster": "shared"}, backoffLimit=1)
    jobs.finish_pod(jobs.wait_submitter_pod("j-submit-1"), "Failed")
    second = wait_for(lambda: jobs.submitter("j-submit-2"), "the submitter of attempt 2", 60)
    assert second.spec.template.spec.containers[0].command[6].endswith("-2")  # a fresh submission id
    wait_for(lambda: jobs.submitter("j-submit-1") is None, "attempt 1's submitter deleted")
    jobs.finish_pod(jobs.wait_submitter_pod("j-submit-2"), "Failed")
    status = jobs.wait_status("Failed")
    assert (status["reason"], status["failed"], status["attempt"], status["jobStatus"]) == (
        "SubmitterFailed", 2, 2, "FAILED")
    assert "kubectl logs job/j-submit-2" in status["message"]
    assert jobs.submitter("j-submit-2") is not None  # kept: its logs are the job's
    assert jobs.cluster_exists("shared")  # a selected cluster is never deleted by a job


def test_a_cluster_deleted_under_a_running_job_ends_the_job_with_a_reason(operator: OperatorThread, admin: Admin,
                                                                          jobs: Jobs) -> None:
    admin.create_cluster(spindle_cluster(worker_group(replicas=1), name="shared"))
    make_cluster_ready(admin, "shared")
    jobs.create(clusterSelector={"spindle.dev/cluster": "shared"})
    jobs.wait_status("Running")
    admin.custom.delete_namespaced_custom_object(GROUP, VERSION, admin.ns, "spindleclusters", "shared")
    status = jobs.wait_status("Failed")
    assert status["reason"] == "ClusterDeleted" and "was deleted while the job was running" in status["message"]


def test_a_job_waiting_for_a_missing_cluster_fails_at_its_deadline(operator: OperatorThread, jobs: Jobs) -> None:
    jobs.create(clusterSelector={"spindle.dev/cluster": "nowhere"}, activeDeadlineSeconds=2)
    assert "waiting for SpindleCluster nowhere" in jobs.wait_status("Initializing")["message"]
    status = jobs.wait_status("Failed", timeout=60)
    assert status["reason"] == "DeadlineExceeded"


@pytest.mark.parametrize("spec,message", [
    ({"clusterSpec": own_cluster_spec(), "clusterSelector": {"spindle.dev/cluster": "c"}}, "set exactly one of"),
    ({}, "set exactly one of"),
    ({"clusterSelector": {"app": "c"}}, "clusterSelector must be exactly"),
    ({"clusterSelector": {"spindle.dev/cluster": "c"}, "shutdownAfterJobFinishes": True}, "needs clusterSpec"),
    ({"clusterSpec": own_cluster_spec(), "ttlSecondsAfterFinished": 5}, "only applies with shutdownAfterJobFinishes"),
])
def test_the_api_server_refuses_an_invalid_job_with_the_reason(jobs: Jobs, operator_kubeconfig: str,
                                                               spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiException) as info:
        jobs.create(**spec)
    assert info.value.status == 422 and message in str(info.value.body)


def test_kubectl_shows_jobs_by_their_short_name_with_status_columns(operator: OperatorThread, jobs: Jobs,
                                                                    kube_api: Any) -> None:
    jobs.create(clusterSelector={"spindle.dev/cluster": "nowhere"})
    jobs.wait_status("Initializing")
    out = kube_api.kubectl("get", "spj", "-n", jobs.ns).stdout
    assert "DEPLOYMENT STATUS" in out and "Initializing" in out
