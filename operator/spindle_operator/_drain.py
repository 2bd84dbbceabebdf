"""Drain before delete: the pure rule that keeps scale-down from killing a worker that is still busy.

The most reported pain of KubeRay and the dask operator is scale-down deleting workers that still ran
tasks or held the only copy of data (kuberay #1238, #1192; dask-kubernetes #807, #633). Here a worker pod
chosen for deletion by scaling (``replicas`` lowered, ``workersToDelete``, the autoscaler) is first
*drained* through its head: the head stops placing work there and reports it drained once it is idle or
its deadline passed; only then is the pod deleted. When the head cannot be asked (unreachable, still
starting) the pod is deleted directly, as before: draining is best effort and never blocks scaling.

:class:`HeadView` is what one reconcile pass knows about the head's nodes, keyed by pod name (the
``spindle.dev/pod-name`` node label the operator puts on every worker). :func:`gate` turns "delete this pod"
into the action for this pass: delete now, start draining, or wait.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ._builders import LABEL_GROUP, LABEL_POD_NAME

# Deletions by scaling are drained first; failed pods, rollouts, suspend and removed groups are not.
DRAINED_REASONS = frozenset({"ScaleDown", "WorkersToDelete"})
DEFAULT_DRAIN_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class HeadNode:
    """One Spindle node as the head sees it (from ``GET /api/autoscaler/state`` plus drain checks)."""

    node_id: str
    pod_name: str
    group: str | None
    state: str  # ALIVE | DRAINING | DEAD
    idle_s: float | None = None  # None: busy now
    drained: bool = False  # DRAINING and the head says it may be removed


@dataclasses.dataclass(frozen=True)
class HeadView:
    """The head's nodes of one cluster, by pod name; built by the controller, read by the reconcile."""

    nodes: Mapping[str, HeadNode] = dataclasses.field(default_factory=dict)

    def node(self, pod_name: str) -> HeadNode | None:
        return self.nodes.get(pod_name)


@dataclasses.dataclass(frozen=True)
class DrainNode:
    """Ask the head to drain the node of ``pod_name`` (its pod is deleted on a later pass, once drained)."""

    node_id: str
    pod_name: str
    deadline_s: float
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class AwaitDrain:
    """A pod waits for its node to finish draining; nothing to do this pass but look again soon."""

    pod_name: str
    node_id: str


def nodes_from_state(payload: Mapping[str, Any]) -> dict[str, HeadNode]:
    """Worker nodes of a ``GET /api/autoscaler/state`` answer that carry a pod-name label, by pod name.

    A pod restarted in place registers a new node under the same pod name; the live one wins.
    """
    found: dict[str, HeadNode] = {}
    for raw in payload.get("nodes") or []:
        labels = raw.get("labels") or {}
        pod = labels.get(LABEL_POD_NAME)
        if not pod or raw.get("is_head_node"):
            continue
        idle = raw.get("idle_s")
        node = HeadNode(
            node_id=str(raw["node_id"]),
            pod_name=str(pod),
            group=labels.get(LABEL_GROUP),
            state=str(raw.get("state") or "ALIVE"),
            idle_s=None if idle is None else float(idle),
        )
        old = found.get(node.pod_name)
        if old is None or (old.state == "DEAD" and node.state != "DEAD"):
            found[node.pod_name] = node
    return found


def drain_timeout(cluster: Mapping[str, Any]) -> float:
    options = (cluster.get("spec") or {}).get("autoscalerOptions") or {}
    return float(options.get("drainTimeoutSeconds", DEFAULT_DRAIN_TIMEOUT_S))


def gate(
    head: HeadView | None, pod_name: str, ready: bool, reason: str, message: str, timeout_s: float
) -> DrainNode | AwaitDrain | None:
    """None: delete the pod now. Otherwise the drain action to take instead of deleting it this pass."""
    if reason not in DRAINED_REASONS or head is None or not ready:
        return None  # not a scaling deletion, the head cannot be asked, or the pod never ran an agent
    node = head.node(pod_name)
    if node is None or node.state == "DEAD" or node.drained:
        return None
    if node.state == "DRAINING":
        return AwaitDrain(pod_name, node.node_id)
    return DrainNode(node.node_id, pod_name, timeout_s, reason, message)


def scale_down_order(head: HeadView | None, pod_name: str) -> tuple[int, float]:
    """Sort key among ready workers: already draining first, then idle ones (longest idle first), then busy."""
    node = head.node(pod_name) if head is not None else None
    if node is None:
        return (2, 0.0)
    if node.state in ("DRAINING", "DEAD"):
        return (0, 0.0)
    if node.idle_s is not None:
        return (1, -node.idle_s)
    return (3, 0.0)
