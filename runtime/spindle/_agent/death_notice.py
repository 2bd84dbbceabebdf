"""An agent tells its workers which nodes the head has declared dead, so their calls there cannot hang.

A worker's streams to another node break by themselves when a process there exits, and gRPC's
keepalive pings break the rest within tens of seconds. The direct actor-call streams
(``_rpc.frame_stream``: a Unix socket on one node, TCP across nodes) have no pings of their own, and
a node whose processes are frozen while its kernel runs (SIGSTOP, a cgroup freezer, a machine
thrashing in swap) answers TCP's keepalive probes: a worker calling an actor there would wait until
those processes died or resumed. Drivers look at the head's cluster view themselves
(``_core.node_watch``, one call per second while they have work out); for workers that would be one
call per second each, so the agent, which gets the view with every heartbeat anyway, sends each of its
workers one ``NodesDied`` when a node dies. That costs nothing while no node dies and reaches the
workers one heartbeat after the head's verdict; they then act on it as a driver does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

from spindle._membership import newly_dead
from spindle._proto import pb, rpc

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

log = logging.getLogger("spindle.agent")
TELL_TIMEOUT_S = 5.0


class DeathNotice:
    """The deaths already told (one agent's ``seen_dead``), so each death of a node is told once."""

    def __init__(self) -> None:
        self.seen_dead: set[str] = set()

    def view(self, agent: Agent, nodes: Sequence[pb.NodeInfo]) -> dict[str, str]:
        """Tell our workers about the nodes that died since the last view; return them (ID -> address)."""
        dead = newly_dead(nodes, self.seen_dead)
        dead.pop(agent.node_id, None)  # our own death is handled by ``head_link`` (our actors are stopped)
        if dead:
            tell(agent, dead)
        return dead


def tell(agent: Agent, dead: dict[str, str]) -> None:
    """Send ``NodesDied`` to every registered worker of ours, without waiting for the answers."""
    assert agent.pool is not None
    with agent.cond:
        addresses = [w.address for w in agent.pool.by_id.values() if w.address and w.state not in ("starting", "dead")]
    log.warning("the head declared %d node(s) dead (%s): telling %d worker(s)", len(dead),
                ", ".join(f"{nid[:8]} at {address}" for nid, address in dead.items()), len(addresses))
    request = pb.DeadNodes(node_ids=list(dead), addresses=list(dead.values()))
    for address in addresses:
        try:
            stub = agent.channels.stub(address, rpc.CoreWorkerStub)
            fut = stub.NodesDied.future(request, metadata=agent.channels.metadata, timeout=TELL_TIMEOUT_S)
        except (grpc.RpcError, ValueError):  # our channels are closed: the agent is stopping
            return
        fut.add_done_callback(lambda f, address=address: _told(address, f))


def _told(address: str, fut: grpc.Future) -> None:
    """Best effort: a worker that exited needs no notice. One too starved to answer within 5 s is not told again (the
    handler usually still runs once the worker gets to it); the failure is logged at debug level."""
    try:
        fut.result()
    except Exception as e:  # noqa: BLE001 - logged only (see above)
        log.debug("worker at %s was not told of the dead nodes: %s", address, e)
