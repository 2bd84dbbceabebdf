"""Submitting tasks: lease workers from node agents, push tasks down one stream per lease.

Tasks with the same resource shape and strategy share a queue. For each queue the submitter
holds a few *leases* (a worker granted by an agent) and pushes batches of tasks to the leased
worker over one bidirectional stream; results come back inline on the same stream. Which task
goes to which worker, and how many may wait there, is ``spindle._dispatch``'s pure policy: short
tasks are pipelined, a task whose function is unknown or slow runs alone, nothing waits behind a
task that runs long (the worker hands such tasks back and they are placed again). Idle leases go
back after a short grace. A broken stream means the worker died: the task it was running is
retried (``max_retries``, with backoff) or fails with WorkerCrashedError; the tasks queued behind
it never ran and are placed again.

This module keeps submission, applying the dispatch policy (``_pump``), retries' backoff, node
drains and deaths, cancellation and reconstruction; getting, keeping and returning leases is
``leases.py``, handling what workers answer is ``task_results.py``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from spindle import _dispatch, _ids
from spindle._core import args as _args
from spindle._core import generators as _gen
from spindle._core import leases, task_results
from spindle._core.leases import LEASE_FAILING_WARN_S, LEASE_IDLE_S
from spindle._core.lineage import Lineage
from spindle._core.task_records import KeyQueue, Task, cancelled_error, resources_of, strategy_of
from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

log = logging.getLogger("spindle")

__all__ = ["LEASE_FAILING_WARN_S", "LEASE_IDLE_S", "MAX_LEASES_PER_KEY", "TaskSubmitter"]

MAX_LEASES_PER_KEY = 256


class TaskSubmitter:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.lock = threading.RLock()
        self.queues: dict[tuple[Any, ...], KeyQueue] = {}
        self.by_return: dict[bytes, Task] = {}
        self.children: dict[bytes, list[bytes]] = {}  # running task id -> first return id of each child
        self.lineage = Lineage()
        self.estimates: dict[bytes, float] = {}  # function id -> expected run time (seconds)
        self.delayed: list[tuple[float, int, Task]] = []  # retries waiting out their backoff (heap)
        self._seq = itertools.count()
        self.closed = False
        self.draining: set[str] = set()  # agent addresses of nodes the autoscaler drains (see nodes_draining)
        threading.Thread(target=leases.idle_loop, args=(self,), daemon=True, name="spindle-leases").start()
        from spindle._core.demand_report import DemandReporter

        self.demand = DemandReporter(self)  # queued shapes -> the head (autoscaler demand)

    # ---------------------------------------------------------------- submission
    def submit(self, fn_id: bytes, fn_blob: bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               opts: dict[str, Any]) -> list[Any]:
        cw = self.cw
        task_id = _ids.new_id()
        generator, num_returns = _gen.kind_of(opts.get("num_returns", 1), False)
        prepared = _args.prepare(cw, args, kwargs, f"remote function {name!r}")
        return_ids = [_ids.return_id(task_id, i) for i in range(num_returns)]
        spec = pb.TaskSpec(task_id=task_id, function_id=fn_id, name=name, num_returns=num_returns,
                           return_ids=return_ids, job_id=cw.job_id, owner_address=cw.address,
                           env_vars=opts.get("env_vars") or {}, generator=generator,
                           generator_backpressure=int(opts.get("_generator_backpressure_num_objects") or -1))
        resources = resources_of(opts)
        strategy = strategy_of(opts.get("scheduling_strategy"), opts, resources)
        env_spec: pb.RuntimeEnvSpec = opts.get("runtime_env_spec") or pb.RuntimeEnvSpec()
        key = (tuple(sorted(resources.items())), strategy.kind, strategy.node_id, strategy.soft,
               strategy.placement_group_id, strategy.bundle_index, env_spec.key, strategy.labels_hard,
               strategy.labels_soft)
        if strategy.kind == "PLACEMENT_GROUP":
            spec.placement.CopyFrom(strategy)
        retry_ex = opts.get("retry_exceptions", False)
        if isinstance(retry_ex, list):
            retry_ex = tuple(retry_ex)
        task = Task(spec, fn_blob, prepared, int(opts.get("max_retries", 3)), retry_ex, key)
        cw.events.submitted(task_id, name, cw.job_id, key[0])  # the sorted resource pairs
        refs = [cw.new_ref(rid) for rid in return_ids]
        if generator == "streaming":
            state = _gen.register(cw, task_id, lambda n: self._generator_ack(task, n))
            refs = [_gen.ObjectRefGenerator(state, refs[0])]  # type: ignore[list-item]
        parent = cw.executor.ctx.task_id if cw.executor is not None else b""
        with self.lock:
            if parent and return_ids:
                self.children.setdefault(parent, []).append(return_ids[0])
            q = self.queues.get(key)
            if q is None:
                q = self.queues[key] = KeyQueue(key, resources, strategy, runtime_env=env_spec)
            for rid in return_ids:
                self.by_return[rid] = task

        def ready(err: pb.ObjectValue | None) -> None:
            if err is not None:
                task_results.finish_error(self, task, err)
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
    def _pump(self, q: KeyQueue) -> None:
        """Send queued tasks to leases with room; ask for more leases if tasks remain (lock held)."""
        now = time.monotonic()
        batches: dict[int, pb.TaskBatch] = {}
        depth = 1
        usable = [le for le in q.leases if not le.draining] if self.draining else q.leases
        while q.tasks:
            t = q.tasks[0]
            depth = _dispatch.depth(self.estimates.get(t.spec.function_id))
            i = _dispatch.pick(usable, depth, now)
            if i < 0:
                break
            q.tasks.popleft()
            lease = usable[i]
            if not lease.inflight:
                lease.head_since, lease.exclusive = now, depth < 2
            spec = t.spec
            if spec.function_id not in lease.sent_functions:
                lease.sent_functions.add(spec.function_id)
                spec = pb.TaskSpec()
                spec.CopyFrom(t.spec)
                spec.function_blob = t.fn_blob
            t.lease = lease
            lease.inflight[t.spec.task_id] = t
            batch = batches.get(i)
            if batch is None:
                batch = batches[i] = pb.TaskBatch()
            batch.tasks.append(spec)
        for i, batch in batches.items():
            usable[i].out.put(batch)
        if q.tasks:
            want = _dispatch.leases_wanted(len(q.tasks), len(usable), depth, MAX_LEASES_PER_KEY)
            while len(usable) + q.requesting < want and q.requesting < _dispatch.MAX_LEASE_REQUESTS:
                q.requesting += 1
                threading.Thread(target=leases.acquire, args=(self, q), daemon=True, name="spindle-lease").start()

    def _generator_ack(self, task: Task, consumed: int) -> None:
        """Tell the worker running a streaming generator how far its caller has read (back-pressure)."""
        if task.spec.generator_backpressure <= 0:
            return
        with self.lock:
            lease = task.lease
        if lease is not None and not lease.dead:
            lease.out.put(pb.TaskBatch(generator_acks=[pb.GeneratorAck(task_id=task.spec.task_id, consumed=consumed)]))

    def _retry(self, q: KeyQueue, task: Task) -> None:
        """Queue ``task`` again at the back, after its backoff (lock held)."""
        if task.spec.generator == "streaming":  # run again from the start, not sending what the caller has
            task.spec.generator_skip = _gen.delivered(task.spec.task_id)
        task.attempts += 1
        task.lease = None
        delay = _dispatch.retry_delay(task.attempts)
        if delay <= 0:
            q.tasks.append(task)
        else:
            heapq.heappush(self.delayed, (time.monotonic() + delay, next(self._seq), task))

    def has_leases(self) -> bool:
        return any(q.leases for q in list(self.queues.values()))

    def nodes_draining(self, agent_addresses: set[str]) -> None:
        """The autoscaler drains these nodes: send them no more tasks, give their leases back once idle."""
        with self.lock:
            self.draining = set(agent_addresses)
            for q in self.queues.values():
                for lease in q.leases:
                    lease.draining = lease.agent_address in self.draining
                if q.tasks:
                    self._pump(q)  # leases on draining nodes no longer count: ask for others

    def nodes_died(self, agent_addresses: set[str]) -> None:
        """The head declared these nodes dead: give up their leases now (their tasks are retried elsewhere)."""
        with self.lock:
            doomed = [(q, lease) for q in self.queues.values() for lease in q.leases
                      if lease.agent_address in agent_addresses]
        for q, lease in doomed:
            task_results.lease_failed(self, q, lease, f"its node at {lease.agent_address} was declared dead")
            if lease.call is not None:
                lease.call.cancel()

    # ---------------------------------------------------------------- results
    # ---------------------------------------------------------------- reconstruction
    def reconstruct(self, oid: bytes) -> str:
        """Run again the task that made ``oid`` (its value died with a node); "" if started, else why not."""
        task = self.lineage.get(oid)
        if task is None:
            return "it has no lineage to recompute it from (values made by put() cannot be reconstructed)"
        with self.lock:
            if any(rid in self.by_return for rid in task.spec.return_ids):
                return ""  # already running again
            if task.retries_left == 0:
                return (f"the task {task.spec.name!r} that made it was already re-run {task.reconstructions} "
                        "time(s) and has no retries left (max_retries)")
            task.retries_left -= 1 if task.retries_left > 0 else 0
            task.reconstructions += 1
            task.lease, task.cancelled = None, False
            lost = self.cw.store.get(oid)
            for rid in task.spec.return_ids:
                self.by_return[rid] = task
                self.cw.store.delete(rid)
            q = self.queues[task.key]
            if lost is not None and lost.in_store:  # leases on the dead node may not have noticed yet
                for lease in [le for le in q.leases if le.agent_address == lost.location.agent_address]:
                    task_results.lease_failed(self, q, lease, "its node died")
            q.tasks.append(task)
            self._pump(q)
        log.info("reconstructing %s: re-running task %r", oid.hex(), task.spec.name)
        return ""

    # ---------------------------------------------------------------- cancel and leases
    def cancel(self, oid: bytes, force: bool, recursive: bool = True) -> bool:
        """Cancel the task that returns ``oid``: drop it if it has not started, else interrupt (or kill) it."""
        with self.lock:
            task = self.by_return.get(oid)
            if task is None or task.cancelled:
                return False
            task.cancelled = True
            q = self.queues[task.key]
            lease = task.lease
            if task in q.tasks:
                q.tasks.remove(task)
            elif lease is not None:
                lease.out.put(pb.TaskBatch(cancel_task_ids=[task.spec.task_id], force_cancel=force,
                                           cancel_recursive=recursive))
                return True
            # else: waiting for its dependencies or for a retry's backoff; it will not be queued
        task_results.finish_error_exc(self, task, cancelled_error(task))
        return True

    def cancel_children(self, parent_task_id: bytes, force: bool) -> None:
        """Cancel every task submitted by ``parent_task_id`` (``cancel(recursive=True)``)."""
        with self.lock:
            kids = self.children.pop(parent_task_id, [])
        for oid in kids:
            self.cancel(oid, force, True)

    def task_finished(self, task_id: bytes) -> None:
        with self.lock:
            self.children.pop(task_id, None)

    def debug_state(self) -> str:
        with self.lock:
            return "; ".join(
                f"key={q.key[0]} queued={len(q.tasks)} requesting={q.requesting} leases="
                + ",".join(f"{lease.worker_address}:{len(lease.inflight)}:{'dead' if lease.dead else 'ok'}"
                           for lease in q.leases)
                for q in self.queues.values())

    def shutdown(self) -> None:
        self.closed = True
        self.demand.close()
        with self.lock:
            held = [lease for q in self.queues.values() for lease in q.leases]
        for lease in held:
            lease.dead = True
            lease.out.put(None)
            leases.return_lease(self, lease, False)
