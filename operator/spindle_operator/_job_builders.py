"""Names and bodies of what a SpindleJob owns: its SpindleCluster (clusterSpec mode) and submitter Jobs.

The submitter is a Kubernetes Job running ``spindle job submit`` in the cluster's runtime image against
``<cluster>-head-svc:8265``, so the job's logs are the submitter pod's logs and its exit code is the job's
outcome (0 succeeded, 1 failed, 2 stopped). Each attempt has its own submitter and its own submission id
(``<job>-<uid prefix>-<attempt>``), so a retry is a fresh submission, never a collision with the last one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from ._builders import (
    GROUP,
    KIND,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    TOKEN_KEY,
    VERSION,
    Obj,
    head_service_name,
    token_secret_name,
)
from ._settings import OperatorSettings

JOB_KIND = "SpindleJob"
JOB_PLURAL = "spindlejobs"
JOB_SINGULAR = "spindlejob"
JOB_SHORT_NAMES = ["spj"]
LABEL_JOB = "spindle.dev/job"
SUBMITTER_CONTAINER = "submitter"
MAX_JOB_NAME = 40  # "<job>-cluster" must fit a SpindleCluster name (48)


def job_owner_reference(job: Mapping[str, Any]) -> Obj:
    meta = job["metadata"]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": JOB_KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def owned_cluster_name(job_name: str) -> str:
    return f"{job_name}-cluster"


def cluster_name(job: Mapping[str, Any]) -> str:
    spec = job["spec"]
    if spec.get("clusterSpec") is not None:
        return owned_cluster_name(job["metadata"]["name"])
    return str(spec["clusterSelector"]["spindle.dev/cluster"])


def submitter_name(job_name: str, attempt: int) -> str:
    return f"{job_name}-submit-{attempt}"


def submission_id(job: Mapping[str, Any], attempt: int) -> str:
    return f"{job['metadata']['name']}-{job['metadata']['uid'][:8]}-{attempt}"


def dashboard_url(job: Mapping[str, Any], settings: OperatorSettings) -> str:
    ns = job["metadata"]["namespace"]
    return f"http://{head_service_name(cluster_name(job))}.{ns}.svc:{settings.ports.dashboard}"


def build_owned_cluster(job: Mapping[str, Any]) -> Obj:
    name = job["metadata"]["name"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": owned_cluster_name(name),
            "namespace": job["metadata"]["namespace"],
            "labels": {LABEL_JOB: name, LABEL_MANAGED_BY: MANAGED_BY},
            "ownerReferences": [job_owner_reference(job)],
        },
        "spec": copy.deepcopy(job["spec"]["clusterSpec"]),
    }


def _runtime_image(cluster: Mapping[str, Any]) -> str:
    containers = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    return str(containers[0]["image"])


def submit_command(job: Mapping[str, Any], settings: OperatorSettings, attempt: int) -> list[str]:
    spec = job["spec"]
    argv = ["spindle", "job", "submit", "--address", dashboard_url(job, settings),
            "--submission-id", submission_id(job, attempt)]
    if spec.get("runtimeEnv"):
        argv += ["--runtime-env-json", json.dumps(spec["runtimeEnv"], sort_keys=True)]
    if spec.get("metadata"):
        argv += ["--metadata-json", json.dumps(spec["metadata"], sort_keys=True)]
    if spec.get("entrypointNumCpus") is not None:
        argv += ["--entrypoint-num-cpus", str(spec["entrypointNumCpus"])]
    return [*argv, "--", spec["entrypoint"]]


def build_submitter(job: Mapping[str, Any], cluster: Mapping[str, Any], settings: OperatorSettings,
                    attempt: int) -> Obj:
    """The batch/v1 Job of one attempt: the user's submitterPodTemplate, or the runtime image by default."""
    meta = job["metadata"]
    cluster_name_ = cluster["metadata"]["name"]
    env: list[Obj] = [
        {"name": "SPINDLE_TOKEN",
         "valueFrom": {"secretKeyRef": {"name": token_secret_name(cluster_name_), "key": TOKEN_KEY}}},
        {"name": "SPINDLE_DASHBOARD_ADDRESS", "value": dashboard_url(job, settings)},
        {"name": "SPINDLE_JOB_SUBMISSION_ID", "value": submission_id(job, attempt)},
    ]
    template: Obj = copy.deepcopy(job["spec"].get("submitterPodTemplate") or {})
    pod_spec: Obj = template.setdefault("spec", {})
    containers: list[Obj] = pod_spec.setdefault("containers", [])
    if not containers:
        containers.append({
            "name": SUBMITTER_CONTAINER,
            "image": _runtime_image(cluster),
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        })
    main = containers[0]
    main.setdefault("command", submit_command(job, settings, attempt))
    names = {e.get("name") for e in main.get("env", [])}
    main["env"] = [*main.get("env", []), *[e for e in env if e["name"] not in names]]
    pod_spec["restartPolicy"] = "Never"  # retries are the SpindleJob's backoffLimit, each a fresh submission
    labels = {LABEL_JOB: meta["name"], LABEL_MANAGED_BY: MANAGED_BY}
    pod_meta: Obj = template.setdefault("metadata", {})
    pod_meta.setdefault("labels", {}).update(labels)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": submitter_name(meta["name"], attempt),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [job_owner_reference(job)],
        },
        "spec": {"backoffLimit": 0, "template": template},
    }
