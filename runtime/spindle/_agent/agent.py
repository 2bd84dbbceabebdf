"""The node agent: one per node. Leases workers, hosts actors, owns the node's object store.

A driver asks the agent of its node for a *lease* on a worker with some resources; the agent
grants one from its warm pool, tells it to ask another node (spillback, from the cluster view
the head sends back on every heartbeat), or says no node can ever run it. Tasks then flow from
the lease holder straight to the worker; the agent only sees the lease come back. The agent also
moves objects between nodes (PullObject here, FetchObject streamed from the holder) and frees
store files when their owner says so.

Lending workers is ``leasing``, the link to the head (registration, heartbeats) ``head_link``,
starting actors ``actor_start``; this module keeps the agent's state, its actors' and objects'
handling, and the gRPC servicer (a thin shell over them).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from spindle import _accelerators, _actor_death, _store
from spindle._agent import (
    actor_start,
    death_notice,
    head_link,
    lease_reclaim,
    leasing,
    live_actors,
    log_files,
    node_stats,
    transfer,
)
from spindle._agent import graceful as graceful_stop
from spindle._agent.bundles import Bundles
from spindle._agent.object_store import ObjectStore, OwnerProbe, StoreFullError, store_capacity
from spindle._agent.runtime_env import RuntimeEnvs
from spindle._agent.worker_pool import WorkerPool, WorkerRecord
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels, make_server
from spindle._rpc.transfer import add_agent_servicer
from spindle._scheduling import NodeView, Placer, add
from spindle.exceptions import RuntimeEnvSetupError

log = logging.getLogger("spindle.agent")

CHUNK = 4 * 1024 * 1024


class Agent:
    def __init__(self, head_address: str, token: str, ip: str, total: dict[str, float], node_id: str,
                 object_store_memory: int | None = None, spill_dir: str = "", labels: dict[str, str] | None = None,
                 is_head: bool = False):
        self.head_address = head_address
        self.is_head = is_head
        self.labels = dict(labels or {})
        self.draining = False  # the head is draining this node (learnt from its heartbeat replies)
        self.starting = 0  # leases being granted and actors being started (busy, not yet in leases/actors)
        self.actor_waiters = 0  # actor starts waiting for resources (see actor_start.START_WAITERS)
        self.actor_starts = 0  # actor starts past that wait, on a worker (see actor_start.START_CONCURRENCY)
        self.granting: list[dict[str, float]] = []  # shapes of the leases being granted
        self.token = token
        self.ip = ip
        self.node_id = node_id
        self.total = dict(total)
        self.available = dict(total)
        self.cond = threading.Condition()
        self.channels = Channels(token)
        self.placer = Placer()
        self.view: list[NodeView] = []
        self.address = ""
        self.pool: WorkerPool | None = None
        self.leases: dict[bytes, tuple[WorkerRecord, dict[str, float]]] = {}
        self.accelerators = _accelerators.IdPool(total)  # which GPU/NeuronCore/... ids each lease and actor has
        self.unconfirmed: dict[bytes, float] = {}  # lease id -> grant time, until its stream opens
        self.death_notice = death_notice.DeathNotice()  # nodes whose death our workers were told of
        self.reclaims = lease_reclaim.Reclaims()  # unconfirmed leases being taken back, and those taken back
        self.fetchers: dict[bytes, set[str]] = {}
        self.pulls: dict[bytes, threading.Event] = {}
        self.transfers: transfer.TransferServer | None = None  # our data port (objects other agents pull)
        self.stopping = False
        self.waiting: dict[int, dict[str, float]] = {}
        self._ticket = 0
        # our own directory under the configured one: the agent removes it when it stops
        spill_dir = os.path.join(spill_dir or _default_spill_root(), f"spill-{node_id[:12]}")
        self.store = ObjectStore(node_id, store_capacity(object_store_memory), spill_dir,
                                 OwnerProbe(token, ip), on_owner_dead=self.free)
        self.actor_specs: dict[str, pb.ActorSpec] = {}  # worker id -> spec of the actor it runs
        self.runtime_envs = RuntimeEnvs(_runtime_env_root(node_id), self._fetch_package)
        self.registered_once = False
        self.bundles = Bundles(self)
        self.log_dir = ""  # where this node's log files are (workers' .out/.err among them)
        # reported like Ray's resource of that name: total = the budget, available = what is not in use
        self.total["object_store_memory"] = self.available["object_store_memory"] = float(self.store.budget.capacity)

    def _fetch_package(self, uri: str) -> bytes | None:
        head = rpc.HeadStub(self.channels.get(self.head_address))
        try:
            reply: pb.PackageReply = head.GetPackage(pb.PackageRequest(uri=uri), metadata=self.channels.metadata,
                                                     timeout=300)
        except grpc.RpcError as e:
            raise RuntimeEnvSetupError(f"could not fetch package {uri} from the head ({e.code().name})") from None
        return reply.data if reply.exists else None

    # ---------------------------------------------------------------- lifecycle
    def start(self, port: int, num_prestart: int,
              prestarted: Sequence[tuple[str, subprocess.Popen[bytes]]] = ()) -> grpc.Server:
        """Serve on ``port``; ``prestarted`` workers were started for that port before gRPC was imported."""
        server, bound = make_server(self.token, self.ip, port, max_workers=128)
        add_agent_servicer(AgentServicer(self), server)
        server.start()
        self.address = f"{self.ip}:{bound}"
        self.transfers = transfer.TransferServer(self.ip)
        swept = _store.sweep_orphans()
        if swept:
            log.warning("removed the store files of %d agent(s) that died without cleaning up", len(swept))
        self._store_lock = _store.claim(self.node_id, self.store.spill_dir)
        self.store.start()
        self.pool = WorkerPool(self, on_exit=self._worker_exited)
        for worker_id, proc in prestarted:
            self.pool.adopt(worker_id, proc)
        for _ in range(num_prestart - len(prestarted)):
            self.pool.spawn()
        head_link.register(self)
        threading.Thread(target=head_link.heartbeat_loop, args=(self,), daemon=True, name="heartbeat").start()
        node_stats.start(self)
        return server

    def _head(self) -> rpc.HeadStub:
        return rpc.HeadStub(self.channels.get(self.head_address))

    def shutdown(self) -> None:
        self.stopping = True
        if self.pool is not None:
            self.pool.kill_all()
        if self.transfers is not None:
            self.transfers.close()
        self.store.shutdown()

    # ---------------------------------------------------------------- leases
    def request_lease(self, req: pb.LeaseRequest, context: Any = None) -> pb.LeaseReply:
        return leasing.request_lease(self, req, context)

    def lease_started(self, lease_id: bytes) -> pb.AcceleratorIds:
        return leasing.lease_started(self, lease_id)

    def return_lease(self, lease_id: bytes, kill: bool) -> None:
        leasing.return_lease(self, lease_id, kill)

    def worker_blocked(self, worker_id: str, blocked: bool) -> None:
        leasing.worker_blocked(self, worker_id, blocked)

    # ---------------------------------------------------------------- actors
    def start_actor(self, req: pb.StartActorRequest) -> pb.StartActorReply:
        return actor_start.start_actor(self, req)

    def kill_all_actor_workers(self) -> None:
        assert self.pool is not None
        for w in list(self.pool.by_id.values()):
            if w.actor_id:
                w.intended_exit = True
                self.pool.kill(w)

    def kill_actor_worker(self, actor_id: bytes, graceful: bool = False) -> None:
        assert self.pool is not None
        for w in list(self.pool.by_id.values()):
            if w.actor_id == actor_id:
                w.intended_exit = True
                if graceful:
                    graceful_stop.terminate(w.proc)
                else:
                    self.pool.kill(w)

    def _worker_exited(self, worker: WorkerRecord, code: int | None) -> None:
        with self.cond:
            if worker.lease_id:
                entry = self.leases.pop(worker.lease_id, None)
                self.accelerators.release(worker.lease_id)
                if entry is not None and not worker.blocked:
                    add(self.bundles.for_lease(worker.lease_id), entry[1])
                self.bundles.forget_lease(worker.lease_id)
            if worker.actor_id and not worker.blocked:
                add(self.bundles.for_worker(worker.worker_id), worker.actor_hold)
            self.bundles.forget_worker(worker.worker_id)
            self.cond.notify_all()
        live_actors.forget(self, worker.worker_id)
        if worker.actor_id:
            self.accelerators.release(worker.actor_id)
        if not self.stopping:  # any worker may own actors, which die with it (the head checks)
            reason = _actor_death.worker_exited(code, killed=worker.intended_exit) if worker.actor_id else ""
            try:
                self._head().ReportWorkerExit(pb.WorkerExit(worker_id=worker.worker_id, actor_id=worker.actor_id,
                                                            reason=reason, intended=worker.intended_exit or code == 0,
                                                            node_id=self.node_id, incarnation=worker.incarnation),
                                              metadata=self.channels.metadata, timeout=10)
            except grpc.RpcError as e:
                log.warning("could not report a worker's exit to the head: %s", e)

    # ---------------------------------------------------------------- objects
    def pull(self, object_id: bytes, loc: pb.ObjectLocation) -> pb.PullReply:
        if os.path.exists(self.store.path_for_read(object_id)):
            return pb.PullReply(ok=True)
        with self.cond:
            ev = self.pulls.get(object_id)
            leader = ev is None
            if leader:
                ev = self.pulls[object_id] = threading.Event()
        assert ev is not None
        if not leader:
            ev.wait(600)
            ok = os.path.exists(self.store.path_for_read(object_id))
            return pb.PullReply(ok=ok, message="" if ok else "pull failed")
        try:
            path, _, _ = self.store.reserve(object_id, loc.size, "", os.getpid())  # (a freed file: pull's own tmp)
            transfer.pull_object(self, object_id, loc, path)
            return pb.PullReply(ok=True)
        except StoreFullError as e:
            return pb.PullReply(ok=False, store_full=True, message=str(e))
        except (grpc.RpcError, OSError, transfer.TransferError) as e:
            self.store.free([object_id])
            detail = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.RpcError) else e
            return pb.PullReply(ok=False, message=f"fetch from {loc.agent_address} failed: {detail}")
        finally:
            with self.cond:
                self.pulls.pop(object_id, None)
            ev.set()

    def open_transfer(self, object_id: bytes, requester: str) -> pb.TransferTicket:
        """A ticket to read the object from our data port (FileNotFoundError if this node does not have it)."""
        assert self.transfers is not None
        ticket = self.transfers.open(self.store.path_for_read(object_id), object_id)
        with self.cond:
            self.fetchers.setdefault(object_id, set()).add(requester)
        return ticket

    def fetch(self, object_id: bytes, requester: str) -> Iterator[memoryview]:
        view = self.store.map(object_id)
        with self.cond:
            self.fetchers.setdefault(object_id, set()).add(requester)
        for off in range(0, max(len(view), 1), CHUNK):
            yield view[off : off + CHUNK]

    def free(self, object_ids: list[bytes], propagate: bool = True) -> None:
        remote: dict[str, list[bytes]] = {}
        if self.transfers is not None:
            self.transfers.forget(set(object_ids))  # before the store frees them: their files may be reused
        self.store.free(object_ids)
        for oid in object_ids:
            with self.cond:
                for addr in self.fetchers.pop(oid, ()):
                    remote.setdefault(addr, []).append(oid)
        for addr, oids in remote.items():
            try:
                rpc.NodeAgentStub(self.channels.get(addr)).FreeObjects(
                    pb.FreeRequest(object_ids=oids), metadata=self.channels.metadata, timeout=5)
            except grpc.RpcError:
                pass


def _pickled(error: BaseException) -> bytes:
    import cloudpickle  # only on this failure path: service processes stay free of the client's imports

    return bytes(cloudpickle.dumps(error))


def _runtime_env_root(node_id: str) -> str:
    from spindle import _sessions

    return _sessions.private_dir(os.path.join(_sessions.temp_root(), f"runtime_env-{node_id[:12]}"))


def _default_spill_root() -> str:
    from spindle import _sessions

    return _sessions.temp_root()


class AgentServicer(rpc.NodeAgentServicer):
    def __init__(self, agent: Agent):
        self.a = agent

    def RequestLease(self, request: pb.LeaseRequest, context: Any) -> pb.LeaseReply:
        return self.a.request_lease(request, context)

    def ReturnLease(self, request: pb.ReturnLeaseRequest, context: Any) -> pb.Empty:
        self.a.return_lease(request.lease_id, request.kill_worker or request.worker_failed)
        return pb.Empty()

    def WorkerBlocked(self, request: pb.BlockedRequest, context: Any) -> pb.Empty:
        self.a.worker_blocked(request.worker_id, request.blocked)
        return pb.Empty()

    def RegisterWorker(self, request: pb.RegisterWorkerRequest, context: Any) -> pb.RegisterWorkerReply:
        assert self.a.pool is not None
        if not context.is_active():  # the worker gave up waiting (and exits): it must not be handed work
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "registered after the worker's deadline")
        self.a.pool.registered(request.worker_id, request.address, request.pid)
        return pb.RegisterWorkerReply(node_id=self.a.node_id, head_address=self.a.head_address, ip=self.a.ip)

    def StartActor(self, request: pb.StartActorRequest, context: Any) -> pb.StartActorReply:
        return self.a.start_actor(request)

    def KillActorWorker(self, request: pb.KillActorRequest, context: Any) -> pb.Empty:
        self.a.kill_actor_worker(request.actor_id, request.graceful)
        return pb.Empty()

    def PullObject(self, request: pb.PullRequest, context: Any) -> pb.PullReply:
        return self.a.pull(request.object_id, request.location)

    def OpenTransfer(self, request: pb.FetchRequest, context: Any) -> pb.TransferTicket:
        try:
            return self.a.open_transfer(request.object_id, request.requester)
        except FileNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"object {request.object_id.hex()} is not on this node")
            raise

    def FetchObject(self, request: pb.FetchRequest, context: Any) -> Iterator[Any]:
        try:
            yield from self.a.fetch(request.object_id, request.requester)
        except FileNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"object {request.object_id.hex()} is not on this node")

    def FreeObjects(self, request: pb.FreeRequest, context: Any) -> pb.Empty:
        self.a.free(list(request.object_ids))
        return pb.Empty()

    def LeaseStarted(self, request: pb.ReturnLeaseRequest, context: Any) -> pb.AcceleratorIds:
        return self.a.lease_started(request.lease_id)

    def LeaseRevoked(self, request: pb.ReturnLeaseRequest, context: Any) -> pb.LeaseState:
        return pb.LeaseState(revoked=self.a.reclaims.was_revoked(request.lease_id))

    def ReserveObject(self, request: pb.ReserveRequest, context: Any) -> pb.ReserveReply:
        try:
            path, spare_ok, recycled = self.a.store.reserve(request.object_id, request.size, request.owner_address,
                                                            request.writer_pid, request.force_disk)
        except StoreFullError as e:
            return pb.ReserveReply(full=True, message=str(e))
        return pb.ReserveReply(path=path, spare_ok=spare_ok, credit=self.a.store.credit(), recycled=recycled)

    def ObjectsWritten(self, request: pb.WrittenRequest, context: Any) -> pb.Empty:
        self.a.store.written([(o.object_id, o.size, o.owner_address) for o in request.objects])
        return pb.Empty()

    def RestoreObject(self, request: pb.RestoreRequest, context: Any) -> pb.RestoreReply:
        return pb.RestoreReply(path=self.a.store.restore(request.object_id))

    def Bundles(self, request: pb.BundleRequest, context: Any) -> pb.BundleReply:
        return self.a.bundles.handle(request)

    def ListLogs(self, request: pb.LogListRequest, context: Any) -> pb.LogListReply:
        return pb.LogListReply(files=log_files.list_files(self.a.log_dir, request.glob))

    def ReadLog(self, request: pb.LogReadRequest, context: Any) -> Iterator[pb.Chunk]:
        try:
            for data in log_files.read(self.a.log_dir, request.filename, request.lines, request.follow,
                                       context.is_active):
                yield pb.Chunk(data=data)
        except log_files.LogError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))

    def ListObjects(self, request: pb.ObjectListRequest, context: Any) -> pb.ObjectListReply:
        with self.a.store.lock:
            entries = list(self.a.store.budget.entries.items())
        reply = pb.ObjectListReply(total=len(entries))
        for oid, e in entries[: request.limit or len(entries)]:
            reply.objects.add(object_id=oid, size=e.size, owner_address=e.owner, spilled=not e.in_memory)
        return reply
