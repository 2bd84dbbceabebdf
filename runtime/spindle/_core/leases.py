"""The submitter's leases: asking node agents for workers, holding them, and giving them back.

Split out of ``submitter.py`` (which queues and dispatches tasks) because getting and keeping a
worker is its own protocol: ask the local agent, follow spillbacks, wait out infeasible shapes and
unreachable nodes (saying so every minute, never hanging silently; failing the queue once no node
has been left for too long), open the task stream on a grant, and return leases that sat idle or
whose node drains. The same background loop moves retries whose backoff ended back to their queue.
Functions take the ``TaskSubmitter`` whose lock and queues they share.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

import grpc

from spindle._core import lease_guard, pg_client, task_results
from spindle._core.failover import NO_NODE_TIMEOUT_S
from spindle._core.task_records import KeyQueue, Lease, load_error
from spindle._proto import pb, rpc
from spindle._rpc.channels import CHANNEL_OPTIONS, batched
from spindle.exceptions import NodeDiedError, RuntimeEnvSetupError

if TYPE_CHECKING:
    from spindle._core.submitter import TaskSubmitter

log = logging.getLogger("spindle")

LEASE_IDLE_S = 0.2
LEASE_FAILING_WARN_S = 30.0
REVOKED_ASK_S = 2.0  # a broken stream asks its agent whether the lease was taken back (a dead node: no answer)


def acquire(sub: TaskSubmitter, q: KeyQueue) -> None:
    cw = sub.cw
    address, spilled, delay = cw.agent_address, False, 0.05
    try:
        if q.strategy.kind == "PLACEMENT_GROUP":  # leased only where its bundle is
            pg_client.acquire_lease(sub, q)
            return
        while not sub.closed:
            with sub.lock:
                if not q.tasks:
                    return
            if not address:  # no live node known: look for one, give up after a while
                cw.agent_unreachable("")
                address = cw.agent_address
                if not address:
                    if _no_node(sub, q):
                        return
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
            req = pb.LeaseRequest(resources=pb.Resources(amounts=q.resources), strategy=q.strategy,
                                  job_id=cw.job_id, grant_or_reject=spilled, timeout_s=1.0,
                                  runtime_env=q.runtime_env)
            try:
                reply = cw.agent(address).RequestLease(req, metadata=cw.md, timeout=30)
            except ValueError:  # our channels were closed under us: this process is shutting down
                if sub.closed:
                    return
                raise
            except grpc.RpcError as e:
                _request_failed(sub, q, address, e)
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    cw.agent_unreachable(address)
                if _no_node(sub, q):
                    return
                address, spilled = cw.agent_address, False
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            cw.failover.ok()
            q.failing_since = 0.0
            if reply.status == "GRANTED":
                granted(sub, q, reply, address)
                return
            if reply.status == "SPILLBACK":
                address, spilled = reply.spill_address, True
                continue
            if reply.status == "RUNTIME_ENV_FAILED":  # the node cannot build the environment: fail its tasks
                _fail_queue(sub, q, reply.error, reply.message)
                return
            if reply.status == "INFEASIBLE":
                if not q.warned:
                    q.warned = True
                    print(f"spindle: warning: a task needs {q.resources} but {reply.message}; it will wait "
                          "until a node that can run it joins the cluster.", file=sys.stderr)
                time.sleep(1.0)
            address, spilled = cw.agent_address, False
    except Exception:  # a bug must not end the queue's lease requests silently: say so, then ask again below
        log.exception("spindle: requesting a worker lease failed")
        time.sleep(1.0)
    finally:
        with sub.lock:
            q.requesting -= 1
            # Tasks put back meanwhile (a lease failed, a worker handed tasks back) were pumped while this
            # thread still counted as asking for a lease, so _pump started none for them: ask now, or they
            # wait for an event that may never come (no lease left to finish or fail).
            if q.tasks and not sub.closed:
                sub._pump(q)

def _request_failed(sub: TaskSubmitter, q: KeyQueue, address: str, e: grpc.RpcError) -> None:
    """Tasks waiting because node agents do not answer are never a silent hang: say so every minute."""
    now = time.monotonic()
    if not q.failing_since:
        q.failing_since = now
    log.debug("lease request to %s failed: %s", address, e.code())
    waited = now - q.failing_since
    if waited >= LEASE_FAILING_WARN_S and now - q.failure_warned >= LEASE_FAILING_WARN_S:
        q.failure_warned = now
        log.warning("spindle: %d task(s) needing %s have waited %.0f s for a worker: lease requests to the node "
                    "agent at %s fail (%s: %s). Check that node with 'spindle status' and its agent log; the "
                    "driver keeps trying.", len(q.tasks), q.resources, waited, address, e.code().name,
                    e.details())

def _fail_queue(sub: TaskSubmitter, q: KeyQueue, error: bytes, text: str) -> None:
    with sub.lock:
        doomed = list(q.tasks)
        q.tasks.clear()
    exc, _ = load_error(error, text, "runtime_env")
    for t in doomed:
        task_results.finish_error_exc(sub, t, exc if exc is not None else RuntimeEnvSetupError(text))

def _no_node(sub: TaskSubmitter, q: KeyQueue) -> bool:
    """Fail the queue's waiting tasks once no node has been left for too long; True if it did."""
    fo = sub.cw.failover
    if fo.lost_for() <= NO_NODE_TIMEOUT_S:
        return False
    fo.unreachable(sub.cw.agent_address, force=True)  # a node may have joined since the last look
    if fo.lost_for() <= NO_NODE_TIMEOUT_S:
        return False
    with sub.lock:
        doomed = list(q.tasks)
        q.tasks.clear()
    err = NodeDiedError(fo.error_text())
    for t in doomed:
        task_results.finish_error_exc(sub, t, err)
    return True

def granted(sub: TaskSubmitter, q: KeyQueue, reply: pb.LeaseReply, agent_address: str) -> None:
    _testing_stop_after_grant()
    lease = Lease(reply.lease_id, reply.worker_address, agent_address, q.key)  # granted: its node takes work
    try:
        stub = sub.cw.channels.stub(reply.worker_address, rpc.CoreWorkerStub)
        call = stub.PushTasks(batched(lease.out),
                              metadata=(*sub.cw.md, ("x-spindle-lease", reply.lease_id.hex()),
                                        ("x-spindle-worker", reply.worker_id),
                                        ("x-spindle-resources", json.dumps(q.resources)),
                                        ("x-spindle-namespace", sub.cw.namespace)))
    except (ValueError, grpc.RpcError):  # our channels were closed under us (shutdown): the lease goes back
        lease.dead = True
        return_lease(sub, lease, False)
        return
    lease.call = call
    threading.Thread(target=task_results.read, args=(sub, q, lease, call), daemon=True, name="spindle-results").start()
    with sub.lock:
        lease.idle_since = time.monotonic()
        q.leases.append(lease)
        sub._pump(q)
    sub.demand.wake()

def revoked(sub: TaskSubmitter, lease: Lease, e: grpc.RpcError) -> bool:
    """Our stream of ``lease`` failed before its worker sent anything: True if that is because its agent took the
    lease back first (``_agent/lease_reclaim``), in which case none of its tasks ran on that worker."""
    if e.code() == grpc.StatusCode.FAILED_PRECONDITION and (e.details() or "").startswith(lease_guard.REVOKED):
        return True  # the worker refused it
    if e.code() != grpc.StatusCode.UNAVAILABLE:  # (CANCELLED: we gave up on its node)
        return False
    try:  # the worker is gone (stopped after the lease came back, or it crashed): its agent knows which
        reply = sub.cw.agent(lease.agent_address).LeaseRevoked(pb.ReturnLeaseRequest(lease_id=lease.lease_id),
                                                               metadata=sub.cw.md, timeout=REVOKED_ASK_S)
    except (grpc.RpcError, ValueError):  # its node is gone too, or we are shutting down: a failure as before
        return False
    return bool(reply.revoked)

_stopped_once = False

def _testing_stop_after_grant() -> None:
    """Fault injection for tests (``SPINDLE_TESTING_STOP_AFTER_GRANT=1``): this process SIGSTOPs itself right after
    its first lease is granted, before using it: a holder stalled past the agent's confirm window."""
    global _stopped_once
    if not _stopped_once and os.environ.get("SPINDLE_TESTING_STOP_AFTER_GRANT") == "1":
        _stopped_once = True
        os.kill(os.getpid(), signal.SIGSTOP)

def return_lease(sub: TaskSubmitter, lease: Lease, failed: bool) -> None:
    request = pb.ReturnLeaseRequest(lease_id=lease.lease_id, worker_failed=failed)
    try:
        sub.cw.agent(lease.agent_address).ReturnLease(request, metadata=sub.cw.md, timeout=10)
    except (grpc.RpcError, ValueError):  # unreachable, or our channels were closed under us (shutdown)
        if not sub.cw.channels.closed:
            return  # the agent takes back a lease whose holder is gone (its stream closes, or is never opened)
        try:  # shutting down: one short-lived channel, so the node lends the worker again now
            with grpc.insecure_channel(lease.agent_address, options=CHANNEL_OPTIONS) as ch:
                rpc.NodeAgentStub(ch).ReturnLease(request, metadata=sub.cw.md, timeout=5)
        except grpc.RpcError:
            pass

def idle_loop(sub: TaskSubmitter) -> None:
    while not sub.closed:
        # poll fast only while leases are held or retries wait, so an idle process stays idle
        pause = LEASE_IDLE_S / 4 if any(q.leases for q in list(sub.queues.values())) else 0.5
        if sub.delayed:
            pause = max(0.01, min(pause, sub.delayed[0][0] - time.monotonic()))
        time.sleep(pause)
        now = time.monotonic()
        done: list[Lease] = []
        with sub.lock:
            while sub.delayed and sub.delayed[0][0] <= now:
                task = heapq.heappop(sub.delayed)[2]
                if not task.cancelled:
                    rq = sub.queues[task.key]
                    rq.tasks.append(task)
                    sub._pump(rq)
            for q in sub.queues.values():
                for lease in list(q.leases):
                    idle = not q.tasks and now - lease.idle_since > LEASE_IDLE_S
                    if lease.inflight or not (lease.draining or idle):
                        continue
                    q.leases.remove(lease)
                    lease.dead = True
                    done.append(lease)
        for lease in done:
            lease.out.put(None)
            return_lease(sub, lease, False)

