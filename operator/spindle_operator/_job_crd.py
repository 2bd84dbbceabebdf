"""The SpindleJob CustomResourceDefinition (spindle.dev/v1alpha1, short name ``spj``), shaped like KubeRay's RayJob.

Cross-field rules are CEL with readable messages, so ``kubectl apply`` of a job that names both or neither
of clusterSpec/clusterSelector fails with the reason. ``clusterSpec`` reuses the SpindleCluster spec schema
(and its rules). ``submissionMode`` is ``K8sJobMode`` (a submitter Job) or ``HTTPMode`` (the operator calls
the head's job API itself, with the token it reads from the cluster's Secret; KubeRay's HTTPMode).
"""

from __future__ import annotations

from typing import Any

from ._builders import GROUP, VERSION, Obj
from ._crd import DNS_LABEL, _pod_template, _spec, conditions_schema
from ._job_builders import JOB_KIND, JOB_PLURAL, JOB_SHORT_NAMES, JOB_SINGULAR, MAX_JOB_NAME

DEPLOYMENT_STATES = ["Initializing", "Running", "Complete", "Failed", "Suspended", "Retrying"]


def _job_spec() -> Obj:
    return {
        "type": "object",
        "required": ["entrypoint"],
        "properties": {
            "entrypoint": {"type": "string", "minLength": 1, "maxLength": 16384,
                           "description": "The shell command the job runs on the head, e.g. `python train.py`."},
            "runtimeEnv": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                           "description": "The job's runtime_env (env_vars, working_dir URI, py_modules, pip)."},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "entrypointNumCpus": {"type": "number", "minimum": 0},
            "clusterSpec": {**_spec(), "description": "Run on a new SpindleCluster owned by this job."},
            "clusterSelector": {
                "type": "object", "additionalProperties": {"type": "string"},
                "description": "Run on an existing SpindleCluster: {spindle.dev/cluster: <name>}.",
                "x-kubernetes-validations": [{
                    "rule": "'spindle.dev/cluster' in self && self.size() == 1",
                    "message": "clusterSelector must be exactly {spindle.dev/cluster: <cluster name>}",
                }],
            },
            "submitterPodTemplate": {
                **_pod_template(),
                "description": "The submitter pod (default: the cluster's runtime image running `spindle job "
                "submit`); its first container gets SPINDLE_TOKEN, SPINDLE_DASHBOARD_ADDRESS and "
                "SPINDLE_JOB_SUBMISSION_ID.",
            },
            "submissionMode": {
                "type": "string", "enum": ["K8sJobMode", "HTTPMode"], "default": "K8sJobMode",
                "description": "K8sJobMode: a submitter Job runs `spindle job submit` (its logs are the job's). "
                "HTTPMode: the operator submits to the head's job API itself with the cluster token and follows "
                "the job there (no submitter pod; read the logs with `spindle job logs`)."},
            "shutdownAfterJobFinishes": {"type": "boolean", "default": False,
                                         "description": "Delete the owned cluster once the job has finished."},
            "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0, "default": 0,
                                        "description": "Wait this long after the job finished before deleting "
                                        "the owned cluster."},
            "activeDeadlineSeconds": {"type": "integer", "minimum": 1,
                                      "description": "Fail the job (no retry) when it has not finished this "
                                      "many seconds after it started."},
            "backoffLimit": {"type": "integer", "minimum": 0, "default": 0,
                             "description": "Failed attempts retried (each a fresh submission) before Failed."},
            "suspend": {"type": "boolean", "default": False,
                        "description": "Delete the submitter and the owned cluster; false again starts a fresh "
                        "attempt."},
        },
        "x-kubernetes-validations": [
            {"rule": "has(self.clusterSpec) != has(self.clusterSelector)",
             "message": "set exactly one of clusterSpec (a new cluster owned by the job) or clusterSelector (an "
             "existing cluster)"},
            {"rule": "!has(self.ttlSecondsAfterFinished) || self.ttlSecondsAfterFinished == 0 || "
             "(has(self.shutdownAfterJobFinishes) && self.shutdownAfterJobFinishes)",
             "message": "ttlSecondsAfterFinished only applies with shutdownAfterJobFinishes: true"},
            {"rule": "!has(self.shutdownAfterJobFinishes) || !self.shutdownAfterJobFinishes || has(self.clusterSpec)",
             "message": "shutdownAfterJobFinishes needs clusterSpec: a selected cluster is never deleted by a job"},
        ],
    }


def _job_status() -> Obj:
    string = {"type": "string"}
    integer = {"type": "integer"}
    return {
        "type": "object",
        "properties": {
            "jobStatus": {"type": "string", "enum": ["", "PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"]},
            "jobDeploymentStatus": {"type": "string", "enum": DEPLOYMENT_STATES},
            "jobId": string, "clusterName": string, "dashboardURL": string, "reason": string, "message": string,
            "startTime": string, "endTime": string, "attempt": integer, "failed": integer,
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": conditions_schema(),
        },
    }


def _columns() -> list[dict[str, Any]]:
    return [
        {"name": "Job Status", "type": "string", "jsonPath": ".status.jobStatus"},
        {"name": "Deployment Status", "type": "string", "jsonPath": ".status.jobDeploymentStatus"},
        {"name": "Cluster", "type": "string", "jsonPath": ".status.clusterName"},
        {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
        {"name": "Start", "type": "string", "jsonPath": ".status.startTime", "priority": 1},
        {"name": "End", "type": "string", "jsonPath": ".status.endTime", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_job_crd() -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{JOB_PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": JOB_KIND, "listKind": f"{JOB_KIND}List", "plural": JOB_PLURAL,
                      "singular": JOB_SINGULAR, "shortNames": list(JOB_SHORT_NAMES), "categories": ["spindle"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": _columns(),
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A Spindle job: an entrypoint submitted to a new or an existing SpindleCluster.",
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "metadata": {"type": "object"}, "spec": _job_spec(), "status": _job_status()},
                    "x-kubernetes-validations": [
                        {"rule": f"self.metadata.name.matches('{DNS_LABEL}')",
                         "message": "metadata.name must be a DNS label (lowercase letters, digits and '-', "
                         "starting with a letter): it names the job's cluster and submitter"},
                        {"rule": f"self.metadata.name.size() <= {MAX_JOB_NAME}",
                         "message": f"metadata.name must be at most {MAX_JOB_NAME} characters (the owned cluster "
                         "is named <job>-cluster)"},
                    ],
                }},
            }],
        },
    }
