"""A driver drops its streams to nodes the head has declared dead, instead of waiting for TCP to notice.

A killed process closes its connections at once, but a machine that vanished or was cut off
from the network leaves them open until gRPC's keepalive gives up (tens of seconds). While a
driver has work out (task leases or actor connections), it looks at the head's cluster view
every ``SPINDLE_NODE_WATCH_S`` (default 1 s) and cancels the streams to workers on nodes marked
dead: their tasks are retried elsewhere and actor calls learn from the head what became of the
actor. So recovery follows the head's detection bound. Only drivers watch (one cheap call per
second each; a driver may run outside the cluster, with no agent of its own): a worker is told the
same by its agent, which sees the view on every heartbeat (``_agent.death_notice``). The same look
tells it which nodes the autoscaler drains: it sends them no more tasks and gives its leases there
back once idle, so a steady stream of tasks does not keep a draining node busy until its drain
deadline.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

import grpc

from spindle._membership import newly_dead
from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

WATCH_S = float(os.environ.get("SPINDLE_NODE_WATCH_S", "1"))


class NodeWatch:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.seen_dead: set[str] = set()
        self.draining: set[str] = set()
        threading.Thread(target=self._loop, daemon=True, name="spindle-node-watch").start()

    def _loop(self) -> None:
        cw = self.cw
        while not cw.closed:
            time.sleep(WATCH_S)
            if not (cw.submitter.has_leases() or cw.actors.has_streams() or cw.submitter.draining):
                continue
            try:
                view = cw.head().GetClusterView(pb.Empty(), metadata=cw.md, timeout=5)
            except grpc.RpcError:
                continue
            draining = {n.address for n in view.nodes if n.alive and n.draining}
            if draining or draining != self.draining:  # the autoscaler drains (or undrains) nodes: move work off
                self.draining = draining
                cw.submitter.nodes_draining(draining)
            dead = newly_dead(view.nodes, self.seen_dead)
            if not dead:
                continue
            cw.nodes_died(dead)

