"""Runs the SpindleJob reconcile against the API server (one serialized worker per job, like clusters).

A pass GETs the job, its cluster (owned or selected) and the current attempt's submitter Job, calls the
pure :func:`~spindle_operator._job_reconcile.reconcile_job`, executes its actions in order and writes the
status if it changed. Deletes carry uid preconditions; creates treat 409 as "already there", so a
restarted operator converges without duplicates. Time-based rules (deadline, TTL) ask for a pass at the
right moment through ``requeue_after``.
"""

from __future__ import annotations

import datetime
from typing import Any

from ._builders import PLURAL, TOKEN_KEY, Obj
from ._controller import Controller, Emit, PassResult, _log_emit
from ._job_builders import JOB_PLURAL, cluster_name, submitter_name
from ._job_http import JobApi, JobApiError
from ._job_reconcile import (
    HTTP_MODE,
    CreateCluster,
    CreateSubmitter,
    DeleteCluster,
    DeleteSubmitter,
    Event,
    JobObserved,
    StopJob,
    SubmitJob,
    reconcile_job,
)
from ._kube import ApiError, Kube
from ._settings import OperatorSettings
from ._status import status_changed


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _observe_head(api: JobApi, job: Obj, namespace: str, cluster: Obj | None) -> tuple[Obj | None, str | None]:
    """HTTPMode: (the head's record of the current attempt, or why the head could not be asked)."""
    status = job.get("status") or {}
    if cluster is None or status.get("jobDeploymentStatus") != "Running" or not status.get("jobId"):
        return None, None
    try:
        return api.get(namespace, cluster["metadata"]["name"], status["jobId"]), None
    except JobApiError as exc:
        return None, str(exc)


def reconcile_job_once(kube: Kube, settings: OperatorSettings, namespace: str, name: str, *,
                       emit: Emit = _log_emit, now: datetime.datetime | None = None,
                       api: JobApi | None = None) -> PassResult:
    job = kube.get_custom(JOB_PLURAL, namespace, name)
    if job is None or job["metadata"].get("deletionTimestamp"):
        return PassResult(exists=False)
    attempt = int((job.get("status") or {}).get("attempt", 0))
    cluster = kube.get_custom(PLURAL, namespace, cluster_name(job))
    http = job["spec"].get("submissionMode") == HTTP_MODE
    api = api or JobApi(settings, lambda ns, secret: kube.get_secret_value(ns, secret, TOKEN_KEY))
    head_job, head_error = _observe_head(api, job, namespace, cluster) if http else (None, None)
    observed = JobObserved(
        cluster=cluster,
        submitter=kube.get_batch_job(namespace, submitter_name(name, attempt)) if attempt and not http else None,
        head_job=head_job, head_error=head_error,
    )
    decision = reconcile_job(job, observed, settings, now or utcnow())
    failure: str | None = None
    for action in decision.actions:
        if isinstance(action, SubmitJob):
            try:
                api.submit(namespace, action.cluster, action.body)
            except JobApiError as exc:
                failure = f"submitting to the head of {action.cluster} failed: {exc}"
                emit(job, "Warning", "FailedSubmit", failure)
                return PassResult(exists=True, failure=failure)  # status unchanged: the next pass retries
            emit(job, "Normal", "Submitted", f"submitted {action.body['submission_id']} to the head of "
                 f"{action.cluster}")
            continue
        if isinstance(action, StopJob):
            try:
                api.stop(namespace, action.cluster, action.submission_id)
                emit(job, "Normal", "StoppedJob", f"stopped {action.submission_id}: {action.reason}")
            except JobApiError as exc:
                emit(job, "Warning", "FailedStop", f"stopping {action.submission_id} failed: {exc}")
            continue
        if isinstance(action, CreateCluster):
            if kube.create_cluster(namespace, action.body) is not None:
                emit(job, "Normal", "CreatedCluster", f"created SpindleCluster {action.body['metadata']['name']}")
        elif isinstance(action, DeleteCluster):
            kube.delete_cluster(namespace, action.name, action.uid)
        elif isinstance(action, CreateSubmitter):
            try:
                created = kube.create_batch_job(namespace, action.body)
            except ApiError as exc:
                if exc.status not in (400, 403, 422):
                    raise
                failure = f"creating the submitter Job failed: {exc.message}"
                emit(job, "Warning", "FailedCreateSubmitter", failure)
                return PassResult(exists=True, failure=failure)  # status unchanged: the next pass retries
            if created is not None:
                emit(job, "Normal", "CreatedSubmitter", f"created submitter Job {action.body['metadata']['name']}")
        elif isinstance(action, DeleteSubmitter):
            if kube.delete_batch_job(namespace, action.name, action.uid):
                emit(job, "Normal", "DeletedSubmitter", f"deleted submitter Job {action.name}: {action.reason}")
        elif isinstance(action, Event):
            emit(job, action.type, action.reason, action.message)
    if status_changed(job, decision.status):
        try:
            kube.patch_job_status(namespace, name, decision.status)
        except ApiError as exc:
            if exc.status == 404:
                return PassResult(exists=False)
            raise
    return PassResult(exists=True, failure=failure, requeue_after=decision.requeue_after)


class JobController(Controller):
    """The cluster controller's worker loop, running :func:`reconcile_job_once` per SpindleJob."""

    kind = "SpindleJob"

    def __init__(self, settings: OperatorSettings, emit: Emit = _log_emit, kube: Kube | None = None) -> None:
        super().__init__(settings, emit)
        self._kube = kube

    async def _pass(self, key: tuple[str, str]) -> PassResult:
        import asyncio

        return await asyncio.to_thread(reconcile_job_once, self.kube, self.settings, *key, emit=self.emit)

    def describe(self) -> dict[str, Any]:
        return self.active()
