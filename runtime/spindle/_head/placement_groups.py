"""The head's placement group table: place bundles, reserve them atomically across nodes, release them.

A group is placed as a whole or not at all. The head picks a node per bundle with the pure
``spindle._placement`` policy, then reserves in two phases: PREPARE on every chosen node (each
agent sets the bundle's resources aside from its free pool, or refuses), and only when all
agreed, COMMIT; a refusal or an unreachable node rolls back (CANCEL) what was prepared and the
group is tried again later. A group no node set could ever hold stays PENDING with a warning
(and is reported as gang demand to the autoscaler) until nodes join. Groups are removed by
``remove_placement_group`` or when their owner's job ends (unless detached); bundles that died
with a node are placed again (RESCHEDULING).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from spindle._head import wake_loop
from spindle._placement import NodeRoom, gang_demand, place_bundles, validate
from spindle._proto import pb, rpc
from spindle._scheduling import add, subtract

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

log = logging.getLogger("spindle.head")


@dataclass
class PgRecord:
    spec: pb.PlacementGroupSpec
    state: str = "PENDING"  # PENDING, CREATED, RESCHEDULING, REMOVED
    nodes: list[str] = field(default_factory=list)  # node id per bundle ("" = not placed)
    message: str = ""
    warned: bool = False
    created: float = field(default_factory=time.time)
    hold_until: float = 0.0  # adopted after a head restart: not placed again before this (monotonic)

    def bundles(self) -> list[dict[str, float]]:
        return [dict(b.amounts) for b in self.spec.bundles]


class PlacementGroups:
    def __init__(self, head: HeadState):
        self.head = head
        self.groups: dict[bytes, PgRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self._wake = threading.Event()
        threading.Thread(target=self._loop, daemon=True, name="pg-scheduler").start()

    # ---------------------------------------------------------------- API (head RPCs)
    def create(self, spec: pb.PlacementGroupSpec) -> pb.PlacementGroupInfo:
        bundles = [dict(b.amounts) for b in spec.bundles]
        try:
            validate(bundles, spec.strategy)
        except ValueError as e:
            return pb.PlacementGroupInfo(found=False, message=str(e))
        h = self.head
        with h.lock:
            if spec.name:
                key = (spec.namespace, spec.name)
                other = self.named.get(key)
                if other is not None and self.groups[other].state != "REMOVED":
                    return pb.PlacementGroupInfo(found=False, message=(
                        f"Failed to create placement group: the name {spec.name!r} is already taken in namespace "
                        f"{spec.namespace!r} (remove that group first, or pick another name)."))
                self.named[key] = spec.pg_id
            rec = PgRecord(spec, nodes=[""] * len(bundles))
            rec.message = self._infeasible_reason(rec)
            self.groups[spec.pg_id] = rec
            info = self._info(rec)
            self._save(rec)
        if rec.message:
            log.warning("placement group %s cannot be placed yet: %s", _label(rec), rec.message)
            rec.warned = True
        self.wake()
        return info

    def get(self, req: pb.GetPlacementGroupRequest) -> pb.PlacementGroupInfo:
        h = self.head
        deadline = time.monotonic() + req.wait_ready_s
        with h.lock:
            # right after a head restart, a group not known yet may be reported by an agent still re-registering
            h.recovery.wait_for_agents(
                lambda: (req.pg_id or self.named.get((req.namespace, req.name), b"")) in self.groups)
            pg_id = req.pg_id or self.named.get((req.namespace, req.name), b"")
            rec = self.groups.get(pg_id)
            if rec is None:
                return pb.PlacementGroupInfo(found=False)
            while rec.state not in ("CREATED", "REMOVED"):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                h.lock.wait(min(left, 1.0))
            return self._info(rec)

    def table(self) -> pb.PlacementGroupList:
        with self.head.lock:
            return pb.PlacementGroupList(groups=[self._info(r) for r in self.groups.values()])

    def remove(self, pg_id: bytes, why: str = "removed by remove_placement_group()") -> None:
        h = self.head
        with h.lock:
            rec = self.groups.get(pg_id)
            if rec is None or rec.state == "REMOVED":
                return
            rec.state, rec.message = "REMOVED", why
            placed = [(i, n) for i, n in enumerate(rec.nodes) if n]
            rec.nodes = [""] * len(rec.nodes)
            key = (rec.spec.namespace, rec.spec.name)
            if rec.spec.name and self.named.get(key) == pg_id:
                del self.named[key]
            actors = [a.spec.actor_id for a in h.actors.values()
                      if a.spec.strategy.placement_group_id == pg_id and a.state != "DEAD"]
            self._save(rec)
            h.lock.notify_all()
        log.info("placement group %s %s", _label(rec), why)
        for actor_id in actors:
            h.kill_actor(actor_id, no_restart=True, reason=f"its placement group was {why}")
        self._release(rec, placed, "RETURN")

    def job_finished(self, job_id: bytes) -> None:
        with self.head.lock:
            owned = [pid for pid, r in self.groups.items()
                     if r.spec.job_id == job_id and not r.spec.detached and r.state != "REMOVED"]
        for pid in owned:
            self.remove(pid, "removed because its owner (the job's driver) exited")

    def node_died(self, node_id: str) -> None:
        with self.head.lock:
            for rec in self.groups.values():
                if rec.state in ("CREATED", "RESCHEDULING") and node_id in rec.nodes:
                    rec.nodes = ["" if n == node_id else n for n in rec.nodes]
                    rec.state = "RESCHEDULING"
                    rec.message = f"its node {node_id[:8]} died: placing the lost bundles again"
                    self._save(rec)
                    log.warning("placement group %s: %s", _label(rec), rec.message)
        self.wake()

    def nodes_missing(self) -> None:
        """After a head restart's grace period: bundles on nodes that never re-registered are lost with them."""
        with self.head.lock:
            gone = {n for r in self.groups.values() for n in r.nodes
                    if n and (n not in self.head.nodes or not self.head.nodes[n].view.alive)}
        for nid in gone:
            self.node_died(nid)

    def load(self, infos: list[pb.PlacementGroupInfo]) -> None:
        """Groups a restarted head reloads from its storage; their agents still hold the bundles."""
        with self.head.lock:
            for info in infos:
                rec = PgRecord(info.spec, state=info.state, nodes=list(info.bundle_nodes), message=info.message)
                self.groups[info.spec.pg_id] = rec
                if info.spec.name:
                    self.named[(info.spec.namespace, info.spec.name)] = info.spec.pg_id
        self.wake()

    def adopt(self, node_id: str, reported: list[pb.BundleRequest]) -> list[tuple[str, pb.BundleRequest]]:
        """Bundles a (re-)registering agent holds: take them into their groups (a restarted head without
        storage rebuilds its groups this way); returns (address, request) of stale ones to give back.

        Called with the head's lock held, after the node is registered.
        """
        h = self.head
        stale: list[tuple[str, pb.BundleRequest]] = []
        address = h.nodes[node_id].info.address
        hold = time.monotonic() + h.recovery.grace_s  # other agents may still report the group's other bundles
        for b in reported:
            rec = self.groups.get(b.pg_id)
            if rec is None and b.HasField("spec") and len(b.spec.bundles) > max(b.indexes, default=-1):
                rec = self.groups[b.pg_id] = PgRecord(b.spec, state="RESCHEDULING", nodes=[""] * len(b.spec.bundles))
                rec.hold_until = hold
                if b.spec.name:
                    self.named.setdefault((b.spec.namespace, b.spec.name), b.pg_id)
                job = b.spec.job_id
                if job and job not in h.jobs and not b.spec.detached:  # its driver re-attaches, else it ends
                    h.jobs[job] = {"driver": "", "namespace": b.spec.namespace, "alive": True, "pid": 0,
                                   "start": time.time()}
                    h.recovery.awaiting_jobs[job] = hold
                    h.recovery.save_job(job)
                h.recovery.restarted = True
            if rec is None or rec.state == "REMOVED":
                stale.append((address, pb.BundleRequest(pg_id=b.pg_id, indexes=b.indexes, phase="RETURN")))
                continue
            theirs = [i for i in b.indexes if rec.nodes[i] not in ("", node_id)]
            if theirs:  # placed again elsewhere meanwhile: this copy is stale
                stale.append((address, pb.BundleRequest(pg_id=b.pg_id, indexes=theirs, phase="RETURN")))
            for i in b.indexes:
                if i not in theirs:
                    rec.nodes[i] = node_id
            if all(rec.nodes) and rec.state != "CREATED":
                rec.state, rec.message = "CREATED", ""
                log.info("placement group %s adopted from its nodes' reports", _label(rec))
            self._save(rec)
        if reported:
            h.lock.notify_all()
        return stale

    def give_back(self, stale: list[tuple[str, pb.BundleRequest]]) -> None:
        for address, req in stale:
            try:
                rpc.NodeAgentStub(self.head.channels.get(address)).Bundles(
                    req, metadata=self.head.channels.metadata, timeout=10)
            except grpc.RpcError as e:
                log.warning("giving back stale bundles on %s failed: %s", address, e.code())

    def _save(self, rec: PgRecord) -> None:
        """Write the group through to the head's storage (lock held); removed groups are forgotten."""
        info = None if rec.state == "REMOVED" else pb.PlacementGroupInfo(
            spec=rec.spec, state=rec.state, bundle_nodes=rec.nodes, found=True, message=rec.message)
        self.head.recovery.save_pg(rec.spec.pg_id, info)

    def wake(self) -> None:
        self._wake.set()

    # ---------------------------------------------------------------- for the autoscaler and actors
    def pending_demand(self) -> list[dict[str, Any]]:
        """Gang demand of the groups waiting to be placed, as CONTRACTS.md section C's ``pending_demand`` rows."""
        out: list[dict[str, Any]] = []
        with self.head.lock:
            for rec in self.groups.values():
                if rec.state not in ("PENDING", "RESCHEDULING"):
                    continue
                lost = [b for b, n in zip(rec.bundles(), rec.nodes, strict=True) if not n]
                infeasible = bool(self._infeasible_reason(rec))
                for shape, count in gang_demand(lost, rec.spec.strategy):
                    out.append({"shape": shape, "count": count, "kind": "placement_group", "infeasible": infeasible})
        return out

    def target(self, strategy: pb.SchedulingStrategy, attempt: int) -> tuple[str, str, str]:
        """Where an actor in a group goes: ("place", node id, address), ("wait", "", why) or ("dead", "", why)."""
        with self.head.lock:
            rec = self.groups.get(strategy.placement_group_id)
            if rec is None:
                return "dead", "", "its placement group does not exist"
            if rec.state == "REMOVED":
                return "dead", "", f"its placement group was {rec.message or 'removed'}"
            index = strategy.bundle_index
            if index >= len(rec.nodes):
                return "dead", "", f"bundle index {index} is out of range (the group has {len(rec.nodes)} bundles)"
            nodes = [rec.nodes[index]] if index >= 0 else sorted({n for n in rec.nodes if n})
            nodes = [n for n in nodes if n]
            if rec.state != "CREATED" or not nodes:
                return "wait", "", "its placement group is not placed yet"
            node_id = nodes[attempt % len(nodes)]
            node = self.head.nodes.get(node_id)
            if node is None or not node.view.alive:
                return "wait", "", "the node of its bundle is gone"
            return "place", node_id, node.info.address

    # ---------------------------------------------------------------- scheduling
    def _loop(self) -> None:
        wake_loop.run(self._wake, self._schedule_pending, what="placement group scheduling", min_s=0.05, max_s=1.0)

    def _schedule_pending(self) -> bool:
        with self.head.lock:
            now = time.monotonic()
            waiting = sorted((r for r in self.groups.values()
                              if r.state in ("PENDING", "RESCHEDULING") and r.hold_until <= now),
                             key=lambda r: r.created)
        progress = False
        for rec in waiting:
            progress = self._try_place(rec) or progress
        return progress

    def _try_place(self, rec: PgRecord) -> bool:
        h = self.head
        with h.lock:
            if rec.state not in ("PENDING", "RESCHEDULING"):
                return False
            lost = [i for i, n in enumerate(rec.nodes) if not n]
            kept = {n for n in rec.nodes if n}
            bundles = rec.bundles()
            alive = [r for r in h.nodes.values() if r.view.alive and r.view.schedulable]  # not draining
            rooms = [NodeRoom(r.info.node_id, r.view.available) for r in alive
                     if not (rec.spec.strategy == "STRICT_SPREAD" and r.info.node_id in kept)]
            if rec.spec.strategy == "STRICT_PACK" and kept:
                rooms = [room for room in rooms if room.node_id in kept]
            choice = place_bundles([bundles[i] for i in lost], rec.spec.strategy, rooms)
            reason = self._infeasible_reason(rec)
            if choice is None:
                rec.message = reason or "waiting for resources held by other work"
            else:
                for i, nid in zip(lost, choice, strict=True):  # so other groups see the room as taken
                    subtract(h.nodes[nid].view.available, bundles[i])
            addresses = {r.info.node_id: r.info.address for r in alive}
        if choice is None:
            if reason and not rec.warned:
                rec.warned = True
                log.warning("placement group %s cannot be placed yet: %s", _label(rec), reason)
            return False
        placed = list(zip(lost, choice, strict=True))
        prepared: list[tuple[int, str]] = []
        for nid in dict.fromkeys(choice):
            mine = [(i, n) for i, n in placed if n == nid]
            if not self._call(addresses[nid], rec, mine, "PREPARE"):
                self._release(rec, prepared, "CANCEL")
                return False
            prepared.extend(mine)
        for nid in dict.fromkeys(choice):
            if not self._call(addresses[nid], rec, [(i, n) for i, n in placed if n == nid], "COMMIT"):
                self._release(rec, prepared, "CANCEL")
                return False
        with h.lock:
            if rec.state == "REMOVED":  # removed while we reserved
                removed = True
            else:
                removed = False
                for i, nid in placed:
                    rec.nodes[i] = nid
                rec.state, rec.message = "CREATED", ""
                self._save(rec)
                h.lock.notify_all()
        if removed:
            self._release(rec, placed, "RETURN")
            return False
        log.info("placement group %s placed: %s", _label(rec), [n[:8] for n in rec.nodes])
        return True

    def _call(self, address: str, rec: PgRecord, bundles: list[tuple[int, str]], phase: str) -> bool:
        req = pb.BundleRequest(pg_id=rec.spec.pg_id, indexes=[i for i, _ in bundles], phase=phase,
                               resources=[rec.spec.bundles[i] for i, _ in bundles], spec=rec.spec)
        try:
            reply = rpc.NodeAgentStub(self.head.channels.get(address)).Bundles(
                req, metadata=self.head.channels.metadata, timeout=10)
        except grpc.RpcError as e:
            log.warning("%s of placement group %s bundles on %s failed: %s", phase, _label(rec), address, e.code())
            return False
        if not reply.ok:
            log.debug("%s of placement group %s refused by %s: %s", phase, _label(rec), address, reply.message)
        return bool(reply.ok)

    def _release(self, rec: PgRecord, bundles: list[tuple[int, str]], phase: str) -> None:
        h = self.head
        with h.lock:
            addresses = {nid: r.info.address for nid, r in h.nodes.items() if r.view.alive}
        for nid in dict.fromkeys(n for _, n in bundles):
            mine = [(i, n) for i, n in bundles if n == nid]
            if nid in addresses and self._call(addresses[nid], rec, mine, phase):
                with h.lock:  # the room is free again now, not only from the node's next heartbeat
                    node = h.nodes.get(nid)
                    if node is not None:
                        for i, _ in mine:
                            add(node.view.available, dict(rec.spec.bundles[i].amounts))
        self.wake()  # a waiting group may fit now

    def _infeasible_reason(self, rec: PgRecord) -> str:
        """Why no set of live nodes could ever hold the group, judged on total resources ("" if one could)."""
        rooms = [NodeRoom(r.info.node_id, r.view.total) for r in self.head.nodes.values() if r.view.alive]
        if place_bundles(rec.bundles(), rec.spec.strategy, rooms) is not None:
            return ""
        return (f"no set of nodes in the cluster can hold its bundles {rec.bundles()} with strategy "
                f"{rec.spec.strategy}; it stays pending until nodes that can join")

    def _info(self, rec: PgRecord) -> pb.PlacementGroupInfo:
        addresses = []
        for nid in rec.nodes:
            node = self.head.nodes.get(nid) if nid else None
            addresses.append(node.info.address if node is not None else "")
        return pb.PlacementGroupInfo(spec=rec.spec, state=rec.state, bundle_nodes=rec.nodes,
                                     bundle_addresses=addresses, found=True, message=rec.message)


def _label(rec: PgRecord) -> str:
    return f"{rec.spec.name or rec.spec.pg_id.hex()[:12]} ({rec.spec.strategy})"
