"""The SpindleCluster reconcile: a pure function from (cluster, observed children) to a list of actions.

Why pure: everything users complain about in KubeRay and the dask operator (busy workers killed on
scale-down, spec edits never rolled out, duplicate heads) is a decision, and decisions are cheap to test
when they are a function returning ``[CreatePod(...), DeletePod(...)]``; ``tests/operator/test_reconcile.py``
asserts exact action lists. The kopf side (``_controller.py``) only observes, calls :func:`reconcile`, and
executes the actions in order.

Level-triggered and idempotent: the input is a fresh, consistent LIST of the cluster's pods, so running
the function twice on the same observation gives the same actions, and after the actions are applied the
next observation yields no actions. Rules, in order:

* head: finished heads are deleted; a missing head is created; duplicate heads (a race, a restarted
  operator) keep the ready, oldest one; a running head is never deleted by scaling, only by suspend or by a
  rollout. A rollout replaces a ready head last, once every worker is current *and ready*, so the head's
  outage never overlaps a worker's (the pass right after the last worker is created must not take the head
  down while that worker starts); a head that is not ready protects nothing and is replaced at once, which
  also frees workers that wait for it.
* workers per group: ``clamp(replicas, min, max)``, 0 when the cluster or the group is suspended; finished
  pods are deleted and replaced; pods named in ``scaleStrategy.workersToDelete`` are deleted (each name
  leaves the list once its pod is deleted); remaining surplus goes not-ready first, then (with the head's
  view) draining and idle ones, then outdated, then newest; deletions by scaling drain a ready worker
  first (``_drain.py``); rollouts replace at most ``maxUnavailable`` pods at a time, counting not-ready
  pods against that budget.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from . import _pods
from ._builders import (
    HEAD,
    WORKER,
    Obj,
    build_head_service,
    build_pod,
    head_service_name,
    service_spec,
    template_hash,
    token_secret_name,
)
from ._drain import AwaitDrain, DrainNode, HeadView, drain_timeout, gate, scale_down_order
from ._settings import OperatorSettings

MAX_REPLICAS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class EnsureTokenSecret:
    """Create the cluster's token secret unless it exists (409 is success)."""

    name: str


@dataclasses.dataclass(frozen=True)
class CreateService:
    body: Obj


@dataclasses.dataclass(frozen=True)
class PatchService:
    name: str
    patch: Obj


@dataclasses.dataclass(frozen=True)
class CreatePod:
    body: Obj
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class ClearWorkersToDelete:
    """Merge patch of the cluster spec guarded by resourceVersion (a concurrent edit gives 409)."""

    patch: Obj


Action = (
    EnsureTokenSecret
    | CreateService
    | PatchService
    | CreatePod
    | DeletePod
    | ClearWorkersToDelete
    | DrainNode
    | AwaitDrain
)


@dataclasses.dataclass(frozen=True)
class Observed:
    """Children as read from the API server in one pass; ``pods`` is every pod with the cluster label."""

    pods: Sequence[Mapping[str, Any]] = ()
    service: Mapping[str, Any] | None = None
    # The head's nodes, when the controller asked it (only when a pass would delete a ready worker by
    # scaling); None deletes such workers without draining them.
    head: HeadView | None = None


def desired_workers(group: Mapping[str, Any], cluster_suspended: bool) -> int:
    if cluster_suspended or group.get("suspend"):
        return 0
    low = int(group.get("minReplicas", 0))
    high = int(group.get("maxReplicas", MAX_REPLICAS))
    replicas = int(group.get("replicas", low))
    return max(low, min(replicas, high))


def rollout_budget(cluster: Mapping[str, Any], settings: OperatorSettings) -> int | None:
    """How many workers a rollout may take down at once; None when rollouts are disabled."""
    strategy = cluster.get("spec", {}).get("rolloutStrategy") or {}
    if strategy.get("type", "Rolling") == "None":
        return None
    return max(1, int(strategy.get("maxUnavailable", settings.reconcile.default_max_unavailable)))


def owned_pods(cluster: Mapping[str, Any], observed: Observed) -> list[Mapping[str, Any]]:
    owner = cluster["metadata"]["uid"]
    return [p for p in observed.pods if _pods.owned_by(p, owner)]


def reconcile(
    cluster: Mapping[str, Any],
    observed: Observed,
    settings: OperatorSettings,
    *,
    secret_known: bool = False,
) -> list[Action]:
    """The actions that move the observed children towards the cluster's spec, in execution order."""
    spec = cluster.get("spec") or {}
    name = cluster["metadata"]["name"]
    suspended = bool(spec.get("suspend"))
    budget = rollout_budget(cluster, settings)
    pods = owned_pods(cluster, observed)

    actions: list[Action] = []
    actions += _service_actions(cluster, observed, settings)

    worker_actions: list[Action] = []
    workers_settled = True
    groups = spec.get("workerGroupSpecs") or []
    for group in groups:
        group_pods = [p for p in pods if _pods.node_type(p) == WORKER and _pods.group(p) == group["groupName"]]
        acts, settled = _group_actions(cluster, group, group_pods, suspended, budget, settings, observed.head)
        worker_actions += acts
        workers_settled = workers_settled and settled
    known = {g["groupName"] for g in groups}
    for pod in pods:
        if _pods.node_type(pod) == WORKER and _pods.group(pod) not in known and not _pods.is_terminating(pod):
            worker_actions.append(
                DeletePod(
                    _pods.name(pod),
                    _pods.uid(pod),
                    "GroupRemoved",
                    f"worker group {_pods.group(pod)!r} is no longer in the spec",
                )
            )

    head_pods = [p for p in pods if _pods.node_type(p) == HEAD]
    actions += _head_actions(cluster, head_pods, suspended, budget, workers_settled, settings)
    actions += worker_actions

    draining = {a.pod_name for a in worker_actions if isinstance(a, DrainNode | AwaitDrain)}
    clear = _clear_workers_to_delete(cluster, draining)
    if clear is not None:
        actions.append(clear)
    if any(isinstance(a, CreatePod) for a in actions) or (not secret_known and not suspended):
        actions.insert(0, EnsureTokenSecret(token_secret_name(name)))
    return actions


def _service_actions(cluster: Mapping[str, Any], observed: Observed, settings: OperatorSettings) -> list[Action]:
    if observed.service is None:
        return [CreateService(build_head_service(cluster, settings))]
    if not _pods.owned_by(observed.service, cluster["metadata"]["uid"]):
        return []  # someone else's service (or a deleted namesake's, awaiting GC): never touch it
    want = service_spec(cluster, settings)
    have = observed.service.get("spec") or {}

    def ports(items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((p.get("name"), p.get("port"), p.get("targetPort"), p.get("protocol", "TCP")) for p in items)

    if (
        have.get("type", "ClusterIP") != want["type"]
        or have.get("selector") != want["selector"]
        or ports(have.get("ports") or []) != ports(want["ports"])
    ):
        return [PatchService(head_service_name(cluster["metadata"]["name"]), {"spec": want})]
    return []


def _head_actions(
    cluster: Mapping[str, Any],
    heads: list[Mapping[str, Any]],
    suspended: bool,
    budget: int | None,
    workers_settled: bool,
    settings: OperatorSettings,
) -> list[Action]:
    head_spec = (cluster.get("spec") or {}).get("headGroupSpec") or {}
    actions: list[Action] = []
    for pod in heads:
        if _pods.is_finished(pod) and not _pods.is_terminating(pod):
            actions.append(
                DeletePod(
                    _pods.name(pod),
                    _pods.uid(pod),
                    "HeadPodFailed",
                    f"head pod {_pods.name(pod)} is {_pods.phase(pod)}; it will be recreated",
                )
            )
    alive = [p for p in heads if _pods.is_alive(p)]
    if suspended:
        return actions + [DeletePod(_pods.name(p), _pods.uid(p), "Suspend", "cluster is suspended") for p in alive]
    if not alive:
        why = "replacing the failed head pod" if actions else "the cluster has no head pod"
        actions.append(CreatePod(build_pod(cluster, HEAD, head_spec, settings), "CreatedHeadPod", why))
        return actions
    # Prefer a ready head, then the oldest; any other alive head is a duplicate.
    keep, *duplicates = sorted(_pods.oldest_first(alive), key=lambda p: not _pods.is_ready(p))
    for pod in duplicates:
        actions.append(
            DeletePod(
                _pods.name(pod),
                _pods.uid(pod),
                "DuplicateHeadPod",
                f"cluster already has head pod {_pods.name(keep)}",
            )
        )
    head_waits = _pods.is_ready(keep) and not workers_settled
    if budget is not None and not head_waits and _pods.template_hash(keep) != template_hash(head_spec):
        actions.append(
            DeletePod(
                _pods.name(keep),
                _pods.uid(keep),
                "RolloutHeadPod",
                "head pod template changed; replacing the head after all workers are current and ready"
                if _pods.is_ready(keep)
                else "head pod template changed; the head is not ready, so it is replaced first",
            )
        )
        actions.append(
            CreatePod(build_pod(cluster, HEAD, head_spec, settings), "CreatedHeadPod", "rolling out new head")
        )
    return actions


def _group_actions(
    cluster: Mapping[str, Any],
    group: Mapping[str, Any],
    pods: list[Mapping[str, Any]],
    suspended: bool,
    budget: int | None,
    settings: OperatorSettings,
    head: HeadView | None = None,
) -> tuple[list[Action], bool]:
    """Actions for one worker group, and whether it is settled: every worker current and ready."""
    gname = group["groupName"]
    want = desired_workers(group, suspended)
    current_hash = template_hash(group)
    actions: list[Action] = []
    timeout = drain_timeout(cluster)

    def delete(pod: Mapping[str, Any], reason: str, message: str) -> None:
        instead = gate(head, _pods.name(pod), _pods.is_ready(pod), reason, message, timeout)
        actions.append(DeletePod(_pods.name(pod), _pods.uid(pod), reason, message) if instead is None else instead)

    def create(reason: str, message: str) -> None:
        actions.append(CreatePod(build_pod(cluster, WORKER, group, settings), reason, message))

    for pod in _pods.oldest_first(pods):
        if _pods.is_finished(pod) and not _pods.is_terminating(pod):
            delete(pod, "WorkerPodFailed", f"worker pod is {_pods.phase(pod)}; it will be replaced")
    alive = [p for p in _pods.oldest_first(pods) if _pods.is_alive(p)]

    requested = set((group.get("scaleStrategy") or {}).get("workersToDelete") or [])
    for pod in alive:
        if _pods.name(pod) in requested:
            delete(pod, "WorkersToDelete", "listed in scaleStrategy.workersToDelete")
    remaining = [p for p in alive if _pods.name(p) not in requested]

    def outdated(pod: Mapping[str, Any]) -> bool:
        return _pods.template_hash(pod) != current_hash

    surplus = len(remaining) - want
    if surplus > 0:
        # Least useful first: not ready (cannot be busy), then draining or idle (when the head was asked),
        # then outdated, then newest.
        victims = sorted(
            _pods.newest_first(remaining),
            key=lambda p: (_pods.is_ready(p), scale_down_order(head, _pods.name(p)), not outdated(p)),
        )
        if suspended or group.get("suspend"):
            reason, why = "Suspend", "cluster is suspended" if suspended else f"group {gname} is suspended"
        else:
            reason, why = "ScaleDown", f"group {gname} scaled down to {want}"
        for pod in victims[:surplus]:
            delete(pod, reason, why)
        remaining = [p for p in remaining if p not in victims[:surplus]]
    deficit = want - len(remaining)
    for i in range(deficit):
        create("CreatedWorkerPod", f"group {gname} has {len(remaining) + i}/{want} workers")

    stale = [p for p in remaining if outdated(p)]
    if budget is not None and stale and surplus <= 0:
        unavailable = sum(not _pods.is_ready(p) for p in remaining) + max(deficit, 0)
        allowed = max(0, budget - unavailable)
        # Not-ready pods first (cheapest to replace), then oldest.
        for pod in sorted(stale, key=_pods.is_ready)[:allowed]:
            delete(pod, "RolloutWorkerPod", f"group {gname} template changed")
            create("CreatedWorkerPod", f"rolling out group {gname}")
    return actions, not stale and all(_pods.is_ready(p) for p in remaining)


def _clear_workers_to_delete(cluster: Mapping[str, Any], draining: set[str]) -> ClearWorkersToDelete | None:
    """Remove every name from ``workersToDelete`` except pods still draining (deleted on a later pass)."""
    groups = (cluster.get("spec") or {}).get("workerGroupSpecs") or []

    def listed(g: Mapping[str, Any]) -> list[str]:
        return list((g.get("scaleStrategy") or {}).get("workersToDelete") or [])

    if all(set(listed(g)) <= draining for g in groups):
        return None
    cleared = copy.deepcopy(list(groups))
    for g in cleared:
        if listed(g):
            g["scaleStrategy"]["workersToDelete"] = [n for n in listed(g) if n in draining]
    return ClearWorkersToDelete(
        {
            "metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"]},
            "spec": {"workerGroupSpecs": cleared},
        }
    )
