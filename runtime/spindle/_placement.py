"""Where a placement group's bundles go: a pure policy for Ray's four strategies, no I/O.

The head calls ``place_bundles`` with the nodes' free resources to pick a node per bundle, then
reserves them (two-phase, see ``spindle._head.placement_groups``); with the nodes' *total*
resources the same call says whether the group could ever be placed (else it waits, infeasible,
until a node joins). Nodes are considered in node-id order, so the answer is deterministic:

- STRICT_PACK: every bundle on one node (the first whose free resources hold their sum).
- PACK: on as few nodes as possible: each bundle goes to a node already used if it fits there,
  else to the first node that has room.
- STRICT_SPREAD: every bundle on a different node.
- SPREAD: on different nodes where possible; a bundle that fits on no unused node goes to the
  used node holding the fewest bundles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spindle._scheduling import fits, subtract

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class NodeRoom:
    node_id: str
    resources: Mapping[str, float]  # free (to place now) or total (to judge feasibility)


def validate(bundles: Sequence[Mapping[str, float]], strategy: str) -> None:
    """Ray's checks on a placement group's arguments, with errors that say what to pass."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError("The placement group `bundles` argument must be a non-empty list of dicts such as "
                         "[{'CPU': 1}, {'CPU': 1}]")
    for i, b in enumerate(bundles):
        if not isinstance(b, Mapping) or not b:
            raise ValueError(f"Bundle {i} ({b!r}) must be a non-empty dict of resource amounts, e.g. {{'CPU': 1}}")
        for k, v in b.items():
            if not isinstance(k, str) or not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Bundle {i} has an invalid resource {k!r}: {v!r} (amounts are numbers >= 0)")
        if all(v == 0 for v in b.values()):
            raise ValueError(f"Bundle {i} ({dict(b)}) asks for no resources: every bundle needs some amount > 0")


def _total(bundles: Sequence[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + v
    return out


def place_bundles(bundles: Sequence[Mapping[str, float]], strategy: str,
                  nodes: Sequence[NodeRoom]) -> list[str] | None:
    """A node id per bundle (in bundle order), or None when the strategy cannot be met on ``nodes``."""
    ordered = sorted(nodes, key=lambda n: n.node_id)
    room = {n.node_id: dict(n.resources) for n in ordered}
    if strategy == "STRICT_PACK":
        need = _total(bundles)
        for n in ordered:
            if fits(need, room[n.node_id]):
                return [n.node_id] * len(bundles)
        return None
    out: list[str] = []
    count: dict[str, int] = {}
    for b in bundles:
        choice: str | None = None
        if strategy == "PACK":
            used = [n.node_id for n in ordered if count.get(n.node_id) and fits(b, room[n.node_id])]
            free = [n.node_id for n in ordered if fits(b, room[n.node_id])]
            choice = (used or free)[0] if used or free else None
        elif strategy in ("SPREAD", "STRICT_SPREAD"):
            unused = [n.node_id for n in ordered if not count.get(n.node_id) and fits(b, room[n.node_id])]
            if unused:
                choice = unused[0]
            elif strategy == "SPREAD":
                used = [n.node_id for n in ordered if fits(b, room[n.node_id])]
                choice = min(used, key=lambda nid: (count.get(nid, 0), nid)) if used else None
        else:
            raise ValueError(f"unknown placement strategy {strategy!r}")
        if choice is None:
            return None
        subtract(room[choice], b)
        count[choice] = count.get(choice, 0) + 1
        out.append(choice)
    return out


def gang_demand(bundles: Sequence[Mapping[str, float]], strategy: str) -> list[tuple[dict[str, float], int]]:
    """What a pending group asks of the autoscaler: (shape, count) pairs; STRICT_PACK needs one node for all."""
    if strategy == "STRICT_PACK":
        return [(_total(bundles), 1)]
    shapes: list[tuple[dict[str, float], int]] = []
    for b in bundles:
        shape = {k: float(v) for k, v in b.items() if v > 0}
        for i, (s, n) in enumerate(shapes):
            if s == shape:
                shapes[i] = (s, n + 1)
                break
        else:
            shapes.append((shape, 1))
    return shapes
