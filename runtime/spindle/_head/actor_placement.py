"""Where the head's pending actors go in one scheduling round: a pure policy, no I/O, no threads.

The head keeps actors that wait for resources in one queue (``actor_scheduler``) instead of a thread
each, and asks this policy, whenever the cluster may have changed (an actor queued, a node joined,
resources freed), which of them can start now. Queue order is kept (the first actor of a shape gets a
node first), but one that cannot start blocks nobody of another shape. Within a round the nodes'
available resources shrink by what the round already handed out, so two actors never count on the
same CPU; the caller's node views are not changed (it subtracts for the starts it makes).
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from spindle._scheduling import NodeView, Placement, Placer, Strategy, subtract


@dataclass(frozen=True)
class PendingActor:
    actor_id: bytes
    demand: Mapping[str, float]  # what placing it takes from a node (its spec's ``placement``)
    strategy: Strategy

    @cached_property
    def shape(self) -> Hashable:
        """Actors of one shape place alike: what they need and how they may be placed."""
        s = self.strategy
        return tuple(sorted(self.demand.items())), s.kind, s.node_id, s.soft, repr(s.labels_hard), repr(s.labels_soft)


def startable(p: Placement) -> bool:
    """A node has the resources now: start the actor there (else it keeps waiting in the queue)."""
    return p.decision in ("remote", "local") and p.reason != "busy"


def waiting_for_demand(p: Placement) -> bool:
    """Counted as pending demand for the autoscaler: no node takes it, not even once busy nodes free up."""
    return p.decision not in ("remote", "local")


def plan(pending: Sequence[PendingActor], nodes: Iterable[NodeView], placer: Placer) -> list[Placement]:
    """Each pending actor's placement this round, in queue order (one per entry of ``pending``)."""
    views = [copy.deepcopy(n) for n in nodes]
    by_id = {v.node_id: v for v in views}
    no_room: dict[Hashable, Placement] = {}  # a shape that did not fit: later ones of it do not either (resources only
    out: list[Placement] = []  # shrink within a round), so a long queue of one shape costs one placement, not one each
    for a in pending:
        known = no_room.get(a.shape)
        if known is not None:
            out.append(known)
            continue
        p = placer.place(a.demand, a.strategy, views, None)
        if startable(p):
            subtract(by_id[p.node_id].available, a.demand)
        else:
            no_room[a.shape] = p
        out.append(p)
    return out

