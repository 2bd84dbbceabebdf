"""Where work runs: pure placement and restart policies, no I/O, unit-tested on plain data.

Node agents call ``place`` for every lease request with their latest view of the cluster (the
head broadcasts it on each heartbeat); the head calls it to place actors. The answer is either
"run here", "ask that node", "wait" (feasible but busy now) or "infeasible" (no node could ever
run it: the caller warns and keeps waiting, as Ray does, since nodes may join).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from spindle._labels import Expr
from spindle._labels import describe as describe_labels
from spindle._labels import loads as label_loads
from spindle._labels import matches as label_matches

EPS = 1e-9

Decision = Literal["local", "remote", "wait", "infeasible"]


@dataclass
class NodeView:
    node_id: str
    address: str
    total: dict[str, float]
    available: dict[str, float]
    alive: bool = True
    schedulable: bool = True  # False while the autoscaler drains it: nothing new is placed there
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Placement:
    decision: Decision
    node_id: str = ""
    address: str = ""
    reason: str = ""


@dataclass
class Strategy:
    kind: str = "DEFAULT"  # DEFAULT, SPREAD, NODE_AFFINITY, NODE_LABEL
    node_id: str = ""
    soft: bool = False
    labels_hard: tuple[Expr, ...] = ()  # label_selector / NodeLabelSchedulingStrategy(hard=): required
    labels_soft: tuple[Expr, ...] = ()  # NodeLabelSchedulingStrategy(soft=): preferred


def strategy_from_wire(s: Any) -> Strategy:
    """A ``pb.SchedulingStrategy`` (or anything with its fields) as the placer's Strategy."""
    return Strategy(s.kind or "DEFAULT", s.node_id, s.soft, label_loads(s.labels_hard), label_loads(s.labels_soft))


def fits(request: Mapping[str, float], available: Mapping[str, float]) -> bool:
    return all(available.get(k, 0.0) + EPS >= v for k, v in request.items() if v > 0)


def subtract(pool: dict[str, float], request: Mapping[str, float]) -> None:
    for k, v in request.items():
        if v > 0:
            pool[k] = pool.get(k, 0.0) - v


def add(pool: dict[str, float], request: Mapping[str, float]) -> None:
    for k, v in request.items():
        if v > 0:
            pool[k] = pool.get(k, 0.0) + v


def _load(node: NodeView) -> float:
    """Fraction of the node's CPUs in use (0 idle, 1 full); ties prefer bigger nodes."""
    total = node.total.get("CPU", 0.0)
    if total <= 0:
        return 1.0
    return 1.0 - node.available.get("CPU", 0.0) / total


@dataclass
class Placer:
    """Placement with the little state SPREAD needs (a round-robin cursor)."""

    _spread: itertools.count = field(default_factory=itertools.count)

    def place(
        self,
        request: Mapping[str, float],
        strategy: Strategy,
        nodes: Iterable[NodeView],
        local_node_id: str | None,
    ) -> Placement:
        alive = [n for n in nodes if n.alive and n.schedulable]
        if strategy.labels_hard:
            alive = [n for n in alive if label_matches(n.labels, strategy.labels_hard)]
            if not alive:
                return Placement("infeasible", reason=f"no live node has labels matching "
                                                      f"{describe_labels(strategy.labels_hard)}")
        by_id = {n.node_id: n for n in alive}
        feasible = [n for n in alive if fits(request, n.total)]
        if strategy.labels_soft:  # preferred nodes only, as long as one of them can ever take it
            preferred = [n for n in feasible if label_matches(n.labels, strategy.labels_soft)]
            if preferred:
                feasible = preferred
                by_id = {n.node_id: n for n in preferred}
        if strategy.kind == "NODE_AFFINITY":
            target = by_id.get(strategy.node_id)
            if target is not None and fits(request, target.total):
                return self._at(target, local_node_id, wait=not fits(request, target.available))
            if not strategy.soft:
                why = "is dead, draining or unknown" if target is None else "lacks the resources"
                return Placement("infeasible", reason=f"node {strategy.node_id} {why} (hard node affinity)")
        if not feasible:
            return Placement("infeasible", reason=f"no node has {dict(request)}")
        ready = [n for n in feasible if fits(request, n.available)]
        if strategy.kind == "SPREAD" and ready:
            ready.sort(key=lambda n: n.node_id)
            target = ready[next(self._spread) % len(ready)]
            return self._at(target, local_node_id, wait=False)
        local = by_id.get(local_node_id or "")
        if local is not None and local in ready:
            return Placement("local", local.node_id, local.address)
        if ready:
            target = min(ready, key=lambda n: (_load(n), -n.total.get("CPU", 0.0), n.node_id))
            return self._at(target, local_node_id, wait=False)
        if local is not None and local in feasible:
            return Placement("wait", local.node_id, local.address, "waiting for resources")
        target = min(feasible, key=lambda n: (_load(n), n.node_id))
        return self._at(target, local_node_id, wait=True)

    @staticmethod
    def _at(node: NodeView, local_node_id: str | None, wait: bool) -> Placement:
        if node.node_id == local_node_id:
            return Placement("wait" if wait else "local", node.node_id, node.address)
        return Placement("remote", node.node_id, node.address, "busy" if wait else "")


RestartDecision = Literal["restart", "dead"]


def actor_restart_decision(max_restarts: int, num_restarts: int, intended: bool) -> RestartDecision:
    """Ray's rule: restart unless the exit was intended or the budget (-1 = unlimited) is spent."""
    if intended:
        return "dead"
    if max_restarts < 0 or num_restarts < max_restarts:
        return "restart"
    return "dead"


def task_should_retry(
    retries_left: int, app_error: bool, retry_exceptions: bool | tuple[type, ...], error: BaseException | None
) -> bool:
    """System failures retry while budget remains (-1 = forever); app errors only if opted in."""
    if retries_left == 0:
        return False
    if not app_error:
        return True
    if retry_exceptions is True:
        return True
    if isinstance(retry_exceptions, tuple) and error is not None:
        cause = getattr(error, "cause", None) or error
        return isinstance(cause, retry_exceptions)
    return False
