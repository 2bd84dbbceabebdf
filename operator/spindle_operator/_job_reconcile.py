"""The SpindleJob reconcile: a pure function from (job, observed cluster and submitter, now) to a decision.

Like the SpindleCluster reconcile it returns exact actions (tested in tests/operator/test_job_reconcile.py)
and the status to write; the controller only observes and executes. The rule users of KubeRay's RayJob
ask for most is **never stuck**: every way an attempt can go wrong ends it with a reason, and the job then
retries (a fresh submission) while ``failed <= backoffLimit`` or ends Failed:

* the submitter Job failed (the entrypoint failed, the head restarted and lost the job, the pod could not
  run) -> ``SubmitterFailed``; the submitter of a running attempt was deleted -> ``SubmitterDeleted``;
* the cluster was deleted under a running attempt -> ``ClusterDeleted``;
* the cluster name is taken by a cluster this job does not own -> Failed ``ClusterNameTaken`` at once;
* ``activeDeadlineSeconds`` passed -> Failed ``DeadlineExceeded`` at once (no retry), submitter deleted.

With ``submissionMode: HTTPMode`` there is no submitter: the operator submits to the head's job API itself
(:class:`SubmitJob`, with the cluster token) and reads the job back each pass (``JobObserved.head_job``); the
same rules apply: the head answering 404 for a running attempt's job (a restarted head lost it) ->
``JobLost``; the job FAILED/STOPPED -> ``JobFailed``; a deadline stops the job (:class:`StopJob`). A head
that does not answer leaves the attempt Running with the reason in the message (the cluster's own rules
recreate a dead head, whose restart then shows as JobLost).

After Complete/Failed, ``shutdownAfterJobFinishes`` deletes the owned cluster once
``ttlSecondsAfterFinished`` has passed. ``suspend`` deletes the submitter and the owned cluster; resuming
starts a fresh attempt.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from ._builders import Obj
from ._job_builders import (
    build_owned_cluster,
    build_submitter,
    cluster_name,
    dashboard_url,
    submission_id,
    submitter_name,
)
from ._settings import OperatorSettings

INITIALIZING, RUNNING, COMPLETE, FAILED, SUSPENDED, RETRYING = (
    "Initializing", "Running", "Complete", "Failed", "Suspended", "Retrying")
TERMINAL = (COMPLETE, FAILED)
CLUSTER_READY = "Ready"


@dataclasses.dataclass(frozen=True)
class CreateCluster:
    body: Obj


@dataclasses.dataclass(frozen=True)
class DeleteCluster:
    name: str
    uid: str
    reason: str


@dataclasses.dataclass(frozen=True)
class CreateSubmitter:
    body: Obj


@dataclasses.dataclass(frozen=True)
class DeleteSubmitter:
    name: str
    uid: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class SubmitJob:
    """POST the Jobs API request ``body`` (Ray's field names) to the head of ``cluster``."""

    cluster: str
    body: Obj


@dataclasses.dataclass(frozen=True)
class StopJob:
    cluster: str
    submission_id: str
    reason: str


Action = CreateCluster | DeleteCluster | CreateSubmitter | DeleteSubmitter | Event | SubmitJob | StopJob
HTTP_MODE = "HTTPMode"


@dataclasses.dataclass(frozen=True)
class JobObserved:
    """``cluster``: the SpindleCluster the job runs on (or None); ``submitter``: the current attempt's Job."""

    cluster: Obj | None
    submitter: Obj | None
    head_job: Obj | None = None  # HTTPMode: the head's record of the attempt's submission (None: 404 / not asked)
    head_error: str | None = None  # HTTPMode: why the head could not be asked


@dataclasses.dataclass(frozen=True)
class JobDecision:
    actions: Sequence[Action]
    status: Obj
    requeue_after: float | None = None


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(job_status: Mapping[str, Any], type_: str, true: bool, reason: str, message: str, now: str) -> Obj:
    status = "True" if true else "False"
    previous = next((c for c in job_status.get("conditions", []) if c.get("type") == type_), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    return {"type": type_, "status": status, "reason": reason, "message": message[:1024], "lastTransitionTime": since}


def _finished(condition_type: str, job: Obj | None) -> Obj | None:
    if job is None:
        return None
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == condition_type and c.get("status") == "True":
            return dict(c)
    return None


def _owned_by(obj: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    return any(r.get("uid") == job["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences", []))


def submit_body(job: Obj, attempt: int) -> Obj:
    """The Jobs API request of one attempt (the same fields `spindle job submit` sends in K8sJobMode)."""
    spec = job["spec"]
    body: Obj = {"entrypoint": spec["entrypoint"], "submission_id": submission_id(job, attempt),
                 "runtime_env": dict(spec.get("runtimeEnv") or {}), "metadata": dict(spec.get("metadata") or {})}
    if spec.get("entrypointNumCpus") is not None:
        body["entrypoint_num_cpus"] = spec["entrypointNumCpus"]
    return body


def reconcile_job(job: Obj, observed: JobObserved, settings: OperatorSettings,
                  now: datetime.datetime) -> JobDecision:
    spec, meta = job["spec"], job["metadata"]
    old: Mapping[str, Any] = job.get("status") or {}
    now_s = format_time(now)
    owned = spec.get("clusterSpec") is not None
    cname = cluster_name(job)
    attempt = int(old.get("attempt", 0))
    failed = int(old.get("failed", 0))
    deployment = old.get("jobDeploymentStatus") or ""
    status: dict[str, Any] = {
        "jobDeploymentStatus": deployment or INITIALIZING, "jobStatus": old.get("jobStatus", ""),
        "jobId": old.get("jobId", ""), "clusterName": cname, "dashboardURL": dashboard_url(job, settings),
        "attempt": attempt, "failed": failed, "startTime": old.get("startTime") or now_s,
        "endTime": old.get("endTime", ""), "reason": old.get("reason", ""), "message": old.get("message", ""),
        "observedGeneration": meta.get("generation", 0),
    }
    actions: list[Action] = []
    requeue: list[float] = []
    cluster, submitter = observed.cluster, observed.submitter
    ours = cluster is not None and _owned_by(cluster, job)

    def done() -> JobDecision:
        dep = status["jobDeploymentStatus"]
        status["conditions"] = [
            _condition(old, "Complete", dep == COMPLETE, status["reason"] if dep == COMPLETE else "", "", now_s),
            _condition(old, "Failed", dep == FAILED, status["reason"] if dep == FAILED else "",
                       status["message"] if dep == FAILED else "", now_s),
        ]
        return JobDecision(actions, status, min(requeue) if requeue else None)

    def set_state(dep: str, reason: str, message: str, job_status: str | None = None) -> None:
        if dep != deployment or reason != status["reason"]:
            actions.append(Event("Warning" if dep in (FAILED, RETRYING) else "Normal", reason, message))
        status.update(jobDeploymentStatus=dep, reason=reason, message=message)
        if job_status is not None:
            status["jobStatus"] = job_status
        if dep in TERMINAL:
            status["endTime"] = status["endTime"] or now_s

    http = spec.get("submissionMode") == HTTP_MODE
    head_job = observed.head_job

    def delete_submitter(reason: str) -> None:
        if submitter is not None:
            actions.append(DeleteSubmitter(submitter["metadata"]["name"], submitter["metadata"]["uid"], reason))
        if http and head_job is not None and head_job.get("status") in ("PENDING", "RUNNING"):
            actions.append(StopJob(cname, str(head_job.get("submission_id") or status["jobId"]), reason))

    def attempt_failed(reason: str, message: str) -> JobDecision:
        status["failed"] = failed + 1
        if failed + 1 > int(spec.get("backoffLimit", 0)):
            set_state(FAILED, reason, f"{message} (attempt {attempt}; backoffLimit {spec.get('backoffLimit', 0)} "
                                      "reached)", "FAILED")
            return done()
        delete_submitter(f"attempt {attempt} failed: {reason}")
        set_state(RETRYING, reason, f"{message}; retrying as attempt {attempt + 1} with a fresh submission",
                  "FAILED")
        requeue.append(0.0)
        return done()

    # ---- finished: only the owned cluster's shutdown is left
    if deployment in TERMINAL:
        if owned and spec.get("shutdownAfterJobFinishes") and cluster is not None and ours:
            ttl = int(spec.get("ttlSecondsAfterFinished", 0))
            left = (parse_time(status["endTime"] or now_s) + datetime.timedelta(seconds=ttl) - now).total_seconds()
            if left <= 0:
                actions.append(DeleteCluster(cname, cluster["metadata"]["uid"], "the job finished "
                                             "(shutdownAfterJobFinishes)"))
                actions.append(Event("Normal", "DeletedCluster", f"deleted SpindleCluster {cname}: the job finished"))
            else:
                requeue.append(left)
        return done()

    # ---- suspend: nothing runs; resume starts a fresh attempt
    if spec.get("suspend"):
        delete_submitter("the job is suspended")
        if owned and cluster is not None and ours:
            actions.append(DeleteCluster(cname, cluster["metadata"]["uid"], "the job is suspended"))
        set_state(SUSPENDED, "Suspended", "suspended: submitter and owned cluster deleted; set suspend: false "
                                          "to run it again as a fresh attempt", "")
        status["startTime"] = ""
        return done()
    if deployment == SUSPENDED:
        status["startTime"] = now_s
        deployment = ""  # resumed: start over below as a new attempt

    # ---- deadline
    deadline = spec.get("activeDeadlineSeconds")
    if deadline:
        left = (parse_time(status["startTime"]) + datetime.timedelta(seconds=int(deadline)) - now).total_seconds()
        if left <= 0:
            delete_submitter("activeDeadlineSeconds passed")
            set_state(FAILED, "DeadlineExceeded", f"the job ran longer than activeDeadlineSeconds ({deadline}s)",
                      "FAILED" if status["jobStatus"] else "")
            requeue.append(0.0)  # the finished branch handles shutdownAfterJobFinishes
            return done()
        requeue.append(left)

    # ---- the cluster
    if cluster is not None and owned and not ours:
        set_state(FAILED, "ClusterNameTaken", f"a SpindleCluster named {cname} exists and is not owned by this job: "
                                              "delete it or rename the job")
        return done()
    if cluster is None:
        if deployment == RUNNING:
            return attempt_failed("ClusterDeleted", f"SpindleCluster {cname} was deleted while the job was running")
        if owned:
            actions.append(CreateCluster(build_owned_cluster(job)))
            set_state(INITIALIZING if deployment != RETRYING else RETRYING, "CreatingCluster",
                      f"creating SpindleCluster {cname}")
        else:
            set_state(INITIALIZING, "WaitingForCluster", f"waiting for SpindleCluster {cname} (clusterSelector) "
                                                         "to exist")
        return done()
    cluster_state = (cluster.get("status") or {}).get("state", "")
    if http:
        return _http_attempt(job, observed, status, set_state, attempt_failed, actions, requeue, done, cluster_state,
                             deployment, attempt)
    if submitter is None and cluster_state != CLUSTER_READY:
        if deployment == RUNNING:
            return attempt_failed("SubmitterDeleted", f"the submitter Job of attempt {attempt} disappeared")
        set_state(deployment if deployment == RETRYING else INITIALIZING, "WaitingForCluster",
                  f"waiting for SpindleCluster {cname} to be Ready (it is {cluster_state or 'starting'})")
        return done()

    # ---- the submitter of the current attempt
    if submitter is None:
        if deployment == RUNNING:
            return attempt_failed("SubmitterDeleted", f"the submitter Job of attempt {attempt} disappeared")
        attempt += 1
        status.update(attempt=attempt, jobId=submission_id(job, attempt), jobStatus="PENDING", endTime="")
        actions.append(CreateSubmitter(build_submitter(job, cluster, settings, attempt)))
        set_state(RUNNING, "Submitting", f"attempt {attempt}: submitting {status['jobId']} with Job "
                                         f"{submitter_name(meta['name'], attempt)}")
        return done()
    if _finished("Complete", submitter):
        set_state(COMPLETE, "JobSucceeded", f"the job succeeded (attempt {attempt})", "SUCCEEDED")
        requeue.append(0.0)
        return done()
    failure = _finished("Failed", submitter)
    if failure is not None:
        return attempt_failed("SubmitterFailed", f"the submitter Job {submitter['metadata']['name']} failed "
                              f"({failure.get('reason', '')}: {failure.get('message', '')}); its logs are the job's: "
                              f"kubectl logs job/{submitter['metadata']['name']}")
    sub_status = submitter.get("status") or {}
    running = int(sub_status.get("ready", 0) or 0) > 0 or int(sub_status.get("active", 0) or 0) > 0
    set_state(RUNNING, "Running" if running else "Submitting",
              f"attempt {attempt}: {'running' if running else 'waiting for the submitter pod'}")
    status["jobStatus"] = "RUNNING" if running else "PENDING"
    return done()


HEAD_RETRY_S = 5.0


def _http_attempt(job: Obj, observed: JobObserved, status: dict[str, Any], set_state: Any, attempt_failed: Any,
                  actions: list[Action], requeue: list[float], done: Any, cluster_state: str, deployment: str,
                  attempt: int) -> JobDecision:
    """HTTPMode from a cluster that exists: submit once it is Ready, then follow the head's record."""
    cname = status["clusterName"]
    if deployment != RUNNING:
        if cluster_state != CLUSTER_READY:
            set_state(deployment if deployment == RETRYING else INITIALIZING, "WaitingForCluster",
                      f"waiting for SpindleCluster {cname} to be Ready (it is {cluster_state or 'starting'})")
            return done()
        attempt += 1
        status.update(attempt=attempt, jobId=submission_id(job, attempt), jobStatus="PENDING", endTime="")
        actions.append(SubmitJob(cname, submit_body(job, attempt)))
        set_state(RUNNING, "Submitting", f"attempt {attempt}: submitting {status['jobId']} to the head's job API")
        requeue.append(1.0)
        return done()
    if observed.head_error is not None:
        set_state(RUNNING, "HeadUnreachable", f"attempt {attempt}: cannot ask the head about {status['jobId']}: "
                  f"{observed.head_error}")
        requeue.append(HEAD_RETRY_S)
        return done()
    info = observed.head_job
    if info is None:
        return attempt_failed("JobLost", f"the head of {cname} no longer knows job {status['jobId']} (it restarted "
                              "without job storage)")
    head_status = str(info.get("status", ""))
    if head_status == "SUCCEEDED":
        set_state(COMPLETE, "JobSucceeded", f"the job succeeded (attempt {attempt})", "SUCCEEDED")
        requeue.append(0.0)
        return done()
    if head_status in ("FAILED", "STOPPED"):
        return attempt_failed("JobFailed", f"job {status['jobId']} ended {head_status}: "
                              f"{str(info.get('message') or '').splitlines()[0] if info.get('message') else ''}")
    set_state(RUNNING, "Running" if head_status == "RUNNING" else "Submitting",
              f"attempt {attempt}: {head_status.lower() or 'submitted'} on the head")
    status["jobStatus"] = head_status if head_status in ("PENDING", "RUNNING") else "PENDING"
    requeue.append(HEAD_RETRY_S)
    return done()
