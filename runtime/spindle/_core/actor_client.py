"""Calling actors: one ordered stream per (caller, actor), straight to the actor's worker.

The head is asked once where the actor lives (and again only after a failure). Calls are sent
strictly in submission order — a call waiting for an argument holds back the ones after it —
and run in that order on the actor. When the stream breaks the caller asks the head what
happened: a restarted actor gets the in-flight calls again if ``max_task_retries`` allows; a dead
actor fails every pending and future call with ActorDiedError. As in Ray (2.10+), an actor that is
not dead but was lost or is restarting fails the calls that cannot be retried with
ActorUnavailableError: those in flight when the stream broke (they may or may not have run), and,
when the actor has ``max_task_retries=0``, calls made while the head reports it RESTARTING ("The
actor is restarting"), instead of holding them until the restart ends.

This module creates actors, queues calls in order and sends them, and completes them; the
connection's life (finding the actor, the stream, restarts and death) is ``actor_conn.py``, the
direct-stream transport (Unix socket or TCP) ``actor_local_stream.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import grpc

from spindle import _actor_death, _ids
from spindle._core import actor_conn
from spindle._core import args as _args
from spindle._core import generators as _gen
from spindle._core import timeline as _timeline
from spindle._core.actor_conn import HEAD_UNREACHABLE_S, LOOKUPS, ActorCall, Conn
from spindle._core.actor_local_stream import LocalCall, LocalOut
from spindle._core.task_records import fail_returns
from spindle._proto import pb
from spindle.exceptions import (
    ActorAlreadyExistsError,
    PendingCallsLimitExceeded,
    TaskCancelledError,
)

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

__all__ = ["HEAD_UNREACHABLE_S", "LOOKUPS", "ActorCall", "ActorClient", "Conn", "LocalCall", "LocalOut"]

log = logging.getLogger("spindle")

class ActorClient:
    """This process's calls to actors: one ``Conn`` per actor, guarded by one lock."""

    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.lock = threading.RLock()
        self.conns: dict[bytes, Conn] = {}
        self.creating: dict[bytes, Any] = {}  # actor id -> CreateActor future not yet answered (create_async)
        self.closed = False
        self.dirty: set[LocalOut] = set()  # local streams holding back calls (see LocalOut)
        self._dirty_event: threading.Event | None = None
        self._lookups = threading.BoundedSemaphore(LOOKUPS)

    def mark_dirty(self, out: LocalOut) -> None:
        """Called under ``self.lock``: ``out`` holds calls back; the flusher sends them within ~1 ms."""
        self.dirty.add(out)
        if self._dirty_event is None:
            self._dirty_event = threading.Event()
            threading.Thread(target=self._flush_loop, daemon=True, name="spindle-actor-flush").start()
        self._dirty_event.set()

    def flush_local(self) -> None:
        with self.lock:
            outs = list(self.dirty)
            self.dirty.clear()
            for out in outs:
                out.flush()

    def _flush_loop(self) -> None:
        assert self._dirty_event is not None
        while not self.closed:
            self._dirty_event.wait()
            time.sleep(0.001)
            self._dirty_event.clear()
            self.flush_local()

    def create(self, spec: pb.ActorSpec, get_if_exists: bool, deps_pending: bool = False) -> pb.ActorInfo:
        req = pb.CreateActorRequest(spec=spec, get_if_exists=get_if_exists, deps_pending=deps_pending)
        info: pb.ActorInfo = self.cw.head().CreateActor(req, metadata=self.cw.md, timeout=60, wait_for_ready=True)
        if not info.found:
            if "already taken" in info.death_text:
                raise ActorAlreadyExistsError(info.death_text)
            raise ValueError(info.death_text or f"could not create actor {spec.class_name}")
        return info

    def create_async(self, spec: pb.ActorSpec, deps_pending: bool = False) -> None:
        """Register an unnamed actor with the head without waiting (as Ray does): ``.remote()`` returns at once, so
        a burst of actors costs no head round trip each. Whatever needs the head to know the actor (its first
        call, kill, release, a handle leaving this process) waits for the registration first (``registered``)."""
        fut = self.cw.head().CreateActor.future(pb.CreateActorRequest(spec=spec, deps_pending=deps_pending),
                                                metadata=self.cw.md, timeout=60, wait_for_ready=True)
        with self.lock:
            self.creating[spec.actor_id] = fut

    def create_when_ready(self, spec: pb.ActorSpec, prepared: _args.PreparedArgs) -> None:
        """Once the constructor's ObjectRef arguments are ready, hand them to the head, which then places the
        actor (registered DEPENDENCIES_UNREADY until then, as in Ray). A failed argument goes as its error: the
        constructor raises it and the actor dies with it. If this process dies first, the head ends the actor."""

        def ready(err: pb.ObjectValue | None) -> None:
            full = pb.ActorSpec()
            full.CopyFrom(spec)
            del full.args[:]
            full.args.extend(prepared.args)
            self.cw.io_pool.submit(self._send_ready, full)

        _args.resolve(self.cw, prepared, ready)

    def _send_ready(self, spec: pb.ActorSpec) -> None:
        self.registered(spec.actor_id)  # the first registration is in (its name checked)
        try:
            self.cw.head().CreateActor(pb.CreateActorRequest(spec=spec), metadata=self.cw.md, timeout=60,
                                       wait_for_ready=True)
        except grpc.RpcError as e:  # its callers wait on the head's record, which says DEPENDENCIES_UNREADY
            log.warning("could not hand actor %s's arguments to the head: %s", spec.class_name, e)

    def registered(self, actor_id: bytes) -> str:
        """Wait until the head has our creation of ``actor_id`` (if one is under way); why it failed, or ""."""
        with self.lock:
            fut = self.creating.get(actor_id)
        if fut is None:
            return ""
        try:
            info = fut.result()
            why = "" if info.found else (info.death_text or "the head refused to create it")
        except grpc.RpcError as e:
            why = f"the head at {self.cw.head_address} could not register it ({e.code().name}: {e.details()})"
        with self.lock:
            self.creating.pop(actor_id, None)
        return why

    def release(self, actor_id: bytes) -> None:
        """Every handle to this owned actor is gone: end it gracefully once the calls sent to it are done."""
        with self.lock:
            conn = self.conns.get(actor_id)
            if conn is not None and conn.state != "DEAD" and (conn.queue or conn.inflight or conn.doomed):
                conn.release_when_idle = True
                return
        self._end_out_of_scope(actor_id)

    def _end_out_of_scope(self, actor_id: bytes) -> None:
        self.registered(actor_id)
        try:
            self.cw.head().KillActor(pb.KillActorRequest(actor_id=actor_id, no_restart=True, graceful=True,
                                                         reason=_actor_death.REASON_OUT_OF_SCOPE),
                                     metadata=self.cw.md, timeout=30)
        except grpc.RpcError:
            pass  # the head is gone: the actor ends with its job
        with self.lock:
            self.conns.pop(actor_id, None)

    def cancel(self, oid: bytes, force: bool, recursive: bool) -> bool:
        """Cancel the call returning ``oid`` (see ``_core.cancel``); False if no call of ours returns it."""
        with self.lock:
            found = next(((conn, c) for conn in self.conns.values()
                          for c in [*conn.queue, *conn.inflight.values()] if oid in c.spec.return_ids), None)
            if found is None:
                return False
            if force:
                raise ValueError("force=True is not supported for actor tasks.")
            conn, c = found
            queued = c in conn.queue
            if queued:
                conn.queue.remove(c)
            else:
                c.cancelled = True
                if conn.state == "ALIVE":
                    conn.out.put(pb.TaskBatch(cancel_task_ids=[c.spec.task_id], cancel_recursive=recursive))
        if queued:
            self._complete_error(c, self._cancelled_value(c))
        return True

    def _cancelled_value(self, c: ActorCall) -> pb.ObjectValue:
        tid = c.spec.task_id.hex()
        return self.cw.error_value(b"", TaskCancelledError(tid, f"Task {c.spec.name!r} ({tid}) was cancelled."))

    def kill(self, actor_id: bytes, no_restart: bool) -> None:
        self.registered(actor_id)
        with self.lock:  # calls made from now on wait for the head's verdict (restarted or dead), not the old stream
            conn = self.conns.get(actor_id)
            call = None
            if conn is not None and conn.state == "ALIVE":
                conn.state, call = "CONNECTING", conn.call
        try:
            self.cw.head().KillActor(pb.KillActorRequest(actor_id=actor_id, no_restart=no_restart),
                                     metadata=self.cw.md, timeout=30, wait_for_ready=True)
        except grpc.RpcError:
            if conn is not None and call is not None:
                with self.lock:
                    conn.state = "ALIVE" if conn.call is call else conn.state
                self._flush(conn)
            raise
        if call is not None:
            call.cancel()

    def _conn(self, actor_id: bytes, max_task_retries: int) -> Conn:
        with self.lock:
            conn = self.conns.get(actor_id)
            if conn is None:
                conn = self.conns[actor_id] = Conn(actor_id, max_task_retries)
                threading.Thread(target=actor_conn.connect_loop, args=(self, conn), daemon=True, name="actor-conn").start()
            return conn

    def submit(self, actor_id: bytes, max_task_retries: int, method: str, name: str, args: tuple[Any, ...],
               kwargs: dict[str, Any], num_returns: Any, concurrency_group: str = "",
               backpressure: int = -1, max_pending_calls: int = -1) -> list[Any]:
        cw = self.cw
        conn = self._conn(actor_id, max_task_retries)
        if max_pending_calls > 0:
            with self.lock:
                pending = len(conn.queue) + len(conn.inflight) + len(conn.doomed)
            if pending >= max_pending_calls:
                raise PendingCallsLimitExceeded(
                    f"The task {name} could not be submitted to {actor_id.hex()} because more than "
                    f"{max_pending_calls} tasks are queued on the actor. This limit can be adjusted with the "
                    "`max_pending_calls` actor option.")
        task_id = _ids.new_id()
        generator, num_returns = _gen.kind_of(num_returns, False)
        prepared = _args.prepare(cw, args, kwargs, f"actor method {name!r}")
        return_ids = [_ids.return_id(task_id, i) for i in range(num_returns)]
        refs = [cw.new_ref(rid) for rid in return_ids]
        with self.lock:
            conn.seq += 1
            spec = pb.TaskSpec(task_id=task_id, name=name, num_returns=num_returns, return_ids=return_ids,
                               job_id=cw.job_id, owner_address=cw.address, actor_id=actor_id, method=method,
                               sequence=conn.seq, caller_id=cw.worker_id, concurrency_group=concurrency_group,
                               generator=generator, generator_backpressure=backpressure)
            call = ActorCall(spec, prepared, max_task_retries)
            conn.queue.append(call)
        if generator == "streaming":
            state = _gen.register(cw, task_id, lambda n: self._generator_ack(conn, task_id, n, backpressure))
            refs = [_gen.ObjectRefGenerator(state, refs[0])]  # type: ignore[list-item]

        def ready(err: pb.ObjectValue | None) -> None:
            call.spec.args.extend(prepared.args)
            with self.lock:
                call.ready, call.error = True, err
            self._flush(conn)

        _args.resolve(cw, prepared, ready)
        return refs

    def _generator_ack(self, conn: Conn, task_id: bytes, consumed: int, backpressure: int) -> None:
        if backpressure <= 0:
            return
        with self.lock:
            out = conn.out if conn.state == "ALIVE" and task_id in conn.inflight else None
        if out is not None:
            out.put(pb.TaskBatch(generator_acks=[pb.GeneratorAck(task_id=task_id, consumed=consumed)]))

    # ---------------------------------------------------------------- sending
    def _flush(self, conn: Conn) -> None:
        failed: list[tuple[ActorCall, pb.ObjectValue]] = []
        with self.lock:
            if conn.state == "DEAD":
                assert conn.death is not None
                failed = [(c, conn.death) for c in conn.queue]
                conn.queue.clear()
            elif conn.state == "CONNECTING" and conn.restarting and conn.max_task_retries == 0:
                unavailable = None
                while conn.queue and conn.queue[0].ready:  # as Ray: calls to a restarting actor fail fast
                    c = conn.queue.popleft()
                    if c.error is None:
                        unavailable = unavailable or actor_conn.unavailable(self, conn, "The actor is restarting")
                    failed.append((c, c.error or unavailable))  # type: ignore[arg-type]
            elif conn.state == "ALIVE":
                batch = pb.TaskBatch()
                while conn.queue and conn.queue[0].ready:
                    c = conn.queue.popleft()
                    if c.error is not None:
                        failed.append((c, c.error))
                        continue
                    conn.inflight[c.spec.task_id] = c
                    batch.tasks.append(c.spec)
                if batch.tasks:
                    conn.out.put(batch)
        for c, err in failed:
            self._complete_error(c, err)

    # ---------------------------------------------------------------- results
    def _on_result(self, conn: Conn, r: pb.TaskResult) -> None:
        if r.generator_item:
            _gen.deliver(r)
            return
        with self.lock:
            c = conn.inflight.pop(r.task_id, None)
            idle = conn.release_when_idle and not conn.inflight and not conn.queue and not conn.doomed
            if idle:
                conn.release_when_idle = False
        if idle:
            self.cw.io_pool.submit(self._end_out_of_scope, conn.actor_id)
        if c is None:
            return
        _args.answered(self.cw, c.prepared, r)
        _timeline.record((r,), {r.task_id: c}, conn.worker_address)
        if r.cancelled or c.cancelled:  # as in Ray, also a sync call that ran on to the end
            self._complete_error(c, self._cancelled_value(c))
            return
        if r.failed:
            self._complete_error(c, pb.ObjectValue(inline=r.error, is_error=True))
            return
        _args.release(self.cw, c.prepared, drop_refs=True)
        for ov in r.returns:
            if c.spec.generator:
                self.cw.owned.add(ov.object_id)
            self.cw.store.put(ov.object_id, ov)
        if c.spec.generator:
            _gen.finished(c.spec.task_id, None)

    def _complete_error(self, c: ActorCall, err: pb.ObjectValue) -> None:
        _args.release(self.cw, c.prepared, drop_refs=True)
        fail_returns(self.cw, c.spec, err)

    def has_streams(self) -> bool:
        return any(c.call is not None and c.state == "ALIVE" for c in list(self.conns.values()))

    def nodes_died(self, node_ids: set[str]) -> None:
        """The head declared these nodes dead: break the streams to actors there (the head says what's next)."""
        with self.lock:
            calls = [c.call for c in self.conns.values()
                     if c.call is not None and c.state == "ALIVE" and c.node_id in node_ids]
        for call in calls:
            call.cancel()

    def shutdown(self) -> None:
        self.closed = True
        with self.lock:
            conns = list(self.conns.values())
        for conn in conns:
            if conn.out is not None:
                conn.out.put(None)
