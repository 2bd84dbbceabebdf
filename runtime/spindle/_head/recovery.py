"""A head that comes back: reload its tables, adopt what the agents report, settle what nobody claims.

A head killed and started again on the same address (a crash, a replaced pod) must not orphan the
cluster it ran. Three sources rebuild its state:

- its tables (``tables.py``): with ``--storage`` the actors, named actors, jobs and KV come back
  as they were; in memory they start empty;
- the node agents, which re-register on their next heartbeat and report the actors they run
  (``RegisterNodeRequest.actors``): those are adopted as ALIVE where they are, names included, so
  even a head without storage finds live named actors again;
- the drivers, which re-attach their job (``RegisterJobRequest.job_id``) when their job stream
  breaks, so their non-detached actors still die with them.

What nobody claims within ``SPINDLE_HEAD_RECOVERY_GRACE_S`` (15 s) is settled: a reloaded actor no
agent reported is treated as lost with its node (restarted if ``max_restarts`` allows, else dead),
and a job no driver re-attached is finished (its non-detached actors are killed). Without storage
the KV, dead actors and unclaimed jobs are lost; see docs/CONVENTIONS.md.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spindle._head.tables import Tables
from spindle._metrics_keys import KV_PREFIX
from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._head.head_state import ActorRecord, HeadState

log = logging.getLogger("spindle.head")

GRACE_S = float(os.environ.get("SPINDLE_HEAD_RECOVERY_GRACE_S", "15"))
UNSETTLED = ("PENDING", "RESTARTING")


def encode_actor(rec: ActorRecord) -> bytes:
    return pb.ActorInfo(actor_id=rec.spec.actor_id, state=rec.state, worker_address=rec.worker_address,
                        node_id=rec.node_id, num_restarts=rec.num_restarts, death_cause=rec.death_cause,
                        death_text=rec.death_text, spec=rec.spec, found=True,
                        incarnation=rec.incarnation).SerializeToString()


def named_key(namespace: str, name: str) -> bytes:
    return json.dumps([namespace, name]).encode()


class Recovery:
    """Writes the head's tables through to ``tables`` and rebuilds them after a restart."""

    def __init__(self, state: HeadState, tables: Tables):
        self.s = state
        self.tables = tables
        self.lost_actors: dict[bytes, str] = {}  # reloaded, not yet reported: actor id -> state before the restart
        self.awaiting_jobs: dict[bytes, float] = {}  # job id -> when it is finished unless its driver re-attaches
        self.grace_s = GRACE_S
        self._started = time.monotonic()
        self.restarted = False  # evidence that a head ran before us: tables, rejoining agents or drivers
        self.pgs_unsettled = False  # reloaded placement groups whose nodes may not all come back

    # ---------------------------------------------------------------- write-through (called under the head's lock)
    # A head without storage has nothing to save: its own dicts are the only copy that could be lost
    # with it, so the write-through is skipped rather than encoding every actor change for nothing.
    def save_actor(self, rec: ActorRecord) -> None:
        if not self.tables.durable:
            return
        self.tables.put("actors", rec.spec.actor_id, encode_actor(rec))

    def save_name(self, namespace: str, name: str, actor_id: bytes | None) -> None:
        if not self.tables.durable:
            return
        if actor_id is None:
            self.tables.delete("named", named_key(namespace, name))
        else:
            self.tables.put("named", named_key(namespace, name), actor_id)

    def save_job(self, job_id: bytes) -> None:
        if not self.tables.durable:
            return
        job = self.s.jobs.get(job_id)
        if job is not None:
            self.tables.put("jobs", job_id, json.dumps(job).encode())
        self.tables.put("meta", b"job_counter", str(self.s._job_counter).encode())

    def save_pg(self, pg_id: bytes, info: pb.PlacementGroupInfo | None) -> None:
        """A placement group's row (None: removed, forgotten)."""
        if not self.tables.durable:
            return
        if info is None:
            self.tables.delete("placement_groups", pg_id)
        else:
            self.tables.put("placement_groups", pg_id, info.SerializeToString())

    def save_kv(self, key: str) -> None:
        if not self.tables.durable or key.startswith(KV_PREFIX):  # metrics snapshots are re-sent, not kept
            return
        value = self.s.kv.get(key)
        if value is None:
            self.tables.delete("kv", key.encode())
        else:
            self.tables.put("kv", key.encode(), value)

    # ---------------------------------------------------------------- start-up
    def load(self) -> None:
        """Fill the head's tables from storage; what was running waits for its agent or its driver."""
        from spindle._head.head_state import ActorRecord

        s = self.s
        deadline = time.monotonic() + self.grace_s
        meta = self.tables.load("meta")
        counter = meta.get(b"job_counter")
        # the session outlives a replaced head with storage (as Ray's with a persistent GCS): get_session_name(),
        # the jobs' and packages' directories stay the same
        if meta.get(b"session"):
            s.session = meta[b"session"].decode()
        elif self.tables.durable:
            self.tables.put("meta", b"session", s.session.encode())
        # a head without storage cannot know which job ids were given out: start far from any of them
        s._job_counter = int(counter) if counter else secrets.randbelow(1 << 30) + (1 << 20)
        for actor_id, blob in self.tables.load("actors").items():
            info = pb.ActorInfo.FromString(blob)
            rec = ActorRecord(spec=info.spec, state=info.state, worker_address=info.worker_address,
                              node_id=info.node_id, num_restarts=info.num_restarts, death_cause=info.death_cause,
                              death_text=info.death_text, incarnation=info.incarnation)
            if rec.state != "DEAD":
                self.lost_actors[actor_id] = rec.state
                rec.state, rec.worker_address = "RESTARTING", ""
            s.actors[actor_id] = rec
        for key, actor_id in self.tables.load("named").items():
            namespace, name = json.loads(key)
            s.named[(namespace, name)] = actor_id
        for job_id, blob in self.tables.load("jobs").items():
            job: dict[str, Any] = json.loads(blob)
            s.jobs[job_id] = job
            if job.get("alive"):
                self.awaiting_jobs[job_id] = deadline
        for key, value in self.tables.load("kv").items():
            s.kv[key.decode()] = value
        pgs = [pb.PlacementGroupInfo.FromString(b) for b in self.tables.load("placement_groups").values()]
        s.pgs.load(pgs)
        self.pgs_unsettled = bool(pgs)
        if s.actors or s.jobs or s.kv or pgs:
            self.restarted = True
            log.warning("recovered %d actor(s), %d job(s), %d KV key(s) from %s; waiting up to %.0f s for agents "
                        "and drivers to come back", len(s.actors), len(s.jobs), len(s.kv),
                        getattr(self.tables, "path", "storage"), self.grace_s)

    def start(self) -> None:
        threading.Thread(target=self._settle_loop, daemon=True, name="head-recovery").start()

    # ---------------------------------------------------------------- agents and drivers coming back
    def adopt(self, node_id: str, actors: list[pb.LiveActor], rejoining: bool) -> list[tuple[str, bytes]]:
        """Take the live actors a (re-)registering agent reports; returns stale workers to kill (address, actor).

        Called with the head's lock held, after the node is registered.
        """
        from spindle._head.head_state import ActorRecord

        s = self.s
        if rejoining or actors:
            self.restarted = True
        stale: list[tuple[str, bytes]] = []
        address = s.nodes[node_id].info.address
        for live in actors:
            aid = live.spec.actor_id
            rec = s.actors.get(aid)
            if rec is None:
                rec = s.actors[aid] = ActorRecord(spec=live.spec, incarnation=live.incarnation,
                                                  num_restarts=live.incarnation)
                self._claim_name(rec)
                job = live.spec.job_id
                if job and job not in s.jobs and not live.spec.detached:
                    s.jobs[job] = {"driver": live.spec.owner_address, "namespace": live.spec.namespace,
                                   "alive": True, "pid": 0, "start": time.time()}
                    self.awaiting_jobs[job] = time.monotonic() + self.grace_s
                    self.save_job(job)
            elif rec.state == "DEAD" or live.incarnation < rec.incarnation or (
                    rec.state == "ALIVE" and rec.node_id != node_id):
                stale.append((address, aid))  # an old incarnation the head has already replaced
                continue
            self.lost_actors.pop(aid, None)
            rec.state, rec.worker_address, rec.worker_id = "ALIVE", live.worker_address, live.worker_id
            rec.node_id, rec.incarnation = node_id, live.incarnation
            self.save_actor(rec)
            log.info("adopted actor %s (%s) on node %s", aid.hex()[:8], live.spec.class_name, node_id[:8])
        if actors:
            s.lock.notify_all()
        return stale

    def _claim_name(self, rec: ActorRecord) -> None:
        spec = rec.spec
        if not spec.name:
            return
        key = (spec.namespace, spec.name)
        holder = self.s.named.get(key)
        if holder is None or holder == spec.actor_id or self.s.actors[holder].state == "DEAD":
            self.s.named[key] = spec.actor_id
            self.save_name(spec.namespace, spec.name, spec.actor_id)

    def wait_for_agents(self, known: Callable[[], bool]) -> None:
        """Right after a restart, a lookup that finds nothing waits (up to the grace period) for the agents.

        Called with the head's lock held. A fresh head answers at once: only a head that has seen
        evidence of a predecessor waits, so a name is not reported missing just because its agent
        has not re-registered yet.
        """
        while self.restarted and not known():
            left = self._loaded_deadline() - time.monotonic()
            if left <= 0:
                return
            self.s.lock.wait(min(left, 0.5))

    def job_reattached(self, job_id: bytes) -> None:
        self.awaiting_jobs.pop(job_id, None)

    # ---------------------------------------------------------------- what nobody claimed
    def _settle_loop(self) -> None:
        while True:
            time.sleep(min(1.0, max(self.grace_s / 4, 0.05)))
            self.settle(time.monotonic())

    def settle(self, now: float) -> None:
        s = self.s
        with s.lock:
            expired_jobs = [j for j, t in self.awaiting_jobs.items() if t <= now]
            for j in expired_jobs:
                del self.awaiting_jobs[j]
            lost: list[tuple[ActorRecord, str]] = []
            if self.lost_actors and now >= self._loaded_deadline():
                lost = [(s.actors[a], before) for a, before in self.lost_actors.items() if a in s.actors]
                self.lost_actors.clear()
        if self.pgs_unsettled and now >= self._loaded_deadline():
            self.pgs_unsettled = False
            s.pgs.nodes_missing()  # bundles on nodes that never re-registered are placed again
        for rec, before in lost:
            if before == "ALIVE":
                s.actor_exited(rec.spec.actor_id, rec.incarnation,
                               "its node did not report it to the restarted head", intended=False)
            else:  # it was being placed when the head went away: place it again
                s._schedule_async(rec)
        for j in expired_jobs:
            log.warning("job %s did not re-attach to the restarted head: finishing it", j.hex())
            s.job_finished(j)

    def _loaded_deadline(self) -> float:
        return self._started + self.grace_s
