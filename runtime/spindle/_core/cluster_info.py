"""What the cluster has: ``nodes()``, ``cluster_resources()`` and ``available_resources()``.

Split out of ``api.py``: these read the head's cluster view (the one node agents get on every heartbeat)
and shape it the way Ray's calls of the same names return it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spindle._core import context as _context

if TYPE_CHECKING:
    from spindle._proto import pb


def _view() -> pb.ClusterView:
    from spindle._proto import pb

    cw = _context.core()
    return cw.head().GetClusterView(pb.Empty(), metadata=cw.md, timeout=30, wait_for_ready=True)


def nodes() -> list[dict[str, Any]]:
    out = []
    for n in _view().nodes:
        out.append({"NodeID": n.node_id, "Alive": n.alive, "alive": n.alive, "State": "ALIVE" if n.alive else "DEAD",
                    "DeathReason": n.death_reason, "NodeManagerAddress": n.ip,
                    "NodeManagerHostname": n.hostname, "NodeName": n.ip, "AgentAddress": n.address,
                    "Resources": dict(n.total.amounts), "Available": dict(n.available.amounts),
                    "Labels": dict(n.labels), "IsHeadNode": n.is_head, "Draining": n.draining})
    return out


def _sum(field: str) -> dict[str, float]:
    total: dict[str, float] = {}
    for n in _view().nodes:
        if n.alive:
            for k, v in getattr(n, field).amounts.items():
                total[k] = total.get(k, 0.0) + v
    return total


def cluster_resources() -> dict[str, float]:
    return _sum("total")


def available_resources() -> dict[str, float]:
    """Free resources of the live nodes; "CPU" is always there (0.0 when every CPU is taken), as in Ray."""
    free = {k: v for k, v in _sum("available").items() if v > 0}
    free.setdefault("CPU", 0.0)
    return free
