"""The per-process core shared by drivers and workers: ownership, put/get/wait, object serving.

Every driver and worker runs one CoreWorker with a small gRPC server. It *owns* what it puts
and the results of what it submits: small values live inline in its memory store, large ones in
its node's shared-memory store, and any process holding a ref asks the owner (GetObject). Task
submission lives in ``submitter``, actor calls in ``actor_client``, execution in ``executor``, and
the gRPC servicer other processes call in ``core_servicer``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle
import grpc

from spindle import _ids
from spindle._core.core_servicer import CoreWorkerServicer
from spindle._core.memory_store import MemoryStore, RefCounts
from spindle._core.object_ref import ObjectRef, set_counter
from spindle._core.store_client import AgentUnreachable, StoreClient
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels, make_server
from spindle._rpc.transfer import fetch_call, fetch_stream
from spindle._serialization import deserialize, pickle_error, serialize
from spindle.exceptions import (
    GetTimeoutError,
    ObjectLostError,
    ObjectReconstructionFailedError,
    ObjectStoreFullError,
    OwnerDiedError,
)

log = logging.getLogger("spindle")

INLINE_MAX = 100 * 1024


class CoreWorker:
    def __init__(self, *, mode: str, token: str, head_address: str, agent_address: str, node_id: str,
                 ip: str, worker_id: str = "", log_to_driver: bool = True):
        self.mode = mode
        self.token = token
        self.head_address = head_address
        self.agent_address = agent_address
        self.node_id = node_id
        self.ip = ip
        self.worker_id = worker_id or _ids.new_id().hex()
        self.log_to_driver = log_to_driver
        self.job_id = b""
        self.namespace = ""
        self.session = ""  # the cluster's session name (set by init(); workers ask the head on first use)
        self.runtime_env_vars: dict[str, str] = {}
        self.channels = Channels(token)
        self.md = self.channels.metadata
        self.store = MemoryStore()
        self.shm = StoreClient(self)
        self.refs = RefCounts(self._free)
        self.owned: set[bytes] = set()
        self._free_q: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._fetching: set[bytes] = set()
        self._fetch_lock = threading.Lock()
        self.io_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="spindle-io")
        self.executor: Any = None  # set in workers
        self.server, port = make_server(token, ip, 0, max_workers=32)
        rpc.add_CoreWorkerServicer_to_server(CoreWorkerServicer(self), self.server)
        self.server.start()
        self.address = f"{ip}:{port}"
        from spindle._core.actor_client import ActorClient
        from spindle._core.failover import Failover
        from spindle._core.submitter import TaskSubmitter
        from spindle._core.task_events import TaskEvents

        self.events = TaskEvents(self._report_events, lambda: self.node_id, self.worker_id, os.getpid())
        self.failover = Failover(self)
        self.submitter = TaskSubmitter(self)
        self.actors = ActorClient(self)
        self.closed = False
        threading.Thread(target=self._free_loop, daemon=True, name="spindle-free").start()
        if mode == "driver":
            from spindle._core.node_watch import NodeWatch

            self.node_watch = NodeWatch(self)
        set_counter(self)
        if mode == "driver":
            from spindle import _stacks

            _stacks.install(library=True)  # kill -USR1 prints the driver's stacks, unless the program uses USR1
        if os.environ.get("SPINDLE_DEBUG") and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR2, lambda *_: sys.stderr.write(
                f"[{self.mode} {os.getpid()}] {self.submitter.debug_state()}\n"))

    @property
    def node_labels(self) -> dict[str, str]:
        """This node's labels (``spindle start --labels``), as registered with the head (looked up once)."""
        cached: dict[str, str] | None = getattr(self, "_node_labels", None)
        if cached is None:
            view = self.head().GetClusterView(pb.Empty(), metadata=self.md, timeout=10)
            mine = next((n for n in view.nodes if n.node_id == self.node_id), None)
            cached = self._node_labels = dict(mine.labels) if mine is not None else {}
        return dict(cached)

    def nodes_died(self, dead: dict[str, str]) -> None:
        """The head declared these nodes (ID -> agent address) dead: give up our leases there (their tasks are
        retried elsewhere) and break our actor streams there (the head says what became of each actor). A driver
        learns it by looking (``node_watch``); a worker is told by its agent (``_agent.death_notice``)."""
        self.submitter.nodes_died(set(dead.values()))
        self.actors.nodes_died(set(dead))

    # ---------------------------------------------------------------- stubs
    def head(self) -> rpc.HeadStub:
        return self.channels.stub(self.head_address, rpc.HeadStub)

    def _report_events(self, batch: pb.TaskEventBatch) -> None:
        self.head().ReportTaskEvents(batch, metadata=self.md, timeout=10)

    def agent(self, address: str | None = None) -> rpc.NodeAgentStub:
        return self.channels.stub(address or self.agent_address, rpc.NodeAgentStub)

    # ---------------------------------------------------------------- ref counting protocol
    def add_local_ref(self, oid: bytes) -> None:
        self.refs.add(oid)

    def remove_local_ref(self, oid: bytes) -> None:
        self.refs.remove(oid)

    def ref_escaped(self, oid: bytes, owner: str) -> None:
        if owner == self.address:
            self.refs.escape(oid)

    def _free(self, oid: bytes) -> None:
        value = self.store.delete(oid)
        self.submitter.lineage.forget(oid)
        owned = oid in self.owned
        self.owned.discard(oid)
        if owned and value is not None and value.in_store and not self.shm.recycle(oid, value.location.size):
            self._free_q.put((value.location.agent_address, oid))

    def _free_loop(self) -> None:
        while True:
            first = self._free_q.get()
            batch: dict[str, list[bytes]] = {first[0]: [first[1]]}
            time.sleep(0.01)
            while True:
                try:
                    addr, oid = self._free_q.get_nowait()
                except queue.Empty:
                    break
                batch.setdefault(addr, []).append(oid)
            for addr, oids in batch.items():
                try:
                    self.agent(addr).FreeObjects(pb.FreeRequest(object_ids=oids), metadata=self.md, timeout=10)
                except grpc.RpcError:
                    pass

    # ---------------------------------------------------------------- values
    def new_ref(self, oid: bytes) -> ObjectRef:
        self.owned.add(oid)
        return ObjectRef(oid, self.address)

    def to_object_value(self, oid: bytes, value: Any, owner: str = "") -> pb.ObjectValue:
        """``value`` as it travels; a large one is written to the store for ``owner`` (default: this process)."""
        ser = serialize(value)
        while True:
            if ser.size <= INLINE_MAX or not self.node_id:
                return pb.ObjectValue(object_id=oid, inline=ser.to_bytes())
            agent, node_id = self.agent_address, self.node_id
            try:
                size = self.shm.write(oid, ser, owner or self.address)
            except AgentUnreachable as e:
                self.agent_unreachable(agent)  # a driver whose node died moves to a live one and writes there
                if self.agent_address != agent:
                    continue
                # no live node: keep it here, as a driver without a node does; readers ask us for it
                log.warning("%s: keeping object %s (%d bytes) in this process", e, oid.hex(), ser.size)
                return pb.ObjectValue(object_id=oid, inline=ser.to_bytes())
            loc = pb.ObjectLocation(node_id=node_id, agent_address=agent, size=size)
            return pb.ObjectValue(object_id=oid, location=loc, in_store=True)

    @staticmethod
    def error_value(oid: bytes, err: BaseException) -> pb.ObjectValue:
        return pb.ObjectValue(object_id=oid, inline=pickle_error(err), is_error=True)

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError("Calling put() on an ObjectRef is not allowed: pass the ref itself instead.")
        oid = _ids.new_id()
        ov = self.to_object_value(oid, value)
        ref = self.new_ref(oid)
        self.store.put(oid, ov)
        return ref

    def materialize(self, ov: pb.ObjectValue) -> Any:
        if ov.is_error:
            raise cloudpickle.loads(ov.inline)
        if not ov.in_store:
            return deserialize(ov.inline)
        return deserialize(self._map(ov))

    def materialize_arg(self, ov: pb.ObjectValue, maps: list[tuple[bytes, memoryview]]) -> Any:
        """A task argument in a store; when read in place from its owner's file on this node, the mapping is added
        to ``maps`` so that the executor can unmap it after the run and tell the owner (who may reuse the file)."""
        if not self.node_id or ov.location.node_id != self.node_id:
            return self.materialize(ov)
        view = self.shm.map(ov.object_id)
        maps.append((ov.object_id, view))
        return deserialize(view)

    def _map(self, ov: pb.ObjectValue) -> memoryview | bytes:
        loc = ov.location
        if loc.node_id == self.node_id and self.node_id:
            return self.shm.map(ov.object_id)
        if self.node_id:
            agent = self.agent_address
            try:
                reply = self.agent(agent).PullObject(pb.PullRequest(object_id=ov.object_id, location=loc),
                                                     metadata=self.md, timeout=600)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or self.mode != "driver":
                    raise ObjectLostError(ov.object_id.hex(), f"this node's agent failed ({e.code().name})") from None
                self.agent_unreachable(agent)  # our node died: fetch through a live one
                if self.agent_address == agent:
                    raise ObjectLostError(ov.object_id.hex(), f"this node's agent at {agent} is gone") from None
                return self._map(ov)
            if reply.store_full:
                raise ObjectStoreFullError(reply.message)
            if not reply.ok:
                raise ObjectLostError(ov.object_id.hex(), reply.message)
            return self.shm.map(ov.object_id)
        try:  # a driver with no node of its own: stream the value into memory
            chunks = fetch_stream(self.channels.stub(loc.agent_address, fetch_call), pb.FetchRequest(object_id=ov.object_id),
                                  self.md, 600)
            return b"".join(chunks)
        except grpc.RpcError as e:
            raise ObjectLostError(ov.object_id.hex(), f"fetch from {loc.agent_address}: {e.code()}") from None

    def ensure_fetch(self, ref: ObjectRef) -> None:
        """Start asking the owner for a borrowed ref's value (once); it lands in the memory store."""
        oid = ref.binary()
        if ref.owner_address == self.address or self.store.get(oid) is not None:
            return
        with self._fetch_lock:
            if oid in self._fetching:
                return
            self._fetching.add(oid)
        self.io_pool.submit(self._fetch_from_owner, oid, ref.owner_address)

    def _fetch_from_owner(self, oid: bytes, owner: str) -> None:
        stub = self.channels.stub(owner, rpc.CoreWorkerStub)
        try:
            while not self.closed:
                ov = stub.GetObject(pb.GetObjectRequest(object_id=oid, timeout_s=20), metadata=self.md, timeout=60)
                if ov.object_id:
                    self.store.put(oid, ov)
                    return
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                err: Exception = ObjectLostError(oid.hex(), "its owner no longer has it (it was freed)")
            else:
                err = OwnerDiedError(oid.hex(), f"its owner at {owner} is unreachable ({e.code().name})")
            self.store.put(oid, self.error_value(oid, err))
        finally:
            with self._fetch_lock:
                self._fetching.discard(oid)

    def wait_ready(self, refs: list[ObjectRef], num: int, timeout: float | None,
                   fail_fast: bool = False, oids: list[bytes] | None = None) -> list[bytes]:
        """The ids of ``refs`` (``oids``, when the caller has them) that are ready, once ``num`` are."""
        if oids is None:
            oids = [r.binary() for r in refs]
        done = list(filter(self.store.ready.__contains__, oids))
        if len(done) >= num:
            return done
        me = self.address
        for r in refs:
            if r._owner != me:  # ours arrive by themselves: only a borrowed ref's value is fetched
                self.ensure_fetch(r)
        if self.actors.dirty:  # actor calls held back to be sent together: this caller now waits for them
            self.actors.flush_local()
        blocked = self.executor is not None and self.executor.in_task()
        if blocked:
            self.set_blocked(True)
        try:
            return self.store.wait(oids, num, timeout, fail_fast)
        finally:
            if blocked:
                self.set_blocked(False)

    def agent_unreachable(self, address: str) -> None:
        """The agent at ``address`` is gone: a driver moves to a live node (see ``failover``)."""
        self.failover.unreachable(address)

    def switch_node(self, agent_address: str, node_id: str) -> None:
        """Use another node's agent; ``node_id`` empty: no store of our own (values are streamed)."""
        self.agent_address, self.node_id = agent_address, node_id
        old, self.shm = self.shm, StoreClient(self)
        old.close()

    def lease_started(self, lease_id: bytes) -> dict[str, str]:
        """Tell the agent the lease is in use; its answer: the lease's accelerator ids (visible-devices vars)."""
        try:
            ids = self.agent().LeaseStarted(pb.ReturnLeaseRequest(lease_id=lease_id), metadata=self.md, timeout=10)
        except grpc.RpcError:
            return {}
        return dict(ids.visible)

    def holder_gone(self, lease_id: bytes, busy: bool = False) -> None:
        """Our lease holder closed its stream (returned the lease, or died): make sure the lease is back.

        ``busy``: a task of that holder still runs here, so this worker must not be lent out again: the
        agent kills it (and so the task, whose result nobody can receive any more).
        """
        try:
            self.agent().ReturnLease(pb.ReturnLeaseRequest(lease_id=lease_id, kill_worker=busy), metadata=self.md,
                                     timeout=10)
        except grpc.RpcError:
            pass

    def set_blocked(self, blocked: bool) -> None:
        try:
            self.agent().WorkerBlocked(pb.BlockedRequest(worker_id=self.worker_id, blocked=blocked),
                                       metadata=self.md, timeout=10)
        except grpc.RpcError:
            pass

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        ready = self.wait_ready(refs, len(refs), timeout, fail_fast=len(refs) > 1)
        if len(ready) < len(refs):
            by_id = {r.binary(): r for r in refs}
            for oid in ready:  # one of them failed: raise its error now, as Ray does, not after the others
                ov = self.store.get(oid)
                if ov is not None and ov.is_error:
                    self._value(by_id[oid], timeout)
            raise GetTimeoutError(f"get() timed out after {timeout}s with {len(refs) - len(ready)} of "
                                  f"{len(refs)} objects not ready")
        out = []
        for r in refs:
            out.append(self._value(r, timeout))
        return out

    def _value(self, ref: ObjectRef, timeout: float | None) -> Any:
        oid = ref.binary()
        while True:
            ov = self.store.get(oid)
            if ov is None:  # being reconstructed
                if not self.store.wait([oid], 1, timeout):
                    raise GetTimeoutError(f"get() timed out after {timeout}s while object {ref.hex()} was being "
                                          "reconstructed")
                continue
            try:
                return self.materialize(ov)
            except ObjectLostError as e:
                if oid not in self.owned or not ov.in_store:
                    raise
                why_not = self.submitter.reconstruct(oid)
                if why_not:  # Ray's ObjectReconstructionFailedError when there was a task to re-run
                    lost = ObjectReconstructionFailedError if self.submitter.lineage.get(oid) is not None else ObjectLostError
                    raise lost(oid.hex(), f"{e.reason}; it cannot be reconstructed: {why_not}") from None

    def get_one(self, ref: ObjectRef, timeout: float | None) -> Any:
        return self.get([ref], timeout)[0]

    def serve_object(self, oid: bytes, timeout: float, context: Any) -> pb.ObjectValue:
        self.shm.shared(oid)
        ov = self.store.get(oid)
        if ov is not None:
            return ov
        if oid not in self.owned:
            context.abort(grpc.StatusCode.NOT_FOUND, f"object {oid.hex()} is not owned here")
        self.store.wait([oid], 1, min(timeout, 30.0))
        return self.store.get(oid) or pb.ObjectValue()

    # ---------------------------------------------------------------- logs
    def emit_log(self, lines: Iterable[pb.LogLine]) -> None:
        if self.executor is not None:
            self.executor.forward_logs(lines)
            return
        if not self.log_to_driver:
            return
        for line in lines:
            stream = sys.stderr if line.stderr else sys.stdout
            stream.write(line.text + "\n")
        sys.stdout.flush()

    def shutdown(self) -> None:
        self.closed = True
        self.events.close()
        self.shm.close()
        set_counter(None)
        self.submitter.shutdown()
        self.actors.shutdown()
        self.server.stop(0)
        self.channels.close()
        self.io_pool.shutdown(wait=False, cancel_futures=True)
