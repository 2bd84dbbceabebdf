"""A driver whose node agent died moves to a live node, or says within seconds that none is left.

A driver talks to one node agent for leases (the agent of its own node when it has one: an
embedded ``init()``, or a driver in the head pod). When that agent stops answering, the driver
asks the head for the cluster view and switches to a live agent: one on the same machine becomes
its node (its store is shared memory the driver can map), any other one is used like a driver
outside the cluster uses it (values are streamed). When no live node is left, the time since is
recorded so that waiting tasks fail with ``NodeDiedError`` after ``SPINDLE_NO_NODE_TIMEOUT_S``
instead of hanging; tasks submitted later run as soon as a node has joined.

Workers never switch: their agent is their parent, and they exit when it dies.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import grpc

from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

log = logging.getLogger("spindle")

NO_NODE_TIMEOUT_S = float(os.environ.get("SPINDLE_NO_NODE_TIMEOUT_S", "10"))
RECHECK_S = 0.5


class Failover:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.lock = threading.Lock()
        self.no_node_since: float | None = None
        self.last_reason = ""
        self._checked = 0.0
        self._dead: dict[str, float] = {}  # agent address -> when it last failed us

    def ok(self) -> None:
        """A lease request went through: there is a live node again."""
        if self.no_node_since is not None:
            self.no_node_since = None

    def lost_for(self) -> float:
        """Seconds since the driver has had no live node to talk to (0 when it has one)."""
        since = self.no_node_since
        return 0.0 if since is None else time.monotonic() - since

    def unreachable(self, address: str, *, force: bool = False) -> None:
        """The agent at ``address`` (``""``: none yet) is gone; if it is ours, pick a live one.

        Rate-limited to one look at the head per RECHECK_S, unless ``force``: a caller about to fail tasks
        for want of a node looks once more, so a node that joined since the last look is never missed.
        """
        cw = self.cw
        if cw.mode != "driver" or (address and address != cw.agent_address):
            return
        now = time.monotonic()
        with self.lock:
            if address:
                self._dead[address] = now
            if (address and address != cw.agent_address) or (now - self._checked < RECHECK_S and not force):
                return  # another caller switched already, or just looked
            self._checked = now
            try:
                view = cw.head().GetClusterView(pb.Empty(), metadata=cw.md, timeout=5)
            except grpc.RpcError as e:
                self._no_node(f"the head at {cw.head_address} is unreachable too ({e.code().name})")
                return
            recent = {a for a, t in self._dead.items() if now - t < 30}
            alive = [n for n in view.nodes if n.alive and n.address not in recent]
            if not alive:
                dead = [n for n in view.nodes if not n.alive or n.address in recent]
                what = ", ".join(f"{n.node_id[:8]} at {n.address}" for n in dead) or "none ever joined"
                self._no_node(f"no live node is left in the cluster (dead: {what})")
                return
            same_ip = [n for n in alive if n.ip == cw.ip]
            pick = (same_ip or alive)[0]
            old = cw.agent_address
            cw.switch_node(pick.address, pick.node_id if same_ip and cw.node_id else "")
            self.no_node_since = None
        log.warning("spindle: node agent %s is unreachable; this driver now uses node %s at %s",
                    old or "(none)", pick.node_id[:8], pick.address)

    def _no_node(self, reason: str) -> None:
        if self.no_node_since is None:
            self.no_node_since = time.monotonic()
            log.warning("spindle: %s; tasks wait up to %.0f s for a node to join", reason, NO_NODE_TIMEOUT_S)
        self.last_reason = reason

    def error_text(self) -> str:
        return (f"No node can run this task: {self.last_reason}, for {self.lost_for():.0f} s. Start a node agent "
                f"with 'spindle start --address {self.cw.head_address}' and submit again.")
