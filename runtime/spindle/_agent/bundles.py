"""A node's placement group bundles: resources set aside for one group, leased only to its work.

The head reserves a bundle in two phases (PREPARE takes the resources out of the node's free
pool, COMMIT confirms; CANCEL undoes either) and RETURNs it when the group is removed. Tasks and
actors scheduled into a bundle are granted from the bundle's own pool, never from the node's free
pool, so the group keeps its resources whatever else runs on the node. A worker that crashes gives
its share back to the bundle; removing the group kills the workers still using it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spindle._agent import leasing
from spindle._proto import pb
from spindle._scheduling import add, fits, subtract

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

log = logging.getLogger("spindle.agent")

Key = tuple[bytes, int]


@dataclass
class Bundle:
    total: dict[str, float]
    available: dict[str, float]
    committed: bool = False
    spec: pb.PlacementGroupSpec | None = None


class Bundles:
    def __init__(self, agent: Agent):
        self.a = agent
        self.pools: dict[Key, Bundle] = {}
        self.lease_key: dict[bytes, Key] = {}  # lease id -> the bundle it was granted from
        self.worker_key: dict[str, Key] = {}  # worker id of an actor in a bundle -> its bundle

    # ---------------------------------------------------------------- two-phase reservation (head calls)
    def handle(self, req: pb.BundleRequest) -> pb.BundleReply:
        a = self.a
        keys = [(req.pg_id, i) for i in req.indexes]
        doomed: list[Any] = []
        with a.cond:
            if req.phase == "PREPARE":
                if a.draining:
                    return pb.BundleReply(ok=False, message="this node is draining (the autoscaler is removing it)")
                new = [(k, dict(r.amounts)) for k, r in zip(keys, req.resources, strict=True) if k not in self.pools]
                need: dict[str, float] = {}
                for _, r in new:
                    add(need, r)
                if not fits(need, a.available):
                    return pb.BundleReply(ok=False, message=f"this node has {a.available} free, the bundles need {need}")
                subtract(a.available, need)
                for k, r in new:
                    self.pools[k] = Bundle(r, dict(r), spec=req.spec if req.HasField("spec") else None)
            elif req.phase == "COMMIT":
                missing = [k[1] for k in keys if k not in self.pools]
                if missing:
                    return pb.BundleReply(ok=False, message=f"bundles {missing} were not prepared here")
                for k in keys:
                    self.pools[k].committed = True
            elif req.phase in ("CANCEL", "RETURN"):
                for k in keys:
                    b = self.pools.pop(k, None)
                    if b is not None:
                        add(a.available, b.total)
                doomed = self._users(set(keys))
                a.cond.notify_all()
            else:
                return pb.BundleReply(ok=False, message=f"unknown phase {req.phase!r}")
        assert a.pool is not None
        for w in doomed:
            w.intended_exit = True
            a.pool.kill(w)
        return pb.BundleReply(ok=True)

    def report(self) -> list[pb.BundleRequest]:
        """The committed bundles held here, one entry per group, for a (re-)registration with the head."""
        with self.a.cond:
            groups: dict[bytes, pb.BundleRequest] = {}
            for (pg, i), b in sorted(self.pools.items()):
                if not b.committed:
                    continue
                entry = groups.get(pg)
                if entry is None:
                    entry = groups[pg] = pb.BundleRequest(pg_id=pg, phase="COMMITTED")
                    if b.spec is not None:
                        entry.spec.CopyFrom(b.spec)
                entry.indexes.append(i)
                entry.resources.append(pb.Resources(amounts=b.total))
            return list(groups.values())

    def _users(self, keys: set[Key]) -> list[Any]:
        """Workers using these bundles (lock held): leased from them, or hosting an actor in them."""
        assert self.a.pool is not None
        lease_ids = {lid for lid, k in self.lease_key.items() if k in keys}
        workers = {wid for wid, k in self.worker_key.items() if k in keys}
        return [w for w in self.a.pool.by_id.values() if w.lease_id in lease_ids or w.worker_id in workers]

    # ---------------------------------------------------------------- pools
    def pick(self, strategy: pb.SchedulingStrategy, need: dict[str, float]) -> tuple[Key | None, bool]:
        """A bundle of the group on this node with room for ``need`` (lock held); second: any bundle of it here."""
        pg, index = strategy.placement_group_id, strategy.bundle_index
        mine = sorted(k for k, b in self.pools.items() if k[0] == pg and b.committed and (index < 0 or k[1] == index))
        for k in mine:
            if fits(need, self.pools[k].available):
                return k, True
        return None, bool(mine)

    def pool(self, key: Key | None) -> dict[str, float]:
        """The pool a grant came from: its bundle's, the node's, or a scratch one if the bundle is gone."""
        if key is None:
            return self.a.available
        b = self.pools.get(key)
        return b.available if b is not None else {}

    def for_lease(self, lease_id: bytes) -> dict[str, float]:
        return self.pool(self.lease_key.get(lease_id)) if lease_id in self.lease_key else self.a.available

    def for_worker(self, worker_id: str) -> dict[str, float]:
        return self.pool(self.worker_key.get(worker_id)) if worker_id in self.worker_key else self.a.available

    def request_lease(self, req: pb.LeaseRequest, need: dict[str, float]) -> pb.LeaseReply:
        """A lease from a bundle of this node, waiting up to the request's timeout for room in it."""
        a = self.a
        deadline = time.monotonic() + (req.timeout_s or 1.0)
        with a.cond:
            while True:
                key, here = self.pick(req.strategy, need)
                if not here:
                    return pb.LeaseReply(status="INFEASIBLE", message="no bundle of that placement group on this node")
                if key is not None:
                    subtract(self.pools[key].available, need)
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return pb.LeaseReply(status="BUSY")
                a.cond.wait(min(left, 0.1))
        return leasing.grant(a, need, deadline, key, req.runtime_env)

    def forget_lease(self, lease_id: bytes) -> None:
        self.lease_key.pop(lease_id, None)

    def forget_worker(self, worker_id: str) -> None:
        self.worker_key.pop(worker_id, None)
