"""The caller's side of placement groups: talk to the head, and get leases inside a group's bundles.

A task in a placement group is leased from the node agent holding its bundle (the head says
where, once the group is placed), never spilled elsewhere: the agent grants it from the bundle's
reserved resources. While the group is pending, its tasks wait; once it is removed they fail with
TaskPlacementGroupRemoved. This module also turns the scheduling options (Ray's
``PlacementGroupSchedulingStrategy``, the legacy ``placement_group=`` option, and a parent that
captures child tasks) into the wire strategy.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import grpc

from spindle._proto import pb
from spindle._scheduling import fits
from spindle.exceptions import TaskPlacementGroupRemoved

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker
    from spindle._core.submitter import TaskSubmitter
    from spindle._core.task_records import KeyQueue

_clients: dict[int, PgClient] = {}
_lock = threading.Lock()


def client(cw: CoreWorker) -> PgClient:
    with _lock:
        c = _clients.get(id(cw))
        if c is None or c.cw is not cw:
            c = _clients[id(cw)] = PgClient(cw)
        return c


class PgClient:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.placed: dict[bytes, pb.PlacementGroupInfo] = {}  # CREATED groups (refreshed on a miss)

    def _namespace(self) -> str:
        from spindle._core.context import RuntimeContext

        return RuntimeContext(self.cw).namespace

    def create(self, bundles: list[dict[str, float]], strategy: str, name: str, detached: bool) -> bytes:
        from spindle import _ids

        cw = self.cw
        spec = pb.PlacementGroupSpec(pg_id=_ids.new_id(), name=name, namespace=self._namespace(), strategy=strategy,
                                     bundles=[pb.Resources(amounts=b) for b in bundles], job_id=cw.job_id,
                                     detached=detached)
        info = cw.head().CreatePlacementGroup(spec, metadata=cw.md, timeout=60, wait_for_ready=True)
        if not info.found:
            raise ValueError(info.message)
        if info.message:
            import sys

            print(f"spindle: warning: placement group {name or spec.pg_id.hex()} {info.message}.", file=sys.stderr)
        return spec.pg_id

    def info(self, pg_id: bytes, wait_s: float) -> pb.PlacementGroupInfo:
        cw = self.cw
        info: pb.PlacementGroupInfo = cw.head().GetPlacementGroup(
            pb.GetPlacementGroupRequest(pg_id=pg_id, wait_ready_s=wait_s), metadata=cw.md, timeout=wait_s + 30,
            wait_for_ready=True)
        if info.state == "CREATED" and all(info.bundle_addresses):
            self.placed[pg_id] = info  # (a restarted head knows the group before its nodes are back: no address)
        else:
            self.placed.pop(pg_id, None)
        return info

    def by_name(self, name: str) -> pb.PlacementGroupInfo:
        cw = self.cw
        return cw.head().GetPlacementGroup(pb.GetPlacementGroupRequest(name=name, namespace=self._namespace()),
                                           metadata=cw.md, timeout=30, wait_for_ready=True)

    def list(self) -> list[pb.PlacementGroupInfo]:
        cw = self.cw
        return list(cw.head().ListPlacementGroups(pb.Empty(), metadata=cw.md, timeout=30, wait_for_ready=True).groups)

    def remove(self, pg_id: bytes) -> None:
        cw = self.cw
        self.placed.pop(pg_id, None)
        cw.head().RemovePlacementGroup(pb.GetPlacementGroupRequest(pg_id=pg_id), metadata=cw.md, timeout=60,
                                       wait_for_ready=True)

    def lease_address(self, strategy: pb.SchedulingStrategy, attempt: int) -> str:
        """The agent to ask for a lease in the group's bundle ("" while the group is not placed yet)."""
        pg_id = strategy.placement_group_id
        info = self.placed.get(pg_id) or self.info(pg_id, 2.0)
        if info.state == "REMOVED" or not info.found:
            raise TaskPlacementGroupRemoved(
                f"The placement group {pg_id.hex()} of this task was removed ({info.message or 'it does not exist'}); "
                "the task cannot run.")
        if info.state != "CREATED":
            return ""
        index = strategy.bundle_index
        addresses = [info.bundle_addresses[index]] if index >= 0 else sorted(set(info.bundle_addresses))
        addresses = [a for a in addresses if a]
        return addresses[attempt % len(addresses)] if addresses else ""


def acquire_lease(sub: TaskSubmitter, q: KeyQueue) -> None:
    """The submitter's lease loop for a queue of tasks in a placement group (see the module doc)."""
    from spindle._core import leases, task_results  # they import this module

    cw = sub.cw
    c = client(cw)
    attempt, delay = 0, 0.05
    while not sub.closed:
        with sub.lock:
            if not q.tasks:
                return
        try:
            address = c.lease_address(q.strategy, attempt)
        except TaskPlacementGroupRemoved as e:
            with sub.lock:
                doomed = list(q.tasks)
                q.tasks.clear()
            for t in doomed:
                task_results.finish_error_exc(sub, t, e)
            return
        except grpc.RpcError:
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        attempt += 1
        if not address:  # not placed (the head long-polled for us), or its node is not back yet: ask again
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        req = pb.LeaseRequest(resources=pb.Resources(amounts=q.resources), strategy=q.strategy, job_id=cw.job_id,
                              grant_or_reject=True, timeout_s=1.0)
        try:
            reply = cw.agent(address).RequestLease(req, metadata=cw.md, timeout=30)
        except grpc.RpcError:
            c.placed.pop(q.strategy.placement_group_id, None)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        if reply.status == "GRANTED":
            leases.granted(sub, q, reply, address)
            return
        if reply.status == "INFEASIBLE":  # the bundle is not there (any more): ask the head again
            c.placed.pop(q.strategy.placement_group_id, None)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def current_strategy(cw: CoreWorker) -> pb.SchedulingStrategy | None:
    """The placement group strategy the running task or actor was scheduled with, if any."""
    ex = cw.executor
    if ex is None:
        return None
    if ex.actor_spec is not None and ex.actor_spec.strategy.kind == "PLACEMENT_GROUP":
        return ex.actor_spec.strategy  # type: ignore[no-any-return]
    s = getattr(ex.ctx, "placement", None)
    return s if s is not None and s.kind == "PLACEMENT_GROUP" else None


def strategy_for(opts: dict[str, Any], request: dict[str, float]) -> pb.SchedulingStrategy | None:
    """The wire strategy for a placement group in ``opts`` (or captured from the parent); None if none applies.

    Checks what Ray checks at submission: the bundle index is in range and some bundle can hold ``request``.
    """
    from spindle.util.placement_group import PlacementGroup
    from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    s = opts.get("scheduling_strategy")
    pg: Any = None
    index, capture = -1, False
    if isinstance(s, PlacementGroupSchedulingStrategy):
        pg, index, capture = s.placement_group, s.placement_group_bundle_index, bool(s.placement_group_capture_child_tasks)
    elif s is None and opts.get("placement_group") not in (None, "default"):
        pg, index = opts["placement_group"], int(opts.get("placement_group_bundle_index", -1))
    elif s is None and opts.get("placement_group") is None and "placement_group" not in opts:
        from spindle._core.context import maybe_core

        cw = maybe_core()
        parent = current_strategy(cw) if cw is not None else None
        if parent is not None and parent.capture_child_tasks:
            return pb.SchedulingStrategy(kind="PLACEMENT_GROUP", placement_group_id=parent.placement_group_id,
                                         bundle_index=-1, capture_child_tasks=True)
        return None
    else:
        return None
    if pg is None:
        return None
    if not isinstance(pg, PlacementGroup):
        raise TypeError(f"placement_group must be a PlacementGroup, got {type(pg).__name__}")
    if pg.is_empty:
        return None
    bundles = pg.bundle_specs
    if index < -1 or index >= len(bundles):
        raise ValueError(f"placement_group_bundle_index {index} is out of range: the placement group has "
                         f"{len(bundles)} bundle(s) (use -1 for any bundle)")
    candidates = [bundles[index]] if index >= 0 else bundles
    if not any(fits(request, b) for b in candidates):
        where = f"bundle {index} ({bundles[index]})" if index >= 0 else f"any of its bundles {bundles}"
        raise ValueError(f"The request {request} does not fit in {where} of placement group {pg.id.hex()}: ask for "
                         "less (e.g. num_cpus=0 for a coordinator) or make the bundles bigger.")
    return pb.SchedulingStrategy(kind="PLACEMENT_GROUP", placement_group_id=pg.id.binary(), bundle_index=index,
                                 capture_child_tasks=capture)
