"""The SpindleCluster status, computed purely from the cluster and what one pass observed.

Status is a function of observation, never a record of what the operator *did*: a restarted operator,
a missed event or a stale cache therefore cannot leave it stuck (kuberay #2154, dask #975). Condition
``lastTransitionTime`` is carried over from the previous status while a condition's status is unchanged, so
an unchanged world produces an identical dict and the controller skips the status write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _pods
from ._builders import HEAD, WORKER, Obj, head_service_name
from ._reconcile import Observed, desired_workers, owned_pods
from ._settings import OperatorSettings

PENDING, READY, SUSPENDED, FAILED = "Pending", "Ready", "Suspended", "Failed"


def _condition(
    previous: Mapping[str, Mapping[str, Any]], now: str, ctype: str, status: bool, reason: str, message: str
) -> Obj:
    value = "True" if status else "False"
    old = previous.get(ctype) or {}
    since = old.get("lastTransitionTime") if old.get("status") == value else None
    return {
        "type": ctype,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }


def compute_status(
    cluster: Mapping[str, Any],
    observed: Observed,
    settings: OperatorSettings,
    *,
    now: str,
    failure: str | None = None,
) -> Obj:
    """``failure`` is the message of a create the API server rejected during this pass, if any."""
    spec = cluster.get("spec") or {}
    meta = cluster["metadata"]
    suspended = bool(spec.get("suspend"))
    pods = owned_pods(cluster, observed)
    groups = spec.get("workerGroupSpecs") or []
    known = {g["groupName"] for g in groups}

    desired = sum(desired_workers(g, suspended) for g in groups)
    workers = [p for p in pods if _pods.node_type(p) == WORKER and _pods.group(p) in known]
    ready_workers = sum(_pods.is_ready(p) for p in workers)
    heads = sorted(
        _pods.oldest_first(p for p in pods if _pods.node_type(p) == HEAD and _pods.is_alive(p)),
        key=lambda p: not _pods.is_ready(p),
    )
    head = heads[0] if heads else None
    head_ready = head is not None and _pods.is_ready(head)
    workers_ready = ready_workers >= desired

    service = observed.service or {}
    # Absent values are explicit None so that a merge patch removes them (e.g. a deleted head's IP).
    head_status: Obj = {
        "podName": _pods.name(head) if head is not None else None,
        "podIP": ((head or {}).get("status") or {}).get("podIP") or None,
        "serviceName": head_service_name(meta["name"]),
        "serviceIP": (service.get("spec") or {}).get("clusterIP") or None,
    }

    if suspended:
        state, reason = (SUSPENDED, "Suspended") if not pods else (PENDING, "Suspending")
    elif failure and not head_ready:
        state, reason = FAILED, failure
    elif head_ready and workers_ready:
        state, reason = READY, "AllPodsReady"
    elif not head_ready:
        state, reason = PENDING, "WaitingForHead"
    else:
        state, reason = PENDING, "WaitingForWorkers"

    previous = {c.get("type", ""): c for c in (cluster.get("status") or {}).get("conditions") or []}
    conditions = [
        _condition(
            previous,
            now,
            "HeadPodReady",
            head_ready,
            "HeadPodRunningAndReady" if head_ready else ("HeadPodNotReady" if head else "HeadPodNotFound"),
            f"head pod {_pods.name(head)}" if head else "no head pod",
        ),
        _condition(
            previous,
            now,
            "WorkersReady",
            workers_ready,
            "AllWorkersReady" if workers_ready else "WorkersNotReady",
            f"{ready_workers}/{desired} worker pods ready",
        ),
        _condition(
            previous,
            now,
            "ReplicaFailure",
            bool(failure),
            "FailedCreatePod" if failure else "NoFailure",
            failure or "",
        ),
        _condition(
            previous,
            now,
            "Suspended",
            state == SUSPENDED,
            reason if suspended else "NotSuspended",
            "all pods deleted" if state == SUSPENDED else ("deleting pods" if suspended else ""),
        ),
    ]
    return {
        "state": state,
        "reason": reason,
        "conditions": conditions,
        "desiredWorkerReplicas": desired,
        "readyWorkerReplicas": ready_workers,
        "head": head_status,
        "endpoints": {k: str(v) for k, v in settings.ports.named().items()},
        "observedGeneration": meta.get("generation", 0),
    }


def _pruned(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def status_changed(cluster: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether merge-patching ``status`` would change the cluster's current status."""
    current = cluster.get("status") or {}
    return any(_pruned(current.get(k)) != _pruned(v) for k, v in status.items())
