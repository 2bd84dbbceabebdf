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

That greedy pass, bundle by bundle, can paint itself into a corner (a plain bundle takes the only node
with the custom resource another bundle needs). When it fails, a bounded backtracking search tries the
same preferences with the most constrained bundles first, so a group that fits is never called
infeasible just because of the order of node ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spindle._scheduling import add, fits, subtract

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
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}")
    ids = [n.node_id for n in ordered]
    out: list[str] = []
    count: dict[str, int] = {}
    for b in bundles:
        choices = _candidates(b, strategy, ids, room, count)
        if not choices:
            return _search(bundles, strategy, ids, {n.node_id: dict(n.resources) for n in ordered})
        subtract(room[choices[0]], b)
        count[choices[0]] = count.get(choices[0], 0) + 1
        out.append(choices[0])
    return out


SEARCH_BUNDLES = 64  # larger groups keep the greedy answer (the search is exponential at worst)
SEARCH_STEPS = 20_000


def _candidates(b: Mapping[str, float], strategy: str, ids: Sequence[str], room: Mapping[str, dict[str, float]],
                count: Mapping[str, int]) -> list[str]:
    """The nodes a bundle may go to now, best first, by the strategy's preferences."""
    if strategy == "PACK":
        used = [nid for nid in ids if count.get(nid) and fits(b, room[nid])]
        return used + [nid for nid in ids if not count.get(nid) and fits(b, room[nid])]
    unused = [nid for nid in ids if not count.get(nid) and fits(b, room[nid])]
    if strategy == "STRICT_SPREAD":
        return unused
    used = sorted((nid for nid in ids if count.get(nid) and fits(b, room[nid])), key=lambda nid: (count[nid], nid))
    return unused + used


def _search(bundles: Sequence[Mapping[str, float]], strategy: str, ids: Sequence[str],
            room: dict[str, dict[str, float]]) -> list[str] | None:
    """Depth-first placement, most constrained bundle first, within ``SEARCH_STEPS`` tries."""
    if len(bundles) > SEARCH_BUNDLES:
        return None
    order = sorted(range(len(bundles)), key=lambda i: (sum(fits(bundles[i], room[nid]) for nid in ids), i))
    out: list[str] = [""] * len(bundles)
    count: dict[str, int] = {}
    steps = 0

    def place(k: int) -> bool:
        nonlocal steps
        if k == len(order):
            return True
        i = order[k]
        for nid in _candidates(bundles[i], strategy, ids, room, count):
            steps += 1
            if steps > SEARCH_STEPS:
                return False
            subtract(room[nid], bundles[i])
            count[nid] = count.get(nid, 0) + 1
            out[i] = nid
            if place(k + 1):
                return True
            add(room[nid], bundles[i])
            count[nid] -= 1
        return False

    return out if place(0) else None


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
