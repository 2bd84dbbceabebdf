"""The node agent's actor starts (``StartActor``): wait for the actor's placement resources, take a worker, create it.

Split from ``agent.py`` (which had grown past the size limit) as one cohesive piece: everything between the head's
StartActor call and the actor's reply, including how many starts may wait here at once. A start that waits holds one of
the agent's RPC threads (up to 2 s); when a burst of 1,000 actors made ~120 of them wait, the agent's 128 threads were
all held and its workers' RegisterWorker calls queued behind them, so the two starts in progress waited for their own
workers (0.12 actors/s). Beyond ``START_WAITERS`` waiting starts, one that cannot be placed now is answered "busy" at
once and the head tries it again after its back-off. The same holds for starts that can be placed: each waits on its
worker's registration, so when a node with room for 199 actors joined, 128 starts held every RPC thread, the workers'
RegisterWorker calls timed out and those workers exited (the actors died). At most ``START_CONCURRENCY`` starts run
at once; the next is answered "busy".
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import grpc

from spindle import _accelerators
from spindle._agent import graceful as graceful_stop
from spindle._agent import leasing, live_actors
from spindle._agent.bundles import Key
from spindle._proto import pb, rpc
from spindle._scheduling import add, fits, subtract
from spindle.exceptions import RuntimeEnvSetupError

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

EXIT_REPORT_WAIT_S = 30.0  # how long a start whose worker died waits for that exit to reach the head
DIED_GRACE_S = 5.0  # a worker whose CreateActor call broke is reaped within this when it died (else: the call failed)
START_WAITERS = 8  # actor starts that may wait for resources at once, each on one of the agent's 128 RPC threads
START_CONCURRENCY = 32  # actor starts in progress at once (a worker each); the other RPC threads stay free


def _testing_kill_before_reply(spec: pb.ActorSpec, incarnation: int) -> bool:
    """Fault injection for tests (``SPINDLE_TESTING_KILL_ACTOR_BEFORE_REPLY=<class name>``): the first incarnation of
    an actor of that class has its worker killed once its constructor returned, and the reply saying it started
    waits until the head has been told of the exit: the order the head must handle whichever way it comes."""
    return incarnation == 0 and os.environ.get("SPINDLE_TESTING_KILL_ACTOR_BEFORE_REPLY", "") == spec.class_name


def _pickled(error: BaseException) -> bytes:
    from spindle._agent.agent import _pickled as pickled

    return pickled(error)


def start_actor(self: Agent, req: pb.StartActorRequest) -> pb.StartActorReply:
    spec = req.spec
    placement = dict(spec.placement.amounts)
    hold = dict(spec.hold.amounts)
    both = dict(placement)
    for k, v in hold.items():
        both[k] = max(both.get(k, 0.0), v)
    deadline = time.monotonic() + 2.0
    bundle: Key | None = None
    with self.cond:
        if self.actor_starts >= START_CONCURRENCY:
            return pb.StartActorReply(ok=False)  # busy: the head tries again (see START_CONCURRENCY)
        if spec.strategy.kind == "PLACEMENT_GROUP":  # placed in its bundle's pool, not the node's
            while (bundle := self.bundles.pick(spec.strategy, both)[0]) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return pb.StartActorReply(ok=False)
                self.cond.wait(min(left, 0.1))
            subtract(self.bundles.pool(bundle), placement)
        else:
            if self.actor_waiters >= START_WAITERS and not fits(both, self.available):
                return pb.StartActorReply(ok=False)  # busy: the head tries again (see START_WAITERS)
            self.actor_waiters += 1
            ticket = leasing.enqueue(self, both)
            try:
                while not (fits(both, self.available) and leasing.first_in_line(self, ticket)) or self.draining:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return pb.StartActorReply(ok=False)  # placed again by the head (elsewhere if we drain)
                    self.cond.wait(min(left, 0.1))
                subtract(self.available, placement)
            finally:
                self.actor_waiters -= 1
                leasing.dequeue(self, ticket)
        self.starting += 1
        self.actor_starts += 1
    try:
        return _start_actor(self, req, placement, hold, bundle)
    finally:
        with self.cond:
            self.starting -= 1
            self.actor_starts -= 1

def _start_actor(self: Agent, req: pb.StartActorRequest, placement: dict[str, float], hold: dict[str, float],
                 bundle: Key | None) -> pb.StartActorReply:
    spec = req.spec
    assert self.pool is not None
    try:
        wenv = self.runtime_envs.prepare(spec.runtime_env) if spec.runtime_env.key else None
    except RuntimeEnvSetupError as e:  # the actor cannot be created here or anywhere: it dies with the cause
        with self.cond:
            add(self.bundles.pool(bundle), placement)
            self.cond.notify_all()
        return pb.StartActorReply(ok=False, error=_pickled(e), error_text=f"runtime_env: {e}")
    worker = self.pool.acquire(timeout=30.0, dedicated=True, wenv=wenv)
    try:
        if worker is None:
            return pb.StartActorReply(ok=False)
        stub = rpc.CoreWorkerStub(self.channels.get(worker.address))
        with self.cond:  # its exit from here on is the actor's (reported to the head with this incarnation)
            worker.actor_id, worker.incarnation = spec.actor_id, req.incarnation
        ids = self.accelerators.assign(spec.actor_id, hold)
        if ids:  # the actor sees its devices in the variables their runtimes read, for its whole life
            base, req = req, pb.StartActorRequest()
            req.CopyFrom(base)
            req.spec.env_vars.update(_accelerators.env_for(ids))
        try:
            reply: pb.StartActorReply = stub.CreateActor(req, metadata=self.channels.metadata, timeout=600)
        except grpc.RpcError as e:
            self.accelerators.release(spec.actor_id)
            # its worker died in the constructor: the connection broke, and the process is gone (reaped, its exit
            # reported to the head, which restarts the actor or lets it die: see _head/actor_fate) before we answer
            died = e.code() == grpc.StatusCode.UNAVAILABLE and worker.exit_handled.wait(DIED_GRACE_S)
            if not died:  # the call failed, not the worker: stop it quietly, the head places the actor again
                with self.cond:
                    worker.actor_id = b""
                self.pool.kill(worker)
            return pb.StartActorReply(ok=False, error_text=str(e))
        if not reply.ok:
            self.accelerators.release(spec.actor_id)
            if reply.exited:  # exit_actor() in the constructor: its atexit handlers run as it exits
                graceful_stop.terminate(worker.proc)
            else:
                self.pool.kill(worker)
            return reply
        with self.cond:
            worker.actor_hold = hold
            live_actors.remember(self, worker.worker_id, spec)
            if bundle is not None:
                self.bundles.worker_key[worker.worker_id] = bundle
            subtract(self.bundles.pool(bundle), hold)
        reply.worker_id = worker.worker_id
        if _testing_kill_before_reply(spec, req.incarnation):
            self.pool.kill(worker)
            worker.exit_handled.wait(EXIT_REPORT_WAIT_S)
        return reply
    finally:
        with self.cond:
            add(self.bundles.pool(bundle), placement)
            self.cond.notify_all()
