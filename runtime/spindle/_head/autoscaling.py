"""What the head knows for the autoscaler: pending demand by shape, per-node idleness, drains.

The head is the one place that sees the whole cluster, so the autoscaler (the operator's, or the
local provider) asks it three things: what work is waiting for a node that fits (tasks queued in
drivers, which report their waiting shapes here; pending actors, which the head places itself;
explicit ``request_resources`` bundles; placement-group bundles through ``demand_hooks``), how long
each node has been idle (the agents report what keeps them busy on every heartbeat), and whether a
node it drains has let go of its work. Draining is the contract that makes scale-down safe: a
draining node gets no new leases or actors, and it counts as drained only once its agent, knowing
it drains, reports nothing running and no primary copy of a referenced object (or the drain's
deadline passed, after which the node-loss machinery retries its work elsewhere).

Everything here runs under the head's lock; ``snapshot`` renders ``GET /api/autoscaler/state``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spindle._proto import pb
from spindle._scheduling import fits

REPORT_TTL_S = 10.0  # a driver's demand report counts this long (drivers refresh theirs every few seconds)

# A source of extra demand (e.g. placement groups): returns entries {"shape": {...}, "count": n, "kind": k}.
DemandHook = Callable[[], list[dict[str, Any]]]


@dataclass
class Drain:
    reason: str
    started: float  # monotonic
    deadline: float  # monotonic; drained regardless once it passes


@dataclass
class Activity:
    """What the node's agent last reported about its work, and since when it has had none."""

    usage: pb.NodeUsage | None = None
    idle_since: float | None = field(default_factory=time.monotonic)  # None = busy now
    draining_acked: bool = False  # the last report was measured by an agent that knew it drains


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def busy_reasons(usage: pb.NodeUsage | None) -> list[str]:
    """Why a node is not idle, in words (empty = idle)."""
    if usage is None:
        return []
    out = []
    if usage.leases:
        out.append(f"{_plural(usage.leases, 'running task')} (leased workers)")
    if usage.actors:
        out.append(_plural(usage.actors, "actor"))
    if usage.bundles:
        out.append(f"holds {_plural(usage.bundles, 'placement group bundle')}")
    if usage.starting:
        out.append(f"{_plural(usage.starting, 'lease or actor')} being started")
    if usage.primary_objects:
        out.append(f"holds the only copy of {_plural(usage.primary_objects, 'referenced object')}")
    return out


def _shape(r: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(r.items()) if v > 0}


class AutoscalerBook:
    """The autoscaler's tables in the head (guarded by the head's lock)."""

    def __init__(self) -> None:
        self.activity: dict[str, Activity] = {}
        self.drains: dict[str, Drain] = {}
        self.reports: dict[str, tuple[float, list[pb.ShapeDemand]]] = {}
        self.requested: list[dict[str, float]] = []
        self.demand_hooks: list[DemandHook] = []

    # ---------------------------------------------------------------- reports
    def node_joined(self, node_id: str) -> None:
        self.activity[node_id] = Activity()

    def heartbeat(self, node_id: str, usage: pb.NodeUsage, draining: bool, now: float) -> None:
        act = self.activity.setdefault(node_id, Activity())
        act.usage = usage
        act.draining_acked = draining and node_id in self.drains
        if busy_reasons(usage):
            act.idle_since = None
        elif act.idle_since is None:
            act.idle_since = now

    def report_demand(self, reporter: str, shapes: Iterable[pb.ShapeDemand], now: float) -> None:
        kept = [s for s in shapes if s.count > 0]
        if kept:
            self.reports[reporter] = (now, kept)
        else:
            self.reports.pop(reporter, None)

    def request_resources(self, bundles: Iterable[Mapping[str, float]]) -> None:
        self.requested = [_shape(b) for b in bundles if _shape(b)]

    # ---------------------------------------------------------------- drains
    def drain(self, node_id: str, deadline_s: float, reason: str, now: float) -> Drain:
        existing = self.drains.get(node_id)
        if existing is not None:
            return existing  # idempotent: the first drain's deadline stands
        d = self.drains[node_id] = Drain(reason, now, now + max(0.0, deadline_s))
        act = self.activity.setdefault(node_id, Activity())
        act.draining_acked = False
        return d

    def undrain(self, node_id: str) -> None:
        self.drains.pop(node_id, None)
        act = self.activity.get(node_id)
        if act is not None:
            act.draining_acked = False

    def drained(self, node_id: str, alive: bool, now: float) -> tuple[bool, str]:
        """(drained, why): idle as reported by an agent that knew it drains, dead, or past the deadline."""
        d = self.drains.get(node_id)
        if d is None:
            return False, "the node is not draining"
        if not alive:
            return True, "the node is gone"
        act = self.activity.get(node_id)
        reasons = busy_reasons(act.usage if act else None)
        if act is not None and act.draining_acked and not reasons:
            return True, "idle: no running tasks or actors, no only copies of referenced objects"
        if now >= d.deadline:
            why = "; ".join(reasons) or "its agent has not confirmed the drain"
            return True, f"the drain deadline passed (still: {why}); its work is retried elsewhere when it goes"
        if act is None or not act.draining_acked:
            return False, "waiting for the node's agent to confirm it takes no new work"
        return False, "busy: " + "; ".join(reasons)

    # ---------------------------------------------------------------- rendering
    def pending_demand(self, actors: Iterable[Mapping[str, float]], capacity: Sequence[Mapping[str, float]],
                       now: float, alive: Container[str] = ()) -> list[dict[str, Any]]:
        """Demand entries by (shape, kind); ``capacity`` = totals of the schedulable nodes (for ``infeasible``)."""
        counts: dict[tuple[tuple[tuple[str, float], ...], str, bool], int] = {}

        def add(shape: Mapping[str, float], n: int, kind: str, infeasible: bool = False) -> None:
            s = _shape(shape)
            if not s or n <= 0:
                return
            infeasible = infeasible or not any(fits(s, c) for c in capacity)
            key = (tuple(s.items()), kind, infeasible)
            counts[key] = counts.get(key, 0) + n

        # a lease being granted (its worker still starting) will take one of the tasks its driver reports queued
        granting: dict[tuple[tuple[str, float], ...], int] = {}
        for node_id, act in self.activity.items():
            if act.usage is not None and node_id in alive:
                for r in act.usage.granting:
                    key = tuple(_shape(r.amounts).items())
                    granting[key] = granting.get(key, 0) + 1
        for reporter, (t, shapes) in list(self.reports.items()):
            if now - t > REPORT_TTL_S:
                del self.reports[reporter]  # the reporter died or stopped reporting
                continue
            for sd in shapes:
                key = tuple(_shape(sd.shape.amounts).items())
                taken = min(sd.count, granting.get(key, 0))
                granting[key] = granting.get(key, 0) - taken
                add(sd.shape.amounts, sd.count - taken, "task", sd.infeasible)
        for shape in actors:
            add(shape, 1, "actor")
        for hook in self.demand_hooks:
            for entry in hook():
                add(entry["shape"], int(entry.get("count", 1)), str(entry.get("kind", "placement_group")),
                    bool(entry.get("infeasible", False)))
        for b in self.requested:
            add(b, 1, "request")
        return [{"shape": dict(shape), "count": n, "kind": kind, "infeasible": inf}
                for (shape, kind, inf), n in counts.items()]

    def node_row(self, info: pb.NodeInfo, alive: bool, now: float) -> dict[str, Any]:
        act = self.activity.get(info.node_id)
        state = "DEAD" if not alive else ("DRAINING" if info.node_id in self.drains else "ALIVE")
        reasons = busy_reasons(act.usage if act else None) if alive else []
        idle_s = None
        if alive and act is not None and act.idle_since is not None and not reasons:
            idle_s = round(max(0.0, now - act.idle_since), 3)
        return {"node_id": info.node_id, "state": state, "is_head_node": info.is_head, "labels": dict(info.labels),
                "resources_total": dict(info.total.amounts), "resources_available": dict(info.available.amounts),
                "idle_s": idle_s, "busy_reasons": reasons}
