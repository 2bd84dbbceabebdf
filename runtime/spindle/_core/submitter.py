"""Submitting tasks: lease workers from node agents, push tasks down one stream per lease.

Tasks with the same resource shape and strategy share a queue. For each queue the submitter
holds a few *leases* (a worker granted by an agent) and pushes batches of tasks to the leased
worker over one bidirectional stream; results come back inline on the same stream. Short tasks
are pipelined (several in flight per worker, the depth set from their measured run time) so
the cost per task is a slice of a message, not an RPC. Idle leases go back after a short grace.
A broken stream means the worker died: its tasks are retried (``max_retries``) or fail with
WorkerCrashedError.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cloudpickle
import grpc

from spindle import _ids
from spindle._core import args as _args
from spindle._proto import pb, rpc
from spindle._rpc.channels import batched
from spindle._scheduling import task_should_retry
from spindle.exceptions import TaskCancelledError, WorkerCrashedError

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

log = logging.getLogger("spindle")

LEASE_IDLE_S = 0.2
MAX_LEASES_PER_KEY = 256
TARGET_BATCH_S = 0.005


@dataclass
class Task:
    spec: pb.TaskSpec
    fn_blob: bytes
    prepared: _args.PreparedArgs
    retries_left: int
    retry_exceptions: Any
    key: tuple[Any, ...]
    cancelled: bool = False
    lease: Lease | None = None


@dataclass
class Lease:
    lease_id: bytes
    worker_address: str
    agent_address: str
    key: tuple[Any, ...]
    out: queue.SimpleQueue[pb.TaskBatch | None] = field(default_factory=queue.SimpleQueue)
    inflight: dict[bytes, Task] = field(default_factory=dict)
    sent_functions: set[bytes] = field(default_factory=set)
    idle_since: float = 0.0
    dead: bool = False


@dataclass
class KeyQueue:
    key: tuple[Any, ...]
    resources: dict[str, float]
    strategy: pb.SchedulingStrategy
    tasks: collections.deque[Task] = field(default_factory=collections.deque)
    leases: list[Lease] = field(default_factory=list)
    requesting: int = 0
    ewma: float | None = None
    warned: bool = False


class TaskSubmitter:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.lock = threading.RLock()
        self.queues: dict[tuple[Any, ...], KeyQueue] = {}
        self.by_return: dict[bytes, Task] = {}
        self.children: dict[bytes, list[bytes]] = {}  # running task id -> first return id of each child
        self.closed = False
        threading.Thread(target=self._idle_loop, daemon=True, name="spindle-leases").start()

    # ---------------------------------------------------------------- submission
    def submit(self, fn_id: bytes, fn_blob: bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               opts: dict[str, Any]) -> list[Any]:
        cw = self.cw
        task_id = _ids.new_id()
        num_returns = int(opts.get("num_returns", 1))
        prepared = _args.prepare(cw, args, kwargs, f"remote function {name!r}")
        return_ids = [_ids.return_id(task_id, i) for i in range(num_returns)]
        spec = pb.TaskSpec(task_id=task_id, function_id=fn_id, name=name, num_returns=num_returns,
                           return_ids=return_ids, job_id=cw.job_id, owner_address=cw.address,
                           env_vars=opts.get("env_vars") or {})
        resources = _resources(opts)
        strategy = _strategy(opts.get("scheduling_strategy"))
        key = (tuple(sorted(resources.items())), strategy.kind, strategy.node_id, strategy.soft)
        retry_ex = opts.get("retry_exceptions", False)
        if isinstance(retry_ex, list):
            retry_ex = tuple(retry_ex)
        task = Task(spec, fn_blob, prepared, int(opts.get("max_retries", 3)), retry_ex, key)
        refs = [cw.new_ref(rid) for rid in return_ids]
        parent = cw.executor.ctx.task_id if cw.executor is not None else b""
        with self.lock:
            if parent and return_ids:
                self.children.setdefault(parent, []).append(return_ids[0])
            q = self.queues.get(key)
            if q is None:
                q = self.queues[key] = KeyQueue(key, resources, strategy)
            for rid in return_ids:
                self.by_return[rid] = task

        def ready(err: pb.ObjectValue | None) -> None:
            if err is not None:
                self._finish_error(task, err)
                return
            task.spec.args.extend(prepared.args)
            with self.lock:
                if task.cancelled:
                    return
                q.tasks.append(task)
                self._pump(q)

        _args.resolve(cw, prepared, ready)
        return refs

    # ---------------------------------------------------------------- dispatch
    def _depth(self, q: KeyQueue) -> int:
        if q.ewma is None:
            return 1
        return max(1, min(64, int(TARGET_BATCH_S / max(q.ewma, 1e-5))))

    def _pump(self, q: KeyQueue) -> None:
        """Send queued tasks to leases with room; ask for more leases if tasks remain (lock held)."""
        depth = self._depth(q)
        for lease in q.leases:
            if not q.tasks:
                break
            room = depth - len(lease.inflight)
            if room <= 0:
                continue
            batch = pb.TaskBatch()
            while room > 0 and q.tasks:
                t = q.tasks.popleft()
                room -= 1
                spec = t.spec
                if spec.function_id not in lease.sent_functions:
                    lease.sent_functions.add(spec.function_id)
                    spec = pb.TaskSpec()
                    spec.CopyFrom(t.spec)
                    spec.function_blob = t.fn_blob
                t.lease = lease
                lease.inflight[t.spec.task_id] = t
                batch.tasks.append(spec)
            lease.out.put(batch)
        if q.tasks:
            want = min(MAX_LEASES_PER_KEY, len(q.leases) + (len(q.tasks) + depth - 1) // depth)
            while len(q.leases) + q.requesting < want and q.requesting < 8:
                q.requesting += 1
                threading.Thread(target=self._acquire_lease, args=(q,), daemon=True, name="spindle-lease").start()

    def _acquire_lease(self, q: KeyQueue) -> None:
        cw = self.cw
        address, spilled, delay = cw.agent_address, False, 0.05
        try:
            while not self.closed:
                with self.lock:
                    if not q.tasks:
                        return
                req = pb.LeaseRequest(resources=pb.Resources(amounts=q.resources), strategy=q.strategy,
                                      job_id=cw.job_id, grant_or_reject=spilled, timeout_s=1.0)
                try:
                    reply = cw.agent(address).RequestLease(req, metadata=cw.md, timeout=30)
                except grpc.RpcError as e:
                    log.debug("lease request to %s failed: %s", address, e.code())
                    if address == cw.agent_address:
                        cw.agent_unreachable(address)
                    address, spilled = cw.agent_address, False
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if reply.status == "GRANTED":
                    self._granted(q, reply, address)
                    return
                if reply.status == "SPILLBACK":
                    address, spilled = reply.spill_address, True
                    continue
                if reply.status == "INFEASIBLE":
                    if not q.warned:
                        q.warned = True
                        print(f"spindle: warning: a task needs {q.resources} but {reply.message}; it will wait "
                              "until a node that can run it joins the cluster.", file=sys.stderr)
                    time.sleep(1.0)
                address, spilled = cw.agent_address, False
        finally:
            with self.lock:
                q.requesting -= 1

    def _granted(self, q: KeyQueue, reply: pb.LeaseReply, agent_address: str) -> None:
        lease = Lease(reply.lease_id, reply.worker_address, agent_address, q.key)
        stub = rpc.CoreWorkerStub(self.cw.channels.get(reply.worker_address))
        call = stub.PushTasks(batched(lease.out),
                              metadata=(*self.cw.md, ("x-spindle-lease", reply.lease_id.hex())))
        threading.Thread(target=self._read, args=(q, lease, call), daemon=True, name="spindle-results").start()
        with self.lock:
            lease.idle_since = time.monotonic()
            q.leases.append(lease)
            self._pump(q)

    # ---------------------------------------------------------------- results
    def _read(self, q: KeyQueue, lease: Lease, call: Any) -> None:
        try:
            for batch in call:
                if batch.logs:
                    self.cw.emit_log(batch.logs)
                for r in batch.results:
                    self._on_result(q, lease, r)
        except grpc.RpcError as e:
            if not self.closed:
                self._lease_failed(q, lease, f"{e.code().name}: {e.details()}")
            return
        if not lease.dead and not self.closed:
            self._lease_failed(q, lease, "the worker closed the stream")

    def _on_result(self, q: KeyQueue, lease: Lease, r: pb.TaskResult) -> None:
        with self.lock:
            task = lease.inflight.pop(r.task_id, None)
            if task is None:
                return
            if not r.failed:
                q.ewma = r.exec_seconds if q.ewma is None else 0.8 * q.ewma + 0.2 * r.exec_seconds
            if not lease.inflight:
                lease.idle_since = time.monotonic()
            retry = False
            if r.failed and not r.cancelled and not task.cancelled:
                err = cloudpickle.loads(r.error) if r.app_error and task.retry_exceptions else None
                if task_should_retry(task.retries_left, r.app_error, task.retry_exceptions, err):
                    task.retries_left -= 1 if task.retries_left > 0 else 0
                    retry = True
            if retry:
                q.tasks.append(task)
            self._pump(q)
        if retry:
            return
        if r.cancelled or task.cancelled:
            self._finish_error_exc(task, TaskCancelledError(task.spec.task_id.hex()))
        elif r.failed:
            self._finish_error(task, pb.ObjectValue(inline=r.error, is_error=True))
        else:
            self._finish(task, list(r.returns))

    def _lease_failed(self, q: KeyQueue, lease: Lease, why: str) -> None:
        with self.lock:
            if lease.dead:
                return
            lease.dead = True
            if lease in q.leases:
                q.leases.remove(lease)
            orphans = list(lease.inflight.values())
            lease.inflight.clear()
            failed: list[Task] = []
            for t in orphans:
                if not t.cancelled and t.retries_left != 0:
                    t.retries_left -= 1 if t.retries_left > 0 else 0
                    q.tasks.appendleft(t)
                else:
                    failed.append(t)
            self._pump(q)
        lease.out.put(None)
        self.cw.io_pool.submit(self._return_lease, lease, True)
        for t in failed:
            if t.cancelled:
                self._finish_error_exc(t, TaskCancelledError(t.spec.task_id.hex()))
            else:
                self._finish_error_exc(t, WorkerCrashedError(
                    f"The worker running task {t.spec.name!r} died ({why}); no retries left "
                    f"(max_retries)."))

    def _finish(self, task: Task, returns: list[pb.ObjectValue]) -> None:
        self._forget(task)
        for ov in returns:
            self.cw.store.put(ov.object_id, ov)

    def _finish_error(self, task: Task, err: pb.ObjectValue) -> None:
        self._forget(task)
        for rid in task.spec.return_ids:
            ov = pb.ObjectValue()
            ov.CopyFrom(err)
            ov.object_id = rid
            self.cw.store.put(rid, ov)

    def _finish_error_exc(self, task: Task, exc: BaseException) -> None:
        self._finish_error(task, self.cw.error_value(b"", exc))

    def _forget(self, task: Task) -> None:
        with self.lock:
            for rid in task.spec.return_ids:
                self.by_return.pop(rid, None)
        _args.release(self.cw, task.prepared)

    # ---------------------------------------------------------------- cancel and leases
    def cancel(self, oid: bytes, force: bool) -> bool:
        with self.lock:
            task = self.by_return.get(oid)
            if task is None:
                return False
            task.cancelled = True
            q = self.queues[task.key]
            lease = task.lease
            if task in q.tasks:
                q.tasks.remove(task)
                lease = None
            elif lease is None:
                pass  # still waiting for dependencies
            else:
                lease.out.put(pb.TaskBatch(cancel_task_ids=[task.spec.task_id], force_cancel=force))
                return True
        self._finish_error_exc(task, TaskCancelledError(task.spec.task_id.hex()))
        return True

    def cancel_children(self, parent_task_id: bytes, force: bool) -> None:
        """Cancel every task submitted by ``parent_task_id`` (``cancel(recursive=True)``)."""
        with self.lock:
            kids = self.children.pop(parent_task_id, [])
        for oid in kids:
            self.cancel(oid, force)

    def task_finished(self, task_id: bytes) -> None:
        with self.lock:
            self.children.pop(task_id, None)

    def _return_lease(self, lease: Lease, failed: bool) -> None:
        try:
            self.cw.agent(lease.agent_address).ReturnLease(
                pb.ReturnLeaseRequest(lease_id=lease.lease_id, worker_failed=failed), metadata=self.cw.md, timeout=10)
        except grpc.RpcError:
            pass

    def _idle_loop(self) -> None:
        while not self.closed:
            # poll fast only while leases are held, so an idle process stays idle
            time.sleep(LEASE_IDLE_S / 4 if any(q.leases for q in list(self.queues.values())) else 0.5)
            now = time.monotonic()
            done: list[Lease] = []
            with self.lock:
                for q in self.queues.values():
                    if q.tasks:
                        continue
                    for lease in list(q.leases):
                        if not lease.inflight and now - lease.idle_since > LEASE_IDLE_S:
                            q.leases.remove(lease)
                            lease.dead = True
                            done.append(lease)
            for lease in done:
                lease.out.put(None)
                self._return_lease(lease, False)

    def debug_state(self) -> str:
        with self.lock:
            return "; ".join(
                f"key={q.key[0]} queued={len(q.tasks)} requesting={q.requesting} ewma={q.ewma} leases="
                + ",".join(f"{lease.worker_address}:{len(lease.inflight)}:{'dead' if lease.dead else 'ok'}"
                           for lease in q.leases)
                for q in self.queues.values())

    def shutdown(self) -> None:
        self.closed = True
        with self.lock:
            leases = [lease for q in self.queues.values() for lease in q.leases]
        for lease in leases:
            lease.dead = True
            lease.out.put(None)
            self._return_lease(lease, False)


def _resources(opts: dict[str, Any]) -> dict[str, float]:
    res: dict[str, float] = {}
    cpus = opts.get("num_cpus", 1)
    if cpus:
        res["CPU"] = float(cpus)
    if opts.get("num_gpus"):
        res["GPU"] = float(opts["num_gpus"])
    if opts.get("memory"):
        res["memory"] = float(opts["memory"])
    for k, v in (opts.get("resources") or {}).items():
        if k in ("CPU", "GPU"):
            raise ValueError(f"Use num_cpus/num_gpus instead of resources={{{k!r}: ...}}")
        res[k] = float(v)
    return res


def _strategy(s: Any) -> pb.SchedulingStrategy:
    if s is None or s == "DEFAULT":
        return pb.SchedulingStrategy(kind="DEFAULT")
    if s == "SPREAD":
        return pb.SchedulingStrategy(kind="SPREAD")
    node_id = getattr(s, "node_id", None)
    if node_id is not None:
        return pb.SchedulingStrategy(kind="NODE_AFFINITY", node_id=node_id, soft=bool(getattr(s, "soft", False)))
    raise ValueError(f"Unknown scheduling_strategy {s!r}: use 'DEFAULT', 'SPREAD' or NodeAffinitySchedulingStrategy")
