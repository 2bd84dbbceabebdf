"""The SpindleJob reconcile in HTTPMode (pure): the operator submits to the head's job API itself and follows
the head's record; exact actions and status for each situation, the never-stuck rules included."""

from __future__ import annotations

from typing import Any

from spindle_operator._job_reconcile import Event, JobObserved, StopJob, SubmitJob
from tests.operator.test_job_reconcile import at, job, kinds, owned_cluster, running, step


def http_job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return job(status, submissionMode="HTTPMode", runtimeEnv={"env_vars": {"A": "1"}}, entrypointNumCpus=1, **spec)


def record(state: str, message: str = "") -> dict[str, Any]:
    return {"submission_id": "j-abcdef12-1", "status": state, "message": message}


def test_http_mode_submits_to_the_head_once_the_cluster_is_ready_and_creates_no_submitter() -> None:
    j = http_job({"jobDeploymentStatus": "Initializing", "startTime": "2026-01-01T00:00:00Z"})
    actions, status = step(j, JobObserved(owned_cluster(j, "Pending"), None))
    assert kinds(actions) == ["Event:WaitingForCluster"]
    actions, status = step(j, JobObserved(owned_cluster(j), None))
    assert actions == [
        SubmitJob("j-cluster", {"entrypoint": "python examples/primes.py", "submission_id": "j-abcdef12-1",
                                "runtime_env": {"env_vars": {"A": "1"}}, "metadata": {}, "entrypoint_num_cpus": 1}),
        Event("Normal", "Submitting", "attempt 1: submitting j-abcdef12-1 to the head's job API"),
    ]
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["attempt"], status["jobId"]) == (
        "Running", "PENDING", 1, "j-abcdef12-1")


def test_http_mode_mirrors_the_heads_status_while_the_job_runs() -> None:
    j = http_job(running(reason="Submitting"))
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=record("RUNNING")))
    assert kinds(actions) == ["Event:Running"]
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Running", "RUNNING")
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=record("PENDING")))
    assert status["jobStatus"] == "PENDING"


def test_http_mode_completes_when_the_head_says_succeeded() -> None:
    j = http_job(running())
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=record("SUCCEEDED")), at(20))
    assert kinds(actions) == ["Event:JobSucceeded"]
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["endTime"]) == (
        "Complete", "SUCCEEDED", "2026-01-01T00:00:20Z")


def test_http_mode_retries_a_failed_job_as_a_fresh_submission_then_fails_past_the_backoff_limit() -> None:
    j = http_job(running(), backoffLimit=1)
    failed = record("FAILED", "Job entrypoint command failed with exit code 3\nlogs")
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=failed))
    assert kinds(actions) == ["Event:JobFailed"]
    assert (status["jobDeploymentStatus"], status["failed"], status["reason"]) == ("Retrying", 1, "JobFailed")
    assert "ended FAILED: Job entrypoint command failed with exit code 3;" in status["message"]
    retry = http_job(status, backoffLimit=1)
    actions, status = step(retry, JobObserved(owned_cluster(retry), None))
    assert [type(a).__name__ for a in actions] == ["SubmitJob", "Event"]
    assert actions[0].body["submission_id"] == "j-abcdef12-2" and status["attempt"] == 2
    last = http_job(running(attempt=2, failed=1), backoffLimit=1)
    actions, status = step(last, JobObserved(owned_cluster(last), None, head_job=record("STOPPED")))
    assert (status["jobDeploymentStatus"], status["jobStatus"], status["failed"]) == ("Failed", "FAILED", 2)


def test_http_mode_a_head_that_lost_the_job_ends_the_attempt_instead_of_waiting_forever() -> None:
    j = http_job(running())
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=None))
    assert kinds(actions) == ["Event:JobLost"]
    assert status["jobDeploymentStatus"] == "Failed" and "no longer knows job j-abcdef12-1" in status["message"]


def test_http_mode_an_unreachable_head_keeps_the_attempt_running_with_the_reason_and_looks_again() -> None:
    j = http_job(running())
    decision_actions, status = step(j, JobObserved(owned_cluster(j), None, head_error="connection refused"))
    assert kinds(decision_actions) == ["Event:HeadUnreachable"]
    assert status["jobDeploymentStatus"] == "Running" and status["reason"] == "HeadUnreachable"
    assert "connection refused" in status["message"]


def test_http_mode_the_deadline_stops_the_job_on_the_head() -> None:
    j = http_job(running(), activeDeadlineSeconds=60)
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=record("RUNNING")), at(61))
    assert actions[0] == StopJob("j-cluster", "j-abcdef12-1", "activeDeadlineSeconds passed")
    assert kinds(actions)[1:] == ["Event:DeadlineExceeded"]
    assert (status["jobDeploymentStatus"], status["reason"]) == ("Failed", "DeadlineExceeded")


def test_http_mode_suspend_stops_the_running_job() -> None:
    j = http_job(running(), suspend=True)
    actions, status = step(j, JobObserved(owned_cluster(j), None, head_job=record("RUNNING")))
    assert kinds(actions) == ["StopJob", "DeleteCluster", "Event:Suspended"]
    assert status["jobDeploymentStatus"] == "Suspended"
