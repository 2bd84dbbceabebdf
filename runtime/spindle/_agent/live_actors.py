"""What an agent tells the head about its actors when it (re-)registers.

The head keeps the actor directory, but the agents are where actors actually run. When a head is
restarted it knows nothing (or only what its storage kept), so each agent re-registering reports
every actor it hosts with the complete spec it was started from: the head adopts them where they
are instead of orphaning them, and can still restart them elsewhere later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._agent.agent import Agent


def remember(agent: Agent, worker_id: str, spec: pb.ActorSpec) -> None:
    """Called with the agent's lock held once an actor runs on ``worker_id``."""
    agent.actor_specs[worker_id] = spec


def forget(agent: Agent, worker_id: str) -> None:
    with agent.cond:
        agent.actor_specs.pop(worker_id, None)


def live_actors(agent: Agent) -> list[pb.LiveActor]:
    out: list[pb.LiveActor] = []
    with agent.cond:
        if agent.pool is None:
            return out
        for w in agent.pool.by_id.values():
            spec = agent.actor_specs.get(w.worker_id)
            if spec is not None and w.actor_id == spec.actor_id and w.state != "dead":
                out.append(pb.LiveActor(spec=spec, incarnation=w.incarnation, worker_address=w.address,
                                        worker_id=w.worker_id))
    return out
