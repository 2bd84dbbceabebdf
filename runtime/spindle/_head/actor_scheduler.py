"""The head's pending actors: one queue and one thread, not a thread per actor waiting for a node.

An actor that waits for resources (none free now, or no node has them until one joins) used to park a
head thread in a sleep-and-retry loop of its own: 1,000 such actors were 1,000 head threads polling.
As Ray's GCS actor scheduler does, the head now keeps them in one queue, ordered by when they were
queued, and one thread runs a scheduling round (``actor_placement.plan``) when something may have
changed: an actor was queued, a node joined, a heartbeat shows resources freed; and, while the queue
is not empty, again after a backoff (20 ms doubling to 0.5 s, the old per-actor retry pace) for what
no event announces (a placement group placed, a start refused). Starting an actor on its node is an
asynchronous ``StartActor`` call whose reply is handled on gRPC's completion thread, so an actor
being started holds no head thread either. A node that refuses (busy) or cannot be reached puts the
actor back in the queue at its old place; killing a pending actor takes it out.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import grpc

from spindle import _actor_death
from spindle._head import wake_loop
from spindle._head.actor_fate import ExitReport, ReplyKind, on_start_reply
from spindle._head.actor_placement import PendingActor, plan, startable, waiting_for_demand
from spindle._proto import pb, rpc
from spindle._scheduling import EPS, strategy_from_wire, subtract

if TYPE_CHECKING:
    from spindle._head.head_state import ActorRecord, HeadState

log = logging.getLogger("spindle.head")

RETRY_MIN_S = 0.02
RETRY_MAX_S = 0.5
START_TIMEOUT_S = 120.0


class ActorScheduler:
    """The queue of actors waiting to be placed, and their starts; its state is guarded by the head's lock."""

    def __init__(self, head: HeadState):
        self.head = head
        self.queue: dict[bytes, tuple[int, ActorRecord, PendingActor]] = {}  # actor id -> (queue position, ...)
        self._seq = 0
        self._order: dict[bytes, int] = {}  # queue position kept while an actor is being started (a refusal)
        self._pg_attempts: dict[bytes, int] = {}  # placement group actors: which of the group's nodes to try next
        self._warned: set[bytes] = set()
        self._in_flight = 0  # StartActor calls not answered yet: a refusal puts its actor back in the queue
        self._wake = threading.Event()
        threading.Thread(target=self._loop, daemon=True, name="actor-sched").start()

    # ---------------------------------------------------------------- queue
    def enqueue(self, rec: ActorRecord) -> None:
        """Place ``rec`` (a new or restarting actor) as soon as a node can take it."""
        with self.head.lock:
            if rec.scheduling:
                return
            rec.scheduling = True
            self._put(rec)
        self._wake.set()

    def _put(self, rec: ActorRecord) -> None:
        actor_id = rec.spec.actor_id
        pos = self._order.get(actor_id)
        if pos is None:
            self._seq += 1
            pos = self._order[actor_id] = self._seq
        spec = rec.spec  # fixed while it waits: its policy view is made once
        self.queue[actor_id] = (pos, rec, PendingActor(actor_id, dict(spec.placement.amounts),
                                                       strategy_from_wire(spec.strategy)))

    def forget(self, actor_id: bytes) -> None:
        """``actor_id`` died or was killed while it waited: take it out of the queue (head lock held)."""
        entry = self.queue.pop(actor_id, None)
        if entry is not None:
            self._leave(entry[1])

    def _leave(self, rec: ActorRecord) -> None:
        actor_id = rec.spec.actor_id
        self.queue.pop(actor_id, None)
        self._order.pop(actor_id, None)
        self._pg_attempts.pop(actor_id, None)
        self._warned.discard(actor_id)
        rec.scheduling = rec.waiting = False

    def wake(self) -> None:
        """Resources may have appeared (a node joined, a heartbeat shows some freed): try the queue now."""
        if self.queue:
            self._wake.set()

    def heartbeat(self, before: dict[str, float], after: dict[str, float]) -> None:
        """A node reported its free resources: wake the queue if any of them grew."""
        if self.queue and any(v > before.get(k, 0.0) + EPS for k, v in after.items()):
            self._wake.set()

    # ---------------------------------------------------------------- rounds
    def _loop(self) -> None:
        # an idle wait only when nothing can come back: a start in flight may be refused (busy) and requeued
        # from gRPC's completion thread without waking us, so keep the backoff's pace until it is answered
        wake_loop.run(self._wake, self._round, what="actor scheduling round", min_s=RETRY_MIN_S, max_s=RETRY_MAX_S,
                      busy=lambda: bool(self.queue or self._in_flight), wake_resets=True)

    def _round(self) -> bool:
        """Start every queued actor a node can take now; True if any started."""
        head = self.head
        starts: list[tuple[ActorRecord, str, str, int]] = []
        warn: list[tuple[str, str]] = []
        with head.lock:
            queued = sorted(self.queue.values(), key=lambda e: e[0])
            for _, rec, _ in queued:
                if rec.state == "DEAD":
                    self._leave(rec)
            queued = [e for e in queued if e[1].state != "DEAD"]
            entries = [rec for _, rec, _ in queued]
            plain = [(rec, a) for _, rec, a in queued if rec.spec.strategy.kind != "PLACEMENT_GROUP"]
            placements = plan([a for _, a in plain], [n.view for n in head.nodes.values()], head.placer)
            for (rec, a), p in zip(plain, placements, strict=True):
                rec.waiting = waiting_for_demand(p)
                if p.decision == "infeasible" and rec.spec.actor_id not in self._warned:
                    self._warned.add(rec.spec.actor_id)
                    warn.append((rec.spec.class_name, p.reason))
                if startable(p):
                    subtract(head.nodes[p.node_id].view.available, a.demand)
                    starts.append((rec, p.node_id, p.address, rec.incarnation))
            for rec in entries:
                if rec.spec.strategy.kind == "PLACEMENT_GROUP":
                    target = self._pg_target(rec)
                    if target is not None:
                        starts.append((rec, *target, rec.incarnation))
            for rec, *_ in starts:
                self.queue.pop(rec.spec.actor_id, None)
                rec.start_in_flight = True
            self._in_flight += len(starts)
        for class_name, reason in warn:
            log.warning("actor %s cannot be placed yet: %s", class_name, reason)
        for rec, node_id, address, incarnation in starts:
            self._start(rec, node_id, address, incarnation)
        return bool(starts)

    def _pg_target(self, rec: ActorRecord) -> tuple[str, str] | None:
        """(node id, address) of the bundle an actor in a placement group goes to; None: it waits, or is now DEAD."""
        actor_id = rec.spec.actor_id
        attempt = self._pg_attempts[actor_id] = self._pg_attempts.get(actor_id, 0) + 1
        verdict, node_id, detail = self.head.pgs.target(rec.spec.strategy, attempt)
        if verdict == "place":
            rec.waiting = False
            return node_id, detail
        if verdict == "wait":
            rec.waiting = True
            return None
        rec.state, rec.death_text = "DEAD", f"The actor cannot be scheduled: {detail}."
        self.head.actor_dead(rec)
        self._leave(rec)
        return None

    # ---------------------------------------------------------------- starts
    def _start(self, rec: ActorRecord, node_id: str, address: str, incarnation: int) -> None:
        request = pb.StartActorRequest(spec=rec.spec, incarnation=incarnation)
        try:
            stub = self.head.channels.stub(address, rpc.NodeAgentStub)  # cached: a stub is ~25 callables to build
            fut = stub.StartActor.future(request, metadata=self.head.channels.metadata, timeout=START_TIMEOUT_S)
        except (grpc.RpcError, ValueError) as e:  # the head is shutting down (its channels closed)
            log.warning("starting actor on %s failed: %s", address, e)
            self._requeue(rec)
            return
        fut.add_done_callback(lambda f: self._started(rec, node_id, address, f))

    def _started(self, rec: ActorRecord, node_id: str, address: str, fut: Any) -> None:
        """``StartActor`` answered (on gRPC's completion thread: nothing here blocks).

        Its worker's exit may have been reported before this reply (``actor_fate``): the order of the two
        does not change the outcome.
        """
        try:
            reply: pb.StartActorReply | None = fut.result()
        except grpc.RpcError as e:
            log.warning("starting actor on %s failed: %s", address, e)
            reply = None
        except Exception:  # cancelled (channels closed at shutdown)
            reply = None
        kind: ReplyKind = ("retry" if reply is None or not (reply.ok or reply.error or reply.exited)  # busy, unreachable
                           else "ok" if reply.ok else "failed")
        head = self.head
        restart = False
        with head.lock:
            self._in_flight -= 1
            rec.start_in_flight = False
            deferred, rec.deferred_exit = rec.deferred_exit, None
            node = head.nodes.get(node_id)
            if kind == "ok" and deferred is None and (node is None or not node.view.alive):
                # the node died while the actor started there: nobody will report its worker's exit
                why = node.info.death_reason if node is not None else "it left the cluster"
                deferred = ExitReport(_actor_death.node_died(node_id, address, why), intended=False)
            verdict = on_start_reply(rec.state, kind, deferred, reply.worker_id if reply is not None else "")
            if verdict == "retry":
                self._put(rec)  # at its old place; the loop's backoff tries again
                return
            if reply is not None and reply.ok and verdict in ("alive", "exited"):
                rec.worker_address, rec.worker_id, rec.node_id = reply.worker_address, reply.worker_id, node_id
            self._leave(rec)
            if verdict == "alive":
                rec.state = "ALIVE"
                head.recovery.save_actor(rec)
                head.lock.notify_all()
            elif verdict == "exited":  # started, but its worker is already gone: restart it or let it die
                assert deferred is not None
                restart = head.apply_exit(rec, deferred.reason, deferred.intended)
            elif verdict == "dead":  # its constructor failed, or it exited at once: never restarted
                assert reply is not None
                rec.state, rec.death_cause, rec.death_text = "DEAD", reply.error, reply.error_text
                head.actor_dead(rec)
        if verdict == "kill":  # killed while starting
            self._kill(address, rec.spec.actor_id)
        if restart:
            head._schedule_async(rec)

    def _requeue(self, rec: ActorRecord) -> None:
        """A start that did not happen (refused, unreachable): back in the queue (the loop's backoff retries)."""
        with self.head.lock:
            self._in_flight -= 1
            rec.start_in_flight = False
            if rec.state == "DEAD":
                self._leave(rec)
            else:
                self._put(rec)  # at its old place; the loop's backoff tries again

    def _kill(self, address: str, actor_id: bytes) -> None:
        try:
            stub = self.head.channels.stub(address, rpc.NodeAgentStub)
            fut = stub.KillActorWorker.future(pb.KillActorRequest(actor_id=actor_id),
                                              metadata=self.head.channels.metadata, timeout=10)
            fut.add_done_callback(lambda f: None)  # referenced until it ends (gRPC cancels a collected future)
        except (grpc.RpcError, ValueError):
            pass

    def pending(self) -> int:
        """How many actors wait in the queue (not counting those being started)."""
        return len(self.queue)
