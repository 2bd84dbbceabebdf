"""The node agent's link to the head: joining the cluster, heartbeats, and being declared dead.

Split out of ``agent.py`` because membership is its own loop: register (again after a head restart
or after being given up), send free resources and what keeps the node busy (for the autoscaler) on
every heartbeat, learn the cluster view used for spillback and whether this node drains (and tell our
workers which nodes died, ``death_notice``), and when the head has declared this node dead, stop its
now-duplicate actors before joining again.
Functions take the ``Agent`` whose lock (``cond``) they share.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from typing import TYPE_CHECKING

import grpc

from spindle._agent import lease_reclaim, live_actors
from spindle._membership import HEARTBEAT_S
from spindle._proto import pb
from spindle._scheduling import NodeView

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

log = logging.getLogger("spindle.agent")


def _info(agent: Agent) -> pb.NodeInfo:
    return pb.NodeInfo(node_id=agent.node_id, address=agent.address, ip=agent.ip,
                       total=pb.Resources(amounts=agent.total), available=pb.Resources(amounts=agent.available),
                       alive=True, hostname=socket.gethostname(), labels=agent.labels,
                       is_head=agent.is_head)

def register(agent: Agent) -> None:
    delay, start, warned = 0.02, time.monotonic(), False
    while True:
        try:
            request = pb.RegisterNodeRequest(node=_info(agent), actors=live_actors.live_actors(agent),
                                             rejoining=agent.registered_once, bundles=agent.bundles.report())
            agent._head().RegisterNode(request, metadata=agent.channels.metadata, timeout=5, wait_for_ready=True)
            agent.registered_once = True
            return
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                sys.exit(f"spindle agent: the head at {agent.head_address} refused our token: set SPINDLE_TOKEN "
                         "to the cluster's token")
            if not warned and time.monotonic() - start > 5:
                log.warning("waiting for the head at %s (%s)", agent.head_address, e.code())
                warned = True
        time.sleep(delay)
        delay = min(delay * 2, 1.0)

def heartbeat_loop(agent: Agent) -> None:
    failures = 0
    while not agent.stopping:
        primaries = agent.store.primaries()  # outside our lock: the store takes its own
        with agent.cond:
            avail = dict(agent.available)
            avail["object_store_memory"] = float(agent.store.free_memory())
            usage, draining = _usage(agent, primaries), agent.draining
            if log.isEnabledFor(logging.DEBUG):
                assert agent.pool is not None
                log.debug("available=%s leases=%s workers=%s", avail,
                          [(w.worker_id[:6], n, w.blocked) for w, n in agent.leases.values()],
                          [(w.worker_id[:6], w.state, w.blocked, bool(w.lease_id)) for w in agent.pool.by_id.values()])
        try:
            view = agent._head().Heartbeat(pb.HeartbeatRequest(node_id=agent.node_id,
                                                              available=pb.Resources(amounts=avail),
                                                              usage=usage, draining=draining),
                                          metadata=agent.channels.metadata, timeout=5)
            nodes = [NodeView(n.node_id, n.address, dict(n.total.amounts), dict(n.available.amounts), n.alive,
                              schedulable=not n.draining, labels=dict(n.labels)) for n in view.nodes]
            me = next((n for n in view.nodes if n.node_id == agent.node_id), None)
            if me is None:
                register(agent)  # the head restarted or forgot us
            elif not me.alive:
                _declared_dead(agent, me.death_reason)
            with agent.cond:
                agent.view = nodes
                if me is not None and me.draining != agent.draining:
                    log.warning("this node is %s", "draining: it takes no new work" if me.draining
                                else "no longer draining")
                    agent.draining = me.draining
                    agent.cond.notify_all()
            failures = 0
            agent.death_notice.view(agent, view.nodes)
            lease_reclaim.reclaim_unconfirmed(agent)
        except grpc.RpcError:
            failures += 1
            if failures == 50:
                log.warning("the head at %s is not answering heartbeats", agent.head_address)
        time.sleep(HEARTBEAT_S)

def _usage(agent: Agent, primaries: tuple[int, int]) -> pb.NodeUsage:
    """What keeps this node busy (lock held): the head's autoscaler drains only idle nodes."""
    assert agent.pool is not None
    actors = sum(1 for w in list(agent.pool.by_id.values()) if w.actor_id)
    return pb.NodeUsage(leases=len(agent.leases), actors=actors, starting=agent.starting, bundles=len(agent.bundles.pools),
                        granting=[pb.Resources(amounts=n) for n in agent.granting],
                        primary_objects=primaries[0], primary_bytes=primaries[1])

def _declared_dead(agent: Agent, reason: str) -> None:
    """The head gave us up (we were silent too long) and restarted our actors elsewhere.

    Our actor workers are now duplicates: stop them (as Ray's raylet does when the GCS marks its node
    dead), then join again as a live node. Leased workers keep running: their holders still see them.
    """
    log.error("the head marked this node dead (%s): stopping its actors and registering again", reason)
    agent.kill_all_actor_workers()
    assert agent.pool is not None
    deadline = time.monotonic() + 5.0  # reaped before we register, so we do not report them as live
    while any(w.actor_id for w in list(agent.pool.by_id.values())) and time.monotonic() < deadline:
        time.sleep(0.02)
    register(agent)
