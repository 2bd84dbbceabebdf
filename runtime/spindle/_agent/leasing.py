"""The node agent's leases: lending workers to drivers for a shape of resources, and taking them back.

Split out of ``agent.py`` (the agent's state, actors, objects and gRPC service) because lending is its
own protocol: decide with the placer whether to grant here, spill back to another node or call the
request infeasible; serve waiting requests first come, first served (actor starts share the line,
see ``actor_start``); start or reuse a worker in the request's runtime env; take back a lease its
holder returned (one it never used: ``lease_reclaim``); lend a blocked worker's CPU while it waits in
``get``. Functions take the ``Agent`` whose lock (``cond``) and pools they share.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from spindle import _accelerators, _ids
from spindle._proto import pb
from spindle._scheduling import NodeView, Strategy, add, fits, strategy_from_wire, subtract
from spindle.exceptions import RuntimeEnvSetupError

if TYPE_CHECKING:
    from spindle._agent.agent import Agent
    from spindle._agent.bundles import Key

log = logging.getLogger("spindle.agent")


def request_lease(agent: Agent, req: pb.LeaseRequest, context: Any = None) -> pb.LeaseReply:
    reply = _request_lease(agent, req)
    if reply.status == "GRANTED" and context is not None and not context.is_active():
        # the requester gave up or died while we waited: nobody will use or return this lease
        return_lease(agent, reply.lease_id, kill=False)
        return pb.LeaseReply(status="BUSY")
    return reply

def lease_started(agent: Agent, lease_id: bytes) -> pb.AcceleratorIds:
    """The holder's stream reached the worker; the reply tells the worker the lease's accelerator ids."""
    with agent.cond:
        agent.unconfirmed.pop(lease_id, None)
        ids = agent.accelerators.taken.get(lease_id, {})
    return pb.AcceleratorIds(visible=_accelerators.env_for(ids))

def return_lease(agent: Agent, lease_id: bytes, kill: bool) -> None:
    log.debug("lease %s returned (kill=%s)", lease_id.hex()[:8], kill)
    with agent.cond:
        agent.unconfirmed.pop(lease_id, None)
        entry = agent.leases.pop(lease_id, None)
        agent.accelerators.release(lease_id)
        if entry is None:
            return
        worker, need = entry
        freed, pool = ({} if worker.blocked else need), agent.bundles.for_lease(lease_id)
        agent.bundles.forget_lease(lease_id)
        worker.lease_id = b""
        worker.blocked = False
    # the worker is back in the pool before its resources are: a lease granted with them finds it idle
    # (the other way round, that lease started a worker, and the zygote with it, that outlived the burst)
    assert agent.pool is not None
    if kill:
        agent.pool.kill(worker)
    else:
        agent.pool.release(worker)
    with agent.cond:
        add(pool, freed)
        agent.cond.notify_all()

def worker_blocked(agent: Agent, worker_id: str, blocked: bool) -> None:
    with agent.cond:
        assert agent.pool is not None
        worker = agent.pool.by_id.get(worker_id)
        if worker is None or worker.blocked == blocked:
            return
        entry = agent.leases.get(worker.lease_id) if worker.lease_id else None
        held = entry[1] if entry else worker.actor_hold
        cpu = {"CPU": held.get("CPU", 0.0)}
        worker.blocked = blocked
        pool = agent.bundles.for_lease(worker.lease_id) if entry else agent.bundles.for_worker(worker_id)
        if blocked:
            add(pool, cpu)
        else:
            subtract(pool, cpu)
        agent.cond.notify_all()


def views(agent: Agent) -> list[NodeView]:
    local = NodeView(agent.node_id, agent.address, agent.total, agent.available, schedulable=not agent.draining,
                     labels=agent.labels)
    return [local] + [n for n in agent.view if n.node_id != agent.node_id]

def _request_lease(agent: Agent, req: pb.LeaseRequest) -> pb.LeaseReply:
    need = {k: v for k, v in req.resources.amounts.items() if v > 0}
    if req.strategy.kind == "PLACEMENT_GROUP":
        return agent.bundles.request_lease(req, need)
    strategy = strategy_from_wire(req.strategy)
    deadline = time.monotonic() + (req.timeout_s or 1.0)
    with agent.cond:
        ticket = enqueue(agent, need)
        try:
            while True:
                decision, placement_addr, reason = _decide(agent, req, need, strategy, ticket)
                if decision == "infeasible":
                    return pb.LeaseReply(status="INFEASIBLE", message=reason)
                if decision == "remote":
                    return pb.LeaseReply(status="SPILLBACK", spill_address=placement_addr)
                if decision == "local":
                    subtract(agent.available, need)
                    agent.starting += 1
                    agent.granting.append(need)
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return pb.LeaseReply(status="BUSY")
                agent.cond.wait(min(left, 0.1))
        finally:
            dequeue(agent, ticket)
    try:
        return grant(agent, need, deadline, env=req.runtime_env)
    finally:
        with agent.cond:
            agent.starting -= 1
            agent.granting.remove(need)

# Requests waiting for local resources are served first come, first served, so a stream of
# task leases cannot starve an actor waiting to be placed (or a big request behind small ones).
def enqueue(agent: Agent, need: dict[str, float]) -> int:
    agent._ticket += 1
    agent.waiting[agent._ticket] = need
    return agent._ticket

def dequeue(agent: Agent, ticket: int) -> None:
    agent.waiting.pop(ticket, None)
    agent.cond.notify_all()

def first_in_line(agent: Agent, ticket: int) -> bool:
    return not any(t < ticket and fits(n, agent.available) for t, n in agent.waiting.items())

def _decide(agent: Agent, req: pb.LeaseRequest, need: dict[str, float], strategy: Strategy,
            ticket: int) -> tuple[str, str, str]:
    if req.grant_or_reject:
        if agent.draining:  # spilled here before the requester learnt we drain: it asks again from its node
            return "wait", "", "this node is draining"
        if fits(need, agent.available) and first_in_line(agent, ticket):
            return "local", "", ""
        return ("wait" if fits(need, agent.total) else "infeasible"), "", "this node lacks the resources"
    pl = agent.placer.place(need, strategy, views(agent), agent.node_id)
    if pl.decision == "local" and not first_in_line(agent, ticket):
        return "wait", "", ""
    return pl.decision, pl.address, pl.reason

def grant(agent: Agent, need: dict[str, float], deadline: float, bundle: Key | None = None,
           env: pb.RuntimeEnvSpec | None = None) -> pb.LeaseReply:
    """Lend a worker for ``need``, already taken from the node's pool (or from ``bundle``'s)."""
    assert agent.pool is not None
    try:
        wenv = agent.runtime_envs.prepare(env) if env is not None and env.key else None
    except RuntimeEnvSetupError as e:
        with agent.cond:
            add(agent.bundles.pool(bundle), need)
            agent.cond.notify_all()
        from spindle._agent.agent import _pickled

        return pb.LeaseReply(status="RUNTIME_ENV_FAILED", message=str(e), error=_pickled(e))
    worker = agent.pool.acquire(timeout=max(5.0, deadline - time.monotonic()), wenv=wenv)
    if worker is None:
        with agent.cond:
            add(agent.bundles.pool(bundle), need)
            agent.cond.notify_all()
        return pb.LeaseReply(status="BUSY")
    lease_id = _ids.new_id()
    with agent.cond:
        if bundle is not None:
            agent.bundles.lease_key[lease_id] = bundle
        agent.leases[lease_id] = (worker, need)
        agent.accelerators.assign(lease_id, need)
        agent.unconfirmed[lease_id] = time.monotonic()
        worker.lease_id = lease_id
    log.debug("lease %s granted on worker %s", lease_id.hex()[:8], worker.worker_id[:6])
    return pb.LeaseReply(status="GRANTED", lease_id=lease_id, worker_address=worker.address,
                         worker_id=worker.worker_id, node_id=agent.node_id)
