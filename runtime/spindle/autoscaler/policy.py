"""The autoscaling policy: a pure function from cluster state and demand to a scaling decision.

Both autoscalers (the Kubernetes operator and the local provider) call ``decide`` with what the
head reports (``GET /api/autoscaler/state``, parsed by ``state_from_json``) and the worker groups'
shapes, and then carry the decision out: set each group's replicas, and remove exactly the nodes
in ``drain``, after draining them through the head. Keeping the rules here, with no I/O, makes them
testable with exact expectations and identical for both providers. The rules follow Ray's
autoscaler (``resource_demand_scheduler``):

1. Demand from tasks, actors and placement groups is bin-packed (first fit, largest shapes first)
   onto the *available* resources of live nodes, then onto nodes already asked for but not yet
   joined (a group's replicas beyond its registered nodes), each with the group's full shape.
2. ``request_resources`` bundles are bin-packed onto the *total* resources of those nodes (a
   request is a floor on cluster size, whatever the usage); what does not fit launches nodes at once.
3. Task demand left over launches nodes: one node at a time, of the group whose shape the leftover
   uses best (Ray's utilization score: no GPU node for work without GPUs, most resource types used,
   best minimum then mean utilization; then the node taking the most work; then the group listed
   first), within ``max_replicas``.
   ``upscaling_mode`` "Conservative" is Ray's ``upscaling_speed`` 1 as KubeRay documents it: per
   group, the nodes pending (asked for, not joined) never exceed the group's running nodes (at
   least 1), so a group at most doubles per round; "Default" and "Aggressive" do not limit.
   Demand that fits no group's shape is reported as infeasible and launches nothing.
4. Every group gets at least ``min_replicas`` (immediately, as Ray launches ``min_workers``).
5. Scale-down: a worker node idle for ``idle_timeout_s`` (the head's ``idle_s``: no running tasks
   or actors, no only copy of a referenced object) that no demand or request was packed onto is
   drained, longest idle first, while its group stays at or above ``min_replicas``. Busy nodes are
   never drained (replicas never go below what running work needs); neither is the head, nor a
   node whose group is unknown. Nodes already DRAINING stay in ``drain`` (they are going away) and
   are not counted in ``replicas``. A group above ``max_replicas`` sheds idle nodes (regardless of
   the timeout), then nodes not yet joined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EPS = 1e-9
MODES = ("Conservative", "Default", "Aggressive")
GROUP_LABEL = "spindle.dev/group"
POD_LABEL = "spindle.dev/pod-name"


@dataclass(frozen=True)
class WorkerGroup:
    name: str
    resources: Mapping[str, float]
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class NodeView:
    node_id: str
    group: str | None
    pod_name: str | None
    state: str  # ALIVE, DRAINING, DEAD
    resources_total: Mapping[str, float]
    resources_available: Mapping[str, float]
    idle_s: float | None  # None = busy now
    is_head: bool


@dataclass(frozen=True)
class Demand:
    shape: Mapping[str, float]
    count: int
    kind: str = "task"  # task, actor, placement_group, request
    infeasible: bool = False  # as the head saw it (no current node fits); informational


@dataclass(frozen=True)
class Options:
    idle_timeout_s: float = 60
    upscaling_mode: str = "Default"  # Conservative | Default | Aggressive


@dataclass(frozen=True)
class Decision:
    replicas: Mapping[str, int]
    drain: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)


Shape = tuple[tuple[str, float], ...]


def _norm(shape: Mapping[str, float]) -> Shape:
    return tuple(sorted((k, float(v)) for k, v in shape.items() if v > 0))


def _how_many(avail: Mapping[str, float], shape: Shape) -> int:
    """How many bundles of ``shape`` fit in ``avail`` (``shape`` is never empty)."""
    return max(0, min(math.floor((avail.get(k, 0.0) + EPS) / v) for k, v in shape))


def _take(avail: dict[str, float], shape: Shape, n: int) -> None:
    for k, v in shape:
        avail[k] = avail.get(k, 0.0) - v * n


def _size(shape: Shape) -> tuple[float, ...]:
    d = dict(shape)
    return (d.get("GPU", 0.0), d.get("CPU", 0.0), d.get("memory", 0.0), sum(d.values()))


def _fmt(shape: Shape) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in shape) + "}"


def _pack(bins: list[dict[str, float]], demand: dict[Shape, int]) -> tuple[dict[Shape, int], set[int]]:
    """First fit, largest shapes first; returns (leftover, indexes of bins that took something)."""
    left: dict[Shape, int] = {}
    used: set[int] = set()
    for shape in sorted(demand, key=lambda s: (_size(s), s), reverse=True):
        n = demand[shape]
        for i, b in enumerate(bins):
            if n <= 0:
                break
            k = min(n, _how_many(b, shape))
            if k > 0:
                _take(b, shape, k)
                used.add(i)
                n -= k
        if n > 0:
            left[shape] = n
    return left, used


def _score(group: WorkerGroup, placed: dict[Shape, int]) -> tuple[bool, int, float, float, int]:
    """Ray's utilization score of one new node of ``group`` holding ``placed`` (then: more work per node)."""
    used: dict[str, float] = {}
    for shape, n in placed.items():
        for k, v in shape:
            used[k] = used.get(k, 0.0) + v * n
    total = {k: float(v) for k, v in group.resources.items() if v > 0}
    gpu_ok = not (total.get("GPU", 0.0) > 0 and used.get("GPU", 0.0) <= 0)
    utils = [used[k] / total[k] for k in total if used.get(k, 0.0) > 0]
    count = sum(placed.values())
    if not utils:
        return (gpu_ok, 0, 0.0, 0.0, count)
    return (gpu_ok, len(utils), min(utils), sum(utils) / len(utils), count)


def _one_node(group: WorkerGroup, leftover: dict[Shape, int]) -> dict[Shape, int]:
    """What of ``leftover`` one new node of ``group`` would take."""
    b = [{k: float(v) for k, v in group.resources.items()}]
    rest, _ = _pack(b, leftover)
    return {s: n - rest.get(s, 0) for s, n in leftover.items() if n - rest.get(s, 0) > 0}


def _demand_map(items: Iterable[Demand]) -> dict[Shape, int]:
    out: dict[Shape, int] = {}
    for d in items:
        s = _norm(d.shape)
        if s and d.count > 0:
            out[s] = out.get(s, 0) + int(d.count)
    return out


def decide(groups: Sequence[WorkerGroup], nodes: Sequence[NodeView], demand: Sequence[Demand], options: Options,
           current_replicas: Mapping[str, int]) -> Decision:
    if options.upscaling_mode not in MODES:
        raise ValueError(f"upscaling_mode must be one of {', '.join(MODES)}, got {options.upscaling_mode!r}")
    by_name = {g.name: g for g in groups}
    reasons: list[str] = []
    current = {g.name: max(0, int(current_replicas.get(g.name, 0))) for g in groups}
    alive = [n for n in nodes if n.state == "ALIVE"]
    draining = [n for n in nodes if n.state == "DRAINING" and n.group in by_name and not n.is_head]
    registered = {g: sum(1 for n in alive + draining if n.group == g) for g in by_name}
    running = {g: sum(1 for n in alive if n.group == g) for g in by_name}
    pending = {g: max(0, current[g] - registered[g]) for g in by_name}
    launches = dict.fromkeys(by_name, 0)

    # 1. task/actor/placement-group demand onto what live nodes have free, then onto nodes not yet joined
    work = _demand_map(d for d in demand if d.kind != "request")
    bins = [dict(n.resources_available) for n in alive]
    pending_bins = [dict(by_name[g].resources) for g in by_name for _ in range(pending[g])]
    leftover, used = _pack(bins + [dict(b) for b in pending_bins], work)
    needed = {alive[i].node_id for i in used if i < len(alive)}

    # 2. request_resources bundles onto total capacity; what does not fit launches now (no speed limit)
    requests = _demand_map(d for d in demand if d.kind == "request")
    req_left, req_used = _pack([dict(n.resources_total) for n in alive] + [dict(b) for b in pending_bins], requests)
    needed |= {alive[i].node_id for i in req_used if i < len(alive)}
    new_bins: list[dict[str, float]] = []
    req_left = _drop_infeasible(req_left, groups, alive, reasons, "requested bundle")
    while req_left:
        g = _best_group(groups, req_left, lambda name: current[name] + launches[name] < by_name[name].max_replicas)
        if g is None:
            reasons.append(f"requested bundles {_list(req_left)} do not fit: every group that could hold them is "
                           "at max replicas")
            break
        req_left = _sub(req_left, _one_node(by_name[g], req_left))
        launches[g] += 1
        new_bins.append(dict(by_name[g].resources))
        reasons.append(f"launch 1 {g} node for requested resources (request_resources)")

    # 3. leftover work: onto the nodes launched for requests, then new nodes (upscaling speed, max replicas)
    leftover, _ = _pack(new_bins, leftover)
    leftover = _drop_infeasible(leftover, groups, alive, reasons, "pending")
    conservative = options.upscaling_mode == "Conservative"
    speed_launched = dict.fromkeys(by_name, 0)

    def may_launch(name: str) -> bool:
        if current[name] + launches[name] >= by_name[name].max_replicas:
            return False
        return not conservative or pending[name] + speed_launched[name] < max(1, running[name])

    while leftover:
        g = _best_group(groups, leftover, may_launch)
        if g is None:
            capped = [n for n in by_name if current[n] + launches[n] >= by_name[n].max_replicas]
            why = (f"groups at max replicas: {', '.join(capped)}" if capped else "") if not conservative else \
                "Conservative upscaling: each group's pending nodes are limited to its running nodes (at least 1)"
            reasons.append(f"pending {_list(leftover)} waits: {why or 'no group can take it'}")
            break
        took = _one_node(by_name[g], leftover)
        leftover = _sub(leftover, took)
        launches[g] += 1
        speed_launched[g] += 1
        reasons.append(f"launch 1 {g} node for pending {_list(took)}")

    # 4. min replicas; targets counting the nodes already draining as gone
    # (a draining node already removed from the replicas, e.g. its pod deleted, is not subtracted twice)
    target = {g: current[g] - min(current[g], sum(1 for n in draining if n.group == g)) + launches[g]
              for g in by_name}
    for g, grp in by_name.items():
        if target[g] < grp.min_replicas:
            reasons.append(f"{g}: {target[g]} -> {grp.min_replicas} replicas (min_replicas)")
            target[g] = grp.min_replicas

    # 5. scale down: groups above max, then idle nodes past the timeout, keeping min replicas
    drains = [n.node_id for n in draining]
    candidates = sorted((n for n in alive if n.group in by_name and not n.is_head and n.idle_s is not None
                         and n.node_id not in needed), key=lambda n: (-(n.idle_s or 0.0), n.node_id))
    for g, grp in by_name.items():
        excess = target[g] - grp.max_replicas
        for n in [c for c in candidates if c.group == g][:max(0, excess)]:
            drains.append(n.node_id)
            target[g] -= 1
            reasons.append(f"drain {n.node_id[:12]} ({g} is above max_replicas {grp.max_replicas})")
        if target[g] > grp.max_replicas and pending[g] > 0:
            shed = min(pending[g], target[g] - grp.max_replicas)
            target[g] -= shed
            reasons.append(f"{g}: {shed} node(s) not yet joined dropped (above max_replicas {grp.max_replicas})")
    for n in candidates:
        g = n.group
        assert g is not None
        if n.node_id in drains or (n.idle_s or 0.0) < options.idle_timeout_s:
            continue
        if target[g] - 1 < by_name[g].min_replicas:
            continue
        drains.append(n.node_id)
        target[g] -= 1
        reasons.append(f"drain {n.node_id[:12]} ({g}, idle {n.idle_s:.0f} s >= idle timeout "
                       f"{options.idle_timeout_s:g} s)")
    return Decision(replicas=target, drain=tuple(drains), reasons=tuple(reasons))


def _sub(a: dict[Shape, int], b: Mapping[Shape, int]) -> dict[Shape, int]:
    return {s: n - b.get(s, 0) for s, n in a.items() if n - b.get(s, 0) > 0}


def _list(d: Mapping[Shape, int]) -> str:
    return ", ".join(f"{n} x {_fmt(s)}" for s, n in sorted(d.items()))


def _drop_infeasible(left: dict[Shape, int], groups: Sequence[WorkerGroup], alive: Sequence[NodeView],
                     reasons: list[str], what: str) -> dict[Shape, int]:
    out = {}
    for s, n in left.items():
        if any(_how_many(g.resources, s) > 0 for g in groups):
            out[s] = n
        elif not any(_how_many(node.resources_total, s) > 0 for node in alive):
            reasons.append(f"{what} {n} x {_fmt(s)} is infeasible: no worker group's shape fits it")
    return out


def _best_group(groups: Sequence[WorkerGroup], leftover: dict[Shape, int], allowed: Any) -> str | None:
    best: tuple[tuple[bool, int, float, float, int], int, str] | None = None
    for i, g in enumerate(groups):
        if not allowed(g.name):
            continue
        took = _one_node(g, leftover)
        if not took:
            continue
        key = (_score(g, took), -i, g.name)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best is not None else None


def state_from_json(payload: Mapping[str, Any]) -> tuple[list[NodeView], list[Demand]]:
    """Parse ``GET /api/autoscaler/state``: nodes (group and pod from their labels) and pending demand."""
    nodes = []
    for row in payload.get("nodes", []):
        labels = row.get("labels") or {}
        group = labels.get(GROUP_LABEL)
        nodes.append(NodeView(
            node_id=row["node_id"], group=group, pod_name=labels.get(POD_LABEL), state=row.get("state", "ALIVE"),
            resources_total={k: float(v) for k, v in (row.get("resources_total") or {}).items()},
            resources_available={k: float(v) for k, v in (row.get("resources_available") or {}).items()},
            idle_s=None if row.get("idle_s") is None else float(row["idle_s"]),
            is_head=bool(row.get("is_head_node")) or group == "head"))
    demand = [Demand(shape={k: float(v) for k, v in d["shape"].items()}, count=int(d.get("count", 1)),
                     kind=str(d.get("kind", "task")), infeasible=bool(d.get("infeasible", False)))
              for d in payload.get("pending_demand", [])]
    return nodes, demand
