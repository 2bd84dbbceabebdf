"""The SpindleJob reconcile (pure): exact actions and status for each situation, never-stuck rules first."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from spindle_operator._job_builders import build_owned_cluster, build_submitter
from spindle_operator._job_reconcile import (
    CreateCluster,
    CreateSubmitter,
    DeleteCluster,
    DeleteSubmitter,
    Event,
    JobObserved,
    reconcile_job,
)
from tests.operator.factories import NS, SETTINGS, template

T0 = datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=datetime.timezone.utc)
JOB_UID = "abcdef12-job-uid"


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def job(status: dict[str, Any] | None = None, *, selector: bool = False, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "spindle.dev/v1alpha1", "kind": "SpindleJob",
        "metadata": {"name": "j", "namespace": NS, "uid": JOB_UID, "generation": 1},
        "spec": {"entrypoint": "python examples/primes.py", **spec},
    }
    if selector:
        body["spec"]["clusterSelector"] = {"spindle.dev/cluster": "shared"}
    else:
        body["spec"].setdefault("clusterSpec", {"headGroupSpec": {"template": template()}})
    if status is not None:
        body["status"] = status
    return body


def owned_cluster(j: dict[str, Any], state: str = "Ready") -> dict[str, Any]:
    c = build_owned_cluster(j)
    c["metadata"]["uid"] = "cluster-uid"
    c["status"] = {"state": state}
    return c


def selected_cluster(state: str = "Ready") -> dict[str, Any]:
    return {"metadata": {"name": "shared", "namespace": NS, "uid": "shared-uid"},
            "spec": {"headGroupSpec": {"template": template("spindle:shared")}}, "status": {"state": state}}


def submitter(j: dict[str, Any], cluster: dict[str, Any], attempt: int, *, condition: str | None = None,
              active: int = 1) -> dict[str, Any]:
    s = build_submitter(j, cluster, SETTINGS, attempt)
    s["metadata"]["uid"] = f"sub-uid-{attempt}"
    s["status"] = {"active": 0 if condition else active}
    if condition:
        s["status"]["conditions"] = [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded"
                                      if condition == "Failed" else "", "message": "pod failed"}]
    return s


def step(j: dict[str, Any], observed: JobObserved, now: datetime.datetime = T0) -> tuple[list[Any], dict[str, Any]]:
    decision = reconcile_job(j, observed, SETTINGS, now)
    return list(decision.actions), decision.status


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ if not isinstance(a, Event) else f"Event:{a.reason}" for a in actions]


def test_a_new_job_creates_its_owned_cluster_and_waits_for_it() -> None:
    j = job()
    actions, status = step(j, JobObserved(cluster=None, submitter=None))
    assert kinds(actions) == ["CreateCluster", "Event:CreatingCluster"]
    body = actions[0].body
    assert body["metadata"]["name"] == "j-cluster"
    assert body["metadata"]["ownerReferences"][0]["uid"] == JOB_UID
    assert body["spec"] == j["spec"]["clusterSpec"]
    assert status["jobDeploymentStatus"] == "Initializing" and status["clusterName"] == "j-cluster"
    assert status["dashboardURL"] == "http://j-cluster-head-svc.ns.svc:8265"
    assert status["startTime"] == "2026-01-01T00:00:00Z"


def test_the_submitter_is_created_only_once_the_cluster_is_ready() -> None:
    j = job({"jobDeploymentStatus": "Initializing", "startTime": "2026-01-01T00:00:00Z", "reason": "CreatingCluster"})
    actions, status = step(j, JobObserved(owned_cluster(j, "Pending"), None))
    assert kinds(actions) == ["Event:WaitingForCluster"]
    assert "to be Ready (it is Pending)" in status["message"]
    actions, status = step(j, JobObserved(owned_cluster(j), None))
    assert kinds(actions) == ["CreateSubmitter", "Event:Submitting"]
    sub = actions[0].body
    assert sub["metadata"]["name"] == "j-submit-1" and sub["spec"]["backoffLimit"] == 0
    main = sub["spec"]["template"]["spec"]["containers"][0]
    assert main["image"] == "spindle:test"
    assert main["command"] == ["spindle", "job", "submit", "--address", "http://j-cluster-head-svc.ns.svc:8265",
                               "--submission-id", "j-abcdef12-1", "--", "python examples/primes.py"]
    assert {"name": "SPINDLE_TOKEN", "valueFrom": {"secretKeyRef": {"name": "j-cluster-spindle-token",
                                                                    "key": "token"}}} in main["env"]
    assert sub["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["attempt"], status["jobId"]) == (
        "Running", "PENDING", 1, "j-abcdef12-1")


def running(attempt: int = 1, failed: int = 0, **extra: Any) -> dict[str, Any]:
    return {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "attempt": attempt, "failed": failed,
            "jobId": f"j-abcdef12-{attempt}", "startTime": "2026-01-01T00:00:00Z", "reason": "Running", **extra}


def test_a_running_submitter_reports_running_and_does_nothing() -> None:
    j = job(running())
    c = owned_cluster(j)
    actions, status = step(j, JobObserved(c, submitter(j, c, 1)))
    assert actions == []
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Running", "RUNNING")


def test_a_succeeded_submitter_completes_the_job() -> None:
    j = job(running())
    c = owned_cluster(j)
    actions, status = step(j, JobObserved(c, submitter(j, c, 1, condition="Complete")), at(30))
    assert kinds(actions) == ["Event:JobSucceeded"]
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["endTime"]) == (
        "Complete", "SUCCEEDED", "2026-01-01T00:00:30Z")
    assert [c["status"] for c in status["conditions"]] == ["True", "False"]


def test_a_failed_submitter_retries_with_a_fresh_submission_while_the_backoff_limit_allows() -> None:
    j = job(running(), backoffLimit=1)
    c = owned_cluster(j)
    actions, status = step(j, JobObserved(c, submitter(j, c, 1, condition="Failed")))
    assert actions == [DeleteSubmitter("j-submit-1", "sub-uid-1", "attempt 1 failed: SubmitterFailed"),
                       Event("Warning", "SubmitterFailed", status["message"])]
    assert (status["jobDeploymentStatus"], status["failed"], status["attempt"]) == ("Retrying", 1, 1)
    assert "kubectl logs job/j-submit-1" in status["message"]
    j2 = job(status, backoffLimit=1)
    actions, status = step(j2, JobObserved(c, None))
    assert kinds(actions) == ["CreateSubmitter", "Event:Submitting"]
    assert actions[0].body["metadata"]["name"] == "j-submit-2"
    assert "j-abcdef12-2" in actions[0].body["spec"]["template"]["spec"]["containers"][0]["command"]
    assert (status["jobDeploymentStatus"], status["attempt"], status["jobId"]) == ("Running", 2, "j-abcdef12-2")


def test_a_failure_past_the_backoff_limit_ends_the_job_failed_and_keeps_the_submitter_for_its_logs() -> None:
    j = job(running(attempt=2, failed=1), backoffLimit=1)
    c = owned_cluster(j)
    actions, status = step(j, JobObserved(c, submitter(j, c, 2, condition="Failed")))
    assert kinds(actions) == ["Event:SubmitterFailed"]
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["failed"]) == ("Failed", "FAILED", 2)
    assert "backoffLimit 1 reached" in status["message"]
    assert status["conditions"][1]["status"] == "True"


def test_a_cluster_deleted_under_a_running_job_ends_the_attempt_with_a_reason() -> None:
    j = job(running())
    actions, status = step(j, JobObserved(None, None))
    assert kinds(actions) == ["Event:ClusterDeleted"]
    assert (status["jobDeploymentStatus"], status["reason"]) == ("Failed", "ClusterDeleted")
    j = job(running(), selector=True, backoffLimit=2)
    actions, status = step(j, JobObserved(None, None))
    assert (status["jobDeploymentStatus"], status["reason"]) == ("Retrying", "ClusterDeleted")


def test_a_retry_after_the_owned_cluster_was_deleted_recreates_it_first() -> None:
    j = job(running(failed=1) | {"jobDeploymentStatus": "Retrying", "reason": "ClusterDeleted"}, backoffLimit=2)
    actions, status = step(j, JobObserved(None, None))
    assert kinds(actions) == ["CreateCluster", "Event:CreatingCluster"]
    assert status["jobDeploymentStatus"] == "Retrying"


def test_a_deleted_submitter_of_a_running_attempt_is_a_failure_not_a_hang() -> None:
    j = job(running())
    actions, status = step(j, JobObserved(owned_cluster(j), None))
    assert (status["jobDeploymentStatus"], status["reason"]) == ("Failed", "SubmitterDeleted")


def test_the_active_deadline_fails_the_job_and_deletes_the_submitter() -> None:
    j = job(running(), activeDeadlineSeconds=60, backoffLimit=5)
    c = owned_cluster(j)
    sub = submitter(j, c, 1)
    decision = reconcile_job(j, JobObserved(c, sub), SETTINGS, at(59))
    assert decision.actions == [] and decision.requeue_after == 1.0
    actions, status = step(j, JobObserved(c, sub), at(60))
    assert actions == [DeleteSubmitter("j-submit-1", "sub-uid-1", "activeDeadlineSeconds passed"),
                       Event("Warning", "DeadlineExceeded", status["message"])]
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Failed", "FAILED")


def test_a_deadline_also_ends_a_job_still_waiting_for_its_cluster() -> None:
    j = job({"jobDeploymentStatus": "Initializing", "startTime": "2026-01-01T00:00:00Z"}, selector=True,
            activeDeadlineSeconds=10)
    actions, status = step(j, JobObserved(None, None), at(11))
    assert (status["jobDeploymentStatus"], status["reason"], status["jobStatus"]) == ("Failed", "DeadlineExceeded", "")


def test_a_finished_job_deletes_its_owned_cluster_after_the_ttl_when_asked() -> None:
    finished = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": "2026-01-01T00:00:00Z",
                "reason": "JobSucceeded", "attempt": 1}
    j = job(finished, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=30)
    c = owned_cluster(j)
    decision = reconcile_job(j, JobObserved(c, None), SETTINGS, at(10))
    assert decision.actions == [] and decision.requeue_after == 20.0
    actions, _ = step(j, JobObserved(c, None), at(30))
    assert kinds(actions) == ["DeleteCluster", "Event:DeletedCluster"]
    assert actions[0] == DeleteCluster("j-cluster", "cluster-uid", "the job finished (shutdownAfterJobFinishes)")
    assert step(j, JobObserved(None, None), at(31))[0] == []  # deleted: nothing more, still Complete
    keep = job(finished)
    assert step(keep, JobObserved(c, None), at(3600))[0] == []


def test_a_selected_cluster_is_never_deleted_even_with_shutdown_after_finish() -> None:
    j = job({"jobDeploymentStatus": "Complete", "endTime": "2026-01-01T00:00:00Z"}, selector=True,
            shutdownAfterJobFinishes=True)
    assert step(j, JobObserved(selected_cluster(), None), at(100))[0] == []


def test_a_selector_job_waits_for_its_cluster_and_uses_its_image() -> None:
    j = job(selector=True)
    actions, status = step(j, JobObserved(None, None))
    assert kinds(actions) == ["Event:WaitingForCluster"] and "clusterSelector" in status["message"]
    actions, status = step(job(status, selector=True), JobObserved(selected_cluster(), None))
    assert kinds(actions) == ["CreateSubmitter", "Event:Submitting"]
    main = actions[0].body["spec"]["template"]["spec"]["containers"][0]
    assert main["image"] == "spindle:shared"
    assert "http://shared-head-svc.ns.svc:8265" in main["command"]


def test_a_cluster_name_taken_by_someone_else_fails_at_once() -> None:
    j = job()
    c = owned_cluster(j)
    c["metadata"]["ownerReferences"] = []
    actions, status = step(j, JobObserved(c, None))
    assert (status["jobDeploymentStatus"], status["reason"]) == ("Failed", "ClusterNameTaken")
    assert not any(isinstance(a, (CreateCluster, CreateSubmitter, DeleteCluster)) for a in actions)


def test_suspend_deletes_the_submitter_and_the_owned_cluster_and_resume_starts_a_fresh_attempt() -> None:
    j = job(running(), suspend=True)
    c = owned_cluster(j)
    actions, status = step(j, JobObserved(c, submitter(j, c, 1)))
    assert kinds(actions) == ["DeleteSubmitter", "DeleteCluster", "Event:Suspended"]
    assert status["jobDeploymentStatus"] == "Suspended"
    resumed = job(status)
    actions, status = step(resumed, JobObserved(None, None), at(100))
    assert kinds(actions) == ["CreateCluster", "Event:CreatingCluster"]
    assert status["startTime"] == "2026-01-01T00:01:40Z"
    actions, status = step(job(status), JobObserved(owned_cluster(resumed), None), at(101))
    assert status["attempt"] == 2 and actions[0].body["metadata"]["name"] == "j-submit-2"


def test_a_user_submitter_template_keeps_its_command_and_gets_the_address_and_token() -> None:
    tpl = {"spec": {"containers": [{"name": "mine", "image": "me:1", "command": ["my-submit"],
                                    "env": [{"name": "SPINDLE_TOKEN", "value": "override"}]}]}}
    j = job({"jobDeploymentStatus": "Initializing", "startTime": "2026-01-01T00:00:00Z"},
            submitterPodTemplate=tpl, runtimeEnv={"env_vars": {"A": "1"}})
    actions, _ = step(j, JobObserved(owned_cluster(j), None))
    main = actions[0].body["spec"]["template"]["spec"]["containers"][0]
    assert main["command"] == ["my-submit"] and main["image"] == "me:1"
    env = {e["name"]: e for e in main["env"]}
    assert env["SPINDLE_TOKEN"] == {"name": "SPINDLE_TOKEN", "value": "override"}
    assert env["SPINDLE_DASHBOARD_ADDRESS"]["value"] == "http://j-cluster-head-svc.ns.svc:8265"
    assert tpl["spec"]["containers"][0]["command"] == ["my-submit"]  # the spec is not mutated
    j2 = copy.deepcopy(j)
    del j2["spec"]["submitterPodTemplate"]
    command = step(j2, JobObserved(owned_cluster(j2), None))[0][0].body["spec"]["template"]["spec"]["containers"][0]
    assert command["command"][-4:] == ["--runtime-env-json", '{"env_vars": {"A": "1"}}', "--",
                                       "python examples/primes.py"]


def test_the_same_observation_twice_gives_the_same_decision() -> None:
    j = job(running())
    c = owned_cluster(j)
    obs = JobObserved(c, submitter(j, c, 1, condition="Failed"))
    assert reconcile_job(j, obs, SETTINGS, T0) == reconcile_job(j, obs, SETTINGS, T0)
