"""What the operator's autoscaler does on one tick, as a pure function of the cluster, its pods and its head.

The scaling *policy* (bin-packing demand onto group shapes, idle timeouts, upscaling speed) is the
runtime's public ``spindle.autoscaler.policy.decide``, shared with the local provider. This module turns
its :class:`Decision` into Kubernetes terms, in a way that never deletes a busy worker and survives
operator restarts:

* scale-up: the group's ``replicas`` is raised at once;
* scale-down: each node the policy wants gone is first recorded in ``status.autoscaler.pendingDrains``, then
  drained through the head; on a later tick, once the head says it is drained (or it is gone), its pod is
  put in ``scaleStrategy.workersToDelete`` and ``replicas`` lowered by one, and the reconcile deletes
  exactly that pod. All progress lives in the CR's status, so a tick never blocks and a restarted operator
  picks up where the last one stopped;
* reversal: when the policy wants more capacity in a group than its non-draining workers give, pending
  drains are cancelled (undrained) before any new pod is asked for.

Finalizing is idempotent: a drained pod already listed in ``workersToDelete`` or already gone lowers
``replicas`` no further, so a tick that patched the spec but failed to write the status does no harm.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from spindle.autoscaler.policy import Decision, NodeView, Options, WorkerGroup, decide, state_from_json

from . import _pods
from ._builders import WORKER, Obj, cpu_quantity, inferred_params
from ._drain import drain_timeout
from ._reconcile import desired_workers


def enabled(cluster: Mapping[str, Any]) -> bool:
    spec = cluster.get("spec") or {}
    return bool((spec.get("autoscalerOptions") or {}).get("enabled") or spec.get("enableInTreeAutoscaling"))


def options(cluster: Mapping[str, Any]) -> Options:
    opts = (cluster.get("spec") or {}).get("autoscalerOptions") or {}
    return Options(
        idle_timeout_s=float(opts.get("idleTimeoutSeconds", 60)),
        upscaling_mode=str(opts.get("upscalingMode", "Default")),
    )


def group_resources(group: Mapping[str, Any]) -> dict[str, float]:
    """What one worker of ``group`` offers: ``startParams`` first, then the main container's limits/requests."""
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    params = {k.lstrip("-"): v for k, v in inferred_params(containers[0], group.get("startParams") or {}).items()}
    resources: dict[str, float] = {}
    if params.get("resources"):
        resources.update({str(k): float(v) for k, v in json.loads(str(params["resources"])).items()})
    cpus = cpu_quantity(params["num-cpus"]) if "num-cpus" in params else None
    if cpus is not None:
        resources["CPU"] = float(cpus)
    if "num-gpus" in params:
        resources["GPU"] = float(params["num-gpus"])
    if "memory" in params:
        resources["memory"] = float(params["memory"])
    return resources


def worker_groups(cluster: Mapping[str, Any]) -> list[WorkerGroup]:
    return [
        WorkerGroup(
            name=g["groupName"],
            resources=group_resources(g),
            min_replicas=int(g.get("minReplicas", 0)),
            max_replicas=int(g.get("maxReplicas", 2**31 - 1)),
        )
        for g in (cluster.get("spec") or {}).get("workerGroupSpecs") or []
        if not g.get("suspend")
    ]


@dataclasses.dataclass(frozen=True)
class Drain:
    node_id: str
    pod_name: str
    group: str
    deadline_s: float


@dataclasses.dataclass(frozen=True)
class Undrain:
    node_id: str
    pod_name: str
    group: str


@dataclasses.dataclass(frozen=True)
class Tick:
    """Everything one tick does, in order: patch the spec (if any), write the status, then call the head."""

    spec_patch: Obj | None  # merge patch of spec.workerGroupSpecs, guarded by resourceVersion
    status: Obj  # status.autoscaler
    drains: tuple[Drain, ...] = ()
    undrains: tuple[Undrain, ...] = ()
    events: tuple[tuple[str, str], ...] = ()  # (reason, message), all "Normal"
    decision: Decision | None = None


def _pending(cluster: Mapping[str, Any]) -> list[dict[str, str]]:
    status = (cluster.get("status") or {}).get("autoscaler") or {}
    return [dict(p) for p in status.get("pendingDrains") or []]


def plan(
    cluster: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    state: Mapping[str, Any],
    drained: Mapping[str, bool],
    now: str,
) -> Tick:
    """One tick. ``state`` is the head's ``GET /api/autoscaler/state``; ``drained`` the head's answer to
    ``GET /api/autoscaler/drain/{id}`` for each pending drain (missing: not asked, counts as not drained)."""
    spec = cluster.get("spec") or {}
    groups_spec: list[Obj] = copy.deepcopy(list(spec.get("workerGroupSpecs") or []))
    suspended = bool(spec.get("suspend"))
    groups = worker_groups(cluster)
    names = {g.name for g in groups}
    current = {g["groupName"]: desired_workers(g, suspended) for g in groups_spec if g["groupName"] in names}
    nodes, demand = state_from_json(dict(state))
    decision = decide(groups, nodes, demand, options(cluster), current)
    by_id: dict[str, NodeView] = {n.node_id: n for n in nodes}
    alive_pods = {
        _pods.name(p) for p in pods if _pods.node_type(p) == WORKER and _pods.is_alive(p)
    }
    listed = {g["groupName"]: set((g.get("scaleStrategy") or {}).get("workersToDelete") or []) for g in groups_spec}
    wanted_gone = set(decision.drain)
    events: list[tuple[str, str]] = []

    replicas = dict(current)
    finalize: dict[str, list[str]] = {}
    still: list[dict[str, str]] = []
    done: set[str] = set()  # node ids whose drain ended this tick (the policy keeps listing them)
    for p in _pending(cluster):
        node = by_id.get(p["nodeId"])
        if p["group"] not in current:
            continue  # the group was removed or suspended: its pods go without us
        if node is None or node.state == "DEAD" or drained.get(p["nodeId"]):
            done.add(p["nodeId"])
            if p["podName"] in alive_pods and p["podName"] not in listed.get(p["group"], set()):
                finalize.setdefault(p["group"], []).append(p["podName"])
            continue
        still.append(p)

    undrains: list[Undrain] = []
    for gname in current:
        pending_g = [p for p in still if p["group"] == gname]
        keep_capacity = current[gname] - len(pending_g) - len(finalize.get(gname, []))
        want = int(decision.replicas.get(gname, current[gname]))
        cancellable = [p for p in pending_g if p["nodeId"] not in wanted_gone]
        for p in cancellable[: max(0, want - keep_capacity)]:
            undrains.append(Undrain(p["nodeId"], p["podName"], gname))
            still.remove(p)
            keep_capacity += 1
        replicas[gname] = current[gname] - len(finalize.get(gname, []))
        if want > keep_capacity:
            replicas[gname] += want - keep_capacity
        for pod_name in finalize.get(gname, []):
            events.append(("ScaledDown", f"removing drained worker {pod_name} of group {gname}"))
        if replicas[gname] > current[gname]:
            events.append(("ScaledUp", f"group {gname}: {current[gname]} -> {replicas[gname]} workers"))
    for u in undrains:
        events.append(("DrainCancelled", f"{u.pod_name} is needed again; it stays"))

    pending_ids = {p["nodeId"] for p in still}
    timeout = drain_timeout(cluster)
    drains: list[Drain] = []
    for node_id in decision.drain:
        node = by_id.get(node_id)
        if node_id in pending_ids or node_id in done or node is None or not node.pod_name or node.state != "ALIVE":
            continue  # a node drained by someone else (a manual scale-down) is theirs to finish
        if node.group is None or node.group not in current or node.pod_name not in alive_pods:
            continue
        if node.pod_name in listed[node.group]:
            continue
        drains.append(Drain(node_id, node.pod_name, node.group, timeout))
        still.append({"podName": node.pod_name, "nodeId": node_id, "group": node.group, "since": now})
        events.append(("DrainingWorker", f"draining idle worker {node.pod_name} (node {node_id}) of group "
                                         f"{node.group} before removing it"))

    spec_patch: Obj | None = None
    if replicas != current or finalize:
        for g in groups_spec:
            gname = g["groupName"]
            if gname in replicas and replicas[gname] != current[gname]:
                g["replicas"] = replicas[gname]
            if finalize.get(gname):
                strategy = g.setdefault("scaleStrategy", {})
                strategy["workersToDelete"] = sorted(set(strategy.get("workersToDelete") or []) | set(finalize[gname]))
        spec_patch = {
            "metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"]},
            "spec": {"workerGroupSpecs": groups_spec},
        }

    summary = ", ".join(f"{g}={replicas[g]}" for g in sorted(replicas)) or "no worker groups"
    if drains or still:
        summary += f"; draining {len(still)}"
    reason = "; ".join(decision.reasons) or "no pending demand and no idle worker past the idle timeout"
    previous = (cluster.get("status") or {}).get("autoscaler") or {}
    same = previous.get("lastDecision") == summary and previous.get("reason") == reason
    status: Obj = {
        "lastDecision": summary,
        "reason": reason,
        "time": previous.get("time") if same and previous.get("time") else now,
        "headError": None,
        "pendingDrains": still,
    }
    return Tick(spec_patch, status, tuple(drains), tuple(undrains), tuple(events), decision)
