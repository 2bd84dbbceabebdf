"""What the head knows: nodes, the actor directory and restarts, named actors, jobs, the KV, under one lock.

Kept apart from ``server.py`` (the gRPC servicer and the process entry point) so that the head's state
machine can be read, and unit-tested, without its transport; the servicer only forwards to it.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from spindle import _actor_death
from spindle import _membership as membership
from spindle._head import package_service
from spindle._head.actor_fate import ExitReport, on_exit_report
from spindle._head.actor_scheduler import ActorScheduler
from spindle._head.autoscaling import AutoscalerBook
from spindle._head.placement_groups import PlacementGroups
from spindle._head.recovery import Recovery
from spindle._head.state.store import ObservedState
from spindle._head.tables import Tables, open_tables
from spindle._packages import PackageStore
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels
from spindle._scheduling import NodeView, Placer, actor_restart_decision

log = logging.getLogger("spindle.head")


def res_dict(r: pb.Resources) -> dict[str, float]:
    return dict(r.amounts)


@dataclass
class ActorRecord:
    spec: pb.ActorSpec
    state: str = "PENDING"
    worker_address: str = ""
    worker_id: str = ""
    node_id: str = ""
    num_restarts: int = 0
    death_cause: bytes = b""
    death_text: str = ""
    incarnation: int = 0
    no_restart: bool = False
    kill_restarts: bool = False  # kill(no_restart=False): the exit it causes restarts the actor if allowed
    scheduling: bool = False
    waiting: bool = False  # no node can take it now (pending demand for the autoscaler)
    start_in_flight: bool = False  # a StartActor call for this incarnation is not answered yet
    deferred_exit: ExitReport | None = None  # its worker's exit, reported before that reply (see actor_fate)

    def info(self) -> pb.ActorInfo:
        spec = pb.ActorSpec()
        spec.CopyFrom(self.spec)
        spec.ClearField("class_blob")
        spec.ClearField("args")
        return pb.ActorInfo(
            actor_id=self.spec.actor_id,
            state=self.state,
            worker_address=self.worker_address,
            node_id=self.node_id,
            num_restarts=self.num_restarts,
            death_cause=self.death_cause,
            death_text=self.death_text,
            spec=spec,
            found=True,
            incarnation=self.incarnation,
        )


@dataclass
class NodeRecord:
    info: pb.NodeInfo
    view: NodeView
    last_seen: float = field(default_factory=time.monotonic)


class HeadState:
    """Everything the head knows, guarded by one lock; RPC handlers are thin wrappers."""

    def __init__(self, channels: Channels, session: str, tables: Tables | None = None):
        self.lock = threading.Condition()
        self.channels = channels
        self.session = session
        self.nodes: dict[str, NodeRecord] = {}
        self.jobs: dict[bytes, dict[str, Any]] = {}
        self.actors: dict[bytes, ActorRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self.kv: dict[str, bytes] = {}
        self.placer = Placer()
        self.autoscaler = AutoscalerBook()
        self._job_counter = 0
        self.pgs = PlacementGroups(self)
        self.actor_scheduler = ActorScheduler(self)  # actors waiting for a node: one queue, one thread
        self.recovery = Recovery(self, tables or open_tables(None))
        self.recovery.load()
        self._last_check: float | None = None  # when check_nodes last ran (monotonic)
        self.co_located: set[str] = set()  # nodes whose agent runs in this process (an embedded cluster's)
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="node-probe")
        self.autoscaler.demand_hooks.append(self.pgs.pending_demand)  # gang demand
        self.packages: PackageStore | None = None  # runtime_env packages; the job API's store when it runs
        self.observed = ObservedState()  # what workers and agents report, for the state API (bounded)

    def package_store(self) -> PackageStore:
        with self.lock:
            if self.packages is None:
                self.packages = package_service.default_store(self.session)
            return self.packages

    # ---------------------------------------------------------------- nodes
    def register_node(self, info: pb.NodeInfo, actors: list[pb.LiveActor] | None = None,
                      rejoining: bool = False, bundles: list[pb.BundleRequest] | None = None) -> None:
        with self.lock:
            info.alive = True
            info.death_reason = ""
            info.draining = info.node_id in self.autoscaler.drains
            view = NodeView(info.node_id, info.address, res_dict(info.total), res_dict(info.available),
                            schedulable=not info.draining, labels=dict(info.labels))
            self.nodes[info.node_id] = NodeRecord(info, view)
            self.autoscaler.node_joined(info.node_id)
            stale = self.recovery.adopt(info.node_id, actors or [], rejoining)
            stale_bundles = self.pgs.adopt(info.node_id, bundles or [])
            self.lock.notify_all()
        log.info("node %s joined at %s with %s", info.node_id[:8], info.address, dict(info.total.amounts))
        self.pgs.wake()
        self.actor_scheduler.wake()
        for address, actor_id in stale:
            self._kill_worker(address, actor_id)
        self.pgs.give_back(stale_bundles)

    def heartbeat(self, node_id: str, available: pb.Resources, usage: pb.NodeUsage | None = None,
                  draining: bool = False) -> pb.ClusterView:
        with self.lock:
            rec = self.nodes.get(node_id)
            if rec is not None and rec.view.alive:
                rec.last_seen = time.monotonic()
                before, rec.view.available = rec.view.available, res_dict(available)
                self.actor_scheduler.heartbeat(before, rec.view.available)
                rec.info.available.CopyFrom(available)
                if usage is not None:
                    self.autoscaler.heartbeat(node_id, usage, draining, rec.last_seen)
            return self.cluster_view()

    def cluster_view(self) -> pb.ClusterView:
        out = pb.ClusterView()
        for rec in self.nodes.values():
            n = out.nodes.add()
            n.CopyFrom(rec.info)
            n.alive = rec.view.alive
        return out

    def check_nodes(self, timing: membership.Timing = membership.Timing(), now: float | None = None) -> None:
        """Mark nodes dead (see ``membership``) and restart or fail the actors they hosted."""
        now = time.monotonic() if now is None else now
        stalled = membership.head_stall(now - self._last_check) if self._last_check is not None else 0.0
        self._last_check = now
        dead: list[tuple[str, str]] = []
        probes: list[tuple[str, str, float]] = []
        with self.lock:
            for nid, rec in self.nodes.items():
                if not rec.view.alive or nid in self.co_located:  # (that agent dies with this process only)
                    continue
                if stalled:  # the head stood still: not the node's silence
                    rec.last_seen = min(now, rec.last_seen + stalled)
                silent = now - rec.last_seen
                v = membership.verdict(silent, timing)
                if v == "dead":
                    dead.append((nid, membership.death_reason(silent, refused=False)))
                elif v == "probe":
                    probes.append((nid, rec.info.address, silent))
        refused = list(self._probe_pool.map(_refuses_connections, [address for _, address, _ in probes]))
        for (nid, _, silent), gone in zip(probes, refused, strict=True):
            if membership.after_probe(gone) == "dead":
                dead.append((nid, membership.death_reason(silent, refused=True)))
        for nid, reason in dead:
            self.node_died(nid, reason)

    def node_died(self, node_id: str, reason: str) -> None:
        with self.lock:
            rec = self.nodes.get(node_id)
            if rec is None or not rec.view.alive:
                return
            rec.view.alive = rec.info.alive = False
            rec.info.death_reason = reason
            address = rec.info.address
            victims = [a for a in self.actors.values() if a.node_id == node_id and a.state == "ALIVE"]
            self.lock.notify_all()
        log.warning("node %s at %s is dead: %s", node_id[:8], address, reason)
        self.pgs.node_died(node_id)
        self.observed.forget_node(node_id)
        self.owner_died(node_id=node_id, address=address)
        for a in victims:
            self.actor_exited(a.spec.actor_id, a.incarnation, _actor_death.node_died(node_id, address, reason),
                              intended=False)

    # ---------------------------------------------------------------- jobs
    def register_job(self, req: pb.RegisterJobRequest) -> bytes:
        with self.lock:
            if req.job_id:  # a driver re-attaching after the head restarted
                job_id = req.job_id
                self.recovery.restarted = True
                self._job_counter = max(self._job_counter, int.from_bytes(job_id, "big"))
                self.recovery.job_reattached(job_id)
            else:
                self._job_counter += 1
                job_id = self._job_counter.to_bytes(4, "big")
            self.jobs[job_id] = {"driver": req.driver_address, "namespace": req.namespace, "alive": True,
                                 "pid": req.pid, "start": time.time()}
            self.recovery.save_job(job_id)
        return job_id

    def job_finished(self, job_id: bytes) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or not job["alive"]:
                return
            job["alive"] = False
            self.recovery.save_job(job_id)
            owned = [a for a in self.actors.values()
                     if a.spec.job_id == job_id and not a.spec.detached and a.state != "DEAD"]
        for a in owned:
            self.kill_actor(a.spec.actor_id, no_restart=True, reason="its owner (the driver) exited")
        self.pgs.job_finished(job_id)

    # ---------------------------------------------------------------- actors
    def create_actor(self, req: pb.CreateActorRequest) -> pb.ActorInfo:
        spec = req.spec
        with self.lock:
            known = self.actors.get(spec.actor_id)
            if known is not None:  # its owner's second request: the constructor's arguments are ready now
                if known.state != "DEPENDENCIES_UNREADY" or req.deps_pending:
                    return known.info()
                known.spec, known.state = spec, "PENDING"
                self.recovery.save_actor(known)
                self.lock.notify_all()
                info, rec = known.info(), known
            else:
                info, new = self._register_actor(req)
                if new is None or req.deps_pending:
                    return info
                rec = new
        self._schedule_async(rec)
        return info

    def _register_actor(self, req: pb.CreateActorRequest) -> tuple[pb.ActorInfo, ActorRecord | None]:
        """A new actor's record (under the lock); None when its name is taken."""
        spec = req.spec
        if spec.name:
            key = (spec.namespace, spec.name)
            existing = self.named.get(key)
            if existing is not None and self.actors[existing].state != "DEAD":
                if req.get_if_exists:
                    return self.actors[existing].info(), None
                taken = f"Actor name {spec.name!r} already taken in namespace {spec.namespace!r}"
                return pb.ActorInfo(found=False, death_text=taken), None
            self.named[key] = spec.actor_id
            self.recovery.save_name(spec.namespace, spec.name, spec.actor_id)
        rec = ActorRecord(spec=spec, state="DEPENDENCIES_UNREADY" if req.deps_pending else "PENDING")
        self.actors[spec.actor_id] = rec
        self.recovery.save_actor(rec)
        return rec.info(), rec

    def owner_died(self, worker_id: str = "", node_id: str = "", address: str = "", recycled: bool = False) -> None:
        """The worker ``worker_id`` exited, or node ``node_id`` died: the actors such workers created die with
        them (Ray's fate sharing; detached actors excepted). A task worker the agent ``recycled`` (an idle one
        stopped gracefully, which Ray would not do to an owner) only takes the actors still waiting for their
        constructor's arguments: it was the one resolving them."""
        with self.lock:
            owned = [a for a in self.actors.values() if a.state != "DEAD" and not a.spec.detached and (
                (worker_id and a.spec.owner_worker_id == worker_id) or (node_id and a.spec.owner_node_id == node_id))
                and (not recycled or a.state == "DEPENDENCIES_UNREADY")]
        for a in owned:
            owner = a.spec.owner_address.rsplit(":", 1)[0]
            self.kill_actor(a.spec.actor_id, no_restart=True,
                            reason=_actor_death.owner_died(a.spec.owner_worker_id, owner, address))

    def _schedule_async(self, rec: ActorRecord) -> None:
        """Place ``rec`` once a node can take it (the scheduler's queue; no thread waits for it)."""
        self.actor_scheduler.enqueue(rec)

    def actor_dead(self, rec: ActorRecord) -> None:
        """``rec`` was just marked DEAD (head lock held): free its name, persist it, wake its waiters."""
        self._free_name(rec)
        self.recovery.save_actor(rec)
        self.lock.notify_all()

    def _kill_worker(self, address: str, actor_id: bytes, graceful: bool = False) -> None:
        try:
            rpc.NodeAgentStub(self.channels.get(address)).KillActorWorker(
                pb.KillActorRequest(actor_id=actor_id, graceful=graceful), metadata=self.channels.metadata, timeout=10)
        except grpc.RpcError:
            pass

    def _free_name(self, rec: ActorRecord) -> None:
        key = (rec.spec.namespace, rec.spec.name)
        if rec.spec.name and self.named.get(key) == rec.spec.actor_id:
            del self.named[key]
            self.recovery.save_name(rec.spec.namespace, rec.spec.name, None)

    def get_actor(self, req: pb.GetActorRequest) -> pb.ActorInfo:
        deadline = time.monotonic() + req.wait_alive_s
        with self.lock:
            self.recovery.wait_for_agents(
                lambda: (self.named.get((req.namespace, req.name)) if not req.actor_id else req.actor_id) in self.actors)
            actor_id = req.actor_id
            if not actor_id:
                found = self.named.get((req.namespace, req.name))
                if found is None:
                    return pb.ActorInfo(found=False)
                actor_id = found
            rec = self.actors.get(actor_id)
            if rec is None:
                return pb.ActorInfo(found=False)
            while True:
                settled = rec.state == "DEAD" or (rec.state == "ALIVE" and rec.incarnation >= req.after_incarnation)
                left = deadline - time.monotonic()
                if settled or left <= 0:
                    return rec.info()
                self.lock.wait(min(left, 1.0))

    def kill_actor(self, actor_id: bytes, no_restart: bool, reason: str = "", graceful: bool = False) -> None:
        """``reason`` is a ``_actor_death.REASON_*`` or a phrase (``"its placement group was removed"``);
        ``graceful`` lets the actor run its shutdown hooks first (a handle that went out of scope)."""
        with self.lock:
            rec = self.actors.get(actor_id)
            if rec is None or rec.state == "DEAD":
                return
            rec.no_restart = rec.no_restart or no_restart
            address = self._agent_address(rec.node_id)
            if no_restart:
                rec.state = "DEAD"
                rec.death_text = _actor_death.kill_reason(reason)
                self.actor_dead(rec)
                self.actor_scheduler.forget(actor_id)  # it was waiting for a node: it never starts now
            elif rec.state == "ALIVE":
                rec.kill_restarts = True
        if address:
            self._kill_worker(address, actor_id, graceful)

    def _agent_address(self, node_id: str) -> str:
        rec = self.nodes.get(node_id)
        return rec.info.address if rec is not None else ""

    def actor_exited(self, actor_id: bytes, incarnation: int, reason: str, intended: bool, worker_id: str = "") -> None:
        """The worker of ``actor_id`` (its ``incarnation``; ``worker_id`` if known) exited or its node died."""
        with self.lock:
            rec = self.actors.get(actor_id)
            if rec is None:
                return
            verdict = on_exit_report(rec.state, rec.incarnation, rec.worker_id, rec.start_in_flight, incarnation,
                                     worker_id)
            if verdict == "ignore":
                return
            if verdict == "defer":  # its StartActor reply applies it (actor_scheduler._started)
                rec.deferred_exit = ExitReport(reason, intended, worker_id)
                return
            restart = self.apply_exit(rec, reason, intended)
        if restart:
            self._schedule_async(rec)

    def apply_exit(self, rec: ActorRecord, reason: str, intended: bool) -> bool:
        """Restart ``rec`` or mark it DEAD after its worker exited (head lock held); True: queue its restart."""
        restartable_kill, rec.kill_restarts = rec.kill_restarts, False
        decision = actor_restart_decision(rec.spec.max_restarts, rec.num_restarts,
                                          (intended and not restartable_kill) or rec.no_restart)
        if decision == "dead":
            rec.state = "DEAD"
            rec.death_text = rec.death_text or (_actor_death.KILLED if restartable_kill else reason)
            self._free_name(rec)
            self.recovery.save_actor(rec)
            self.actor_scheduler.forget(rec.spec.actor_id)  # (it may have been waiting in the queue)
            self.lock.notify_all()
            return False
        rec.state, rec.num_restarts, rec.incarnation = "RESTARTING", rec.num_restarts + 1, rec.incarnation + 1
        rec.worker_address = ""
        self.recovery.save_actor(rec)
        self.lock.notify_all()
        log.info("restarting actor %s (%s), restart %d", rec.spec.class_name, reason, rec.num_restarts)
        return True


def _refuses_connections(address: str, timeout: float = 0.5) -> bool:
    """True when nothing listens at host:port any more (a dead process on a live machine)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError as e:
        return e.errno == errno.ECONNREFUSED
