"""Taking back a worker lease its holder has not used, without pulling it from under a holder that was slow.

A lease is granted, then its holder opens a task stream to the worker, and the worker tells the
agent (``LeaseStarted``). A holder that died or gave up between the grant and its stream would keep
the worker and its resources forever, so a lease not confirmed within ``SPINDLE_LEASE_CONFIRM_S``
(default 5 s) is taken back. The agent used to do that on its own; a holder that was merely starved
(SIGSTOPped, a machine at load 300) then pushed its tasks to a worker lent to someone else, or
stopped meanwhile, where a task without retries failed with WorkerCrashedError.

Now the worker decides (``_core/lease_guard``): the agent asks it to revoke the lease
(``RevokeLease``, asynchronous: the heartbeat thread never waits) and takes the lease back only if
the worker says no stream of it came; a worker that does not answer (starved itself) keeps it for
now and is asked again. A revoked lease is remembered, so a holder whose stream then fails before
any result (refused, or the worker is gone) can ask (``LeaseRevoked``) and learn that none of its
tasks ran there: it asks for another worker and loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING, Any

import grpc

from spindle._proto import pb, rpc
from spindle._recent import Recent

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

log = logging.getLogger("spindle.agent")

LEASE_CONFIRM_S = float(os.environ.get("SPINDLE_LEASE_CONFIRM_S", "5"))
REVOKE_TIMEOUT_S = 5.0  # a worker that does not answer keeps its lease until it does
REMEMBERED = 4096  # revoked leases a late holder can still ask about


def due(unconfirmed: Mapping[bytes, float], now: float, confirm_s: float, asking: Container[bytes],
        lent: Container[bytes]) -> list[bytes]:
    """Leases (granted at ``unconfirmed[id]``) whose worker to ask now: unconfirmed for longer than ``confirm_s``,
    still lent, and not being asked already."""
    return [lid for lid, granted in unconfirmed.items()
            if now - granted > confirm_s and lid in lent and lid not in asking]


class Reclaims:
    """The agent's leases being revoked, and the ones it took back (bounded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.asking: set[bytes] = set()
        self.revoked = Recent(REMEMBERED)

    def remember(self, lease_id: bytes) -> None:
        with self.lock:
            self.revoked.add(lease_id)

    def was_revoked(self, lease_id: bytes) -> bool:
        with self.lock:
            return lease_id in self.revoked


def reclaim_unconfirmed(agent: Agent) -> None:
    """Ask the workers of leases nobody confirmed in time to give them back (called from the heartbeat loop)."""
    now = time.monotonic()
    r = agent.reclaims
    with agent.cond, r.lock:
        for lid in [lid for lid in agent.unconfirmed if lid not in agent.leases]:  # its worker exited
            del agent.unconfirmed[lid]
        ask = [(lid, agent.leases[lid][0].address)
               for lid in due(agent.unconfirmed, now, LEASE_CONFIRM_S, r.asking, agent.leases)]
        r.asking.update(lid for lid, _ in ask)
    for lid, address in ask:
        try:
            stub = agent.channels.stub(address, rpc.CoreWorkerStub)
            fut = stub.RevokeLease.future(pb.ReturnLeaseRequest(lease_id=lid), metadata=agent.channels.metadata,
                                          timeout=REVOKE_TIMEOUT_S)
        except (grpc.RpcError, ValueError):  # our channels are closed: the agent is stopping
            with r.lock:
                r.asking.discard(lid)
            continue
        fut.add_done_callback(lambda f, lid=lid: _answered(agent, lid, f))


def _answered(agent: Agent, lease_id: bytes, fut: Any) -> None:
    """The worker answered (on gRPC's completion thread): take the lease back, or keep it lent."""
    from spindle._agent import leasing

    revoked: bool | None
    try:
        revoked = bool(fut.result().revoked)
    except Exception:  # noqa: BLE001 - not answered (starved, or gone: its exit frees the lease): ask again later
        revoked = None
    with agent.reclaims.lock:
        agent.reclaims.asking.discard(lease_id)
    if revoked is None:
        return
    if not revoked:  # its holder's stream reached the worker; the worker's own confirmation is late
        with agent.cond:
            agent.unconfirmed.pop(lease_id, None)
        return
    agent.reclaims.remember(lease_id)
    log.warning("lease %s was not used by its holder within %.0f s: taking it back (a holder that comes later is "
                "refused and asks again)", lease_id.hex()[:8], LEASE_CONFIRM_S)
    leasing.return_lease(agent, lease_id, kill=False)
