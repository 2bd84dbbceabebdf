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
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import grpc

from spindle import _dispatch, _ids
from spindle._core import args as _args
from spindle._core import generators as _gen
from spindle._core import pg_client
from spindle._core import timeline as _timeline
from spindle._core.failover import NO_NODE_TIMEOUT_S
from spindle._core.lineage import Lineage
from spindle._core.task_events import exception_error_type
from spindle._core.task_records import KeyQueue, Lease, Task, cancelled_error, load_error, resources_of, strategy_of
from spindle._proto import pb, rpc
from spindle._rpc.channels import CHANNEL_OPTIONS, batched
from spindle._scheduling import task_should_retry
from spindle.exceptions import NodeDiedError, RuntimeEnvSetupError, WorkerCrashedError

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

log = logging.getLogger("spindle")

LEASE_IDLE_S = 0.2
LEASE_FAILING_WARN_S = 30.0
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
        threading.Thread(target=self._idle_loop, daemon=True, name="spindle-leases").start()
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
                threading.Thread(target=self._acquire_lease, args=(q,), daemon=True, name="spindle-lease").start()

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

    def _acquire_lease(self, q: KeyQueue) -> None:
        cw = self.cw
        address, spilled, delay = cw.agent_address, False, 0.05
        try:
            if q.strategy.kind == "PLACEMENT_GROUP":  # leased only where its bundle is
                pg_client.acquire_lease(self, q)
                return
            while not self.closed:
                with self.lock:
                    if not q.tasks:
                        return
                if not address:  # no live node known: look for one, give up after a while
                    cw.agent_unreachable("")
                    address = cw.agent_address
                    if not address:
                        if self._no_node(q):
                            return
                        time.sleep(delay)
                        delay = min(delay * 2, 1.0)
                        continue
                req = pb.LeaseRequest(resources=pb.Resources(amounts=q.resources), strategy=q.strategy,
                                      job_id=cw.job_id, grant_or_reject=spilled, timeout_s=1.0,
                                      runtime_env=q.runtime_env)
                try:
                    reply = cw.agent(address).RequestLease(req, metadata=cw.md, timeout=30)
                except ValueError:  # our channels were closed under us: this process is shutting down
                    if self.closed:
                        return
                    raise
                except grpc.RpcError as e:
                    self._lease_request_failed(q, address, e)
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        cw.agent_unreachable(address)
                    if self._no_node(q):
                        return
                    address, spilled = cw.agent_address, False
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                cw.failover.ok()
                q.failing_since = 0.0
                if reply.status == "GRANTED":
                    self._granted(q, reply, address)
                    return
                if reply.status == "SPILLBACK":
                    address, spilled = reply.spill_address, True
                    continue
                if reply.status == "RUNTIME_ENV_FAILED":  # the node cannot build the environment: fail its tasks
                    self._fail_queue(q, reply.error, reply.message)
                    return
                if reply.status == "INFEASIBLE":
                    if not q.warned:
                        q.warned = True
                        print(f"spindle: warning: a task needs {q.resources} but {reply.message}; it will wait "
                              "until a node that can run it joins the cluster.", file=sys.stderr)
                    time.sleep(1.0)
                address, spilled = cw.agent_address, False
        except Exception:  # a bug must not end the queue's lease requests silently: say so, then ask again below
            log.exception("spindle: requesting a worker lease failed")
            time.sleep(1.0)
        finally:
            with self.lock:
                q.requesting -= 1
                # Tasks put back meanwhile (a lease failed, a worker handed tasks back) were pumped while this
                # thread still counted as asking for a lease, so _pump started none for them: ask now, or they
                # wait for an event that may never come (no lease left to finish or fail).
                if q.tasks and not self.closed:
                    self._pump(q)

    def _lease_request_failed(self, q: KeyQueue, address: str, e: grpc.RpcError) -> None:
        """Tasks waiting because node agents do not answer are never a silent hang: say so every minute."""
        now = time.monotonic()
        if not q.failing_since:
            q.failing_since = now
        log.debug("lease request to %s failed: %s", address, e.code())
        waited = now - q.failing_since
        if waited >= LEASE_FAILING_WARN_S and now - q.failure_warned >= LEASE_FAILING_WARN_S:
            q.failure_warned = now
            log.warning("spindle: %d task(s) needing %s have waited %.0f s for a worker: lease requests to the node "
                        "agent at %s fail (%s: %s). Check that node with 'spindle status' and its agent log; the "
                        "driver keeps trying.", len(q.tasks), q.resources, waited, address, e.code().name,
                        e.details())

    def _fail_queue(self, q: KeyQueue, error: bytes, text: str) -> None:
        with self.lock:
            doomed = list(q.tasks)
            q.tasks.clear()
        exc, _ = load_error(error, text, "runtime_env")
        for t in doomed:
            self._finish_error_exc(t, exc if exc is not None else RuntimeEnvSetupError(text))

    def _no_node(self, q: KeyQueue) -> bool:
        """Fail the queue's waiting tasks once no node has been left for too long; True if it did."""
        fo = self.cw.failover
        if fo.lost_for() <= NO_NODE_TIMEOUT_S:
            return False
        fo.unreachable(self.cw.agent_address, force=True)  # a node may have joined since the last look
        if fo.lost_for() <= NO_NODE_TIMEOUT_S:
            return False
        with self.lock:
            doomed = list(q.tasks)
            q.tasks.clear()
        err = NodeDiedError(fo.error_text())
        for t in doomed:
            self._finish_error_exc(t, err)
        return True

    def _granted(self, q: KeyQueue, reply: pb.LeaseReply, agent_address: str) -> None:
        lease = Lease(reply.lease_id, reply.worker_address, agent_address, q.key)  # granted: its node takes work
        try:
            stub = self.cw.channels.stub(reply.worker_address, rpc.CoreWorkerStub)
            call = stub.PushTasks(batched(lease.out),
                                  metadata=(*self.cw.md, ("x-spindle-lease", reply.lease_id.hex()),
                                            ("x-spindle-resources", json.dumps(q.resources)),
                                            ("x-spindle-namespace", self.cw.namespace)))
        except (ValueError, grpc.RpcError):  # our channels were closed under us (shutdown): the lease goes back
            lease.dead = True
            self._return_lease(lease, False)
            return
        lease.call = call
        threading.Thread(target=self._read, args=(q, lease, call), daemon=True, name="spindle-results").start()
        with self.lock:
            lease.idle_since = time.monotonic()
            q.leases.append(lease)
            self._pump(q)
        self.demand.wake()

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
            self._lease_failed(q, lease, f"its node at {lease.agent_address} was declared dead")
            if lease.call is not None:
                lease.call.cancel()

    # ---------------------------------------------------------------- results
    def _read(self, q: KeyQueue, lease: Lease, call: Any) -> None:
        try:
            for batch in call:
                if batch.logs:
                    self.cw.emit_log(batch.logs)
                if batch.results:
                    self._on_results(q, lease, batch.results)
        except grpc.RpcError as e:
            if not self.closed:
                self._lease_failed(q, lease, f"{e.code().name}: {e.details()}")
            return
        except Exception as e:  # a bug handling a result must not strand this lease's tasks: place them again
            log.exception("spindle: handling results from worker %s failed", lease.worker_address)
            if not self.closed:
                self._lease_failed(q, lease, f"the driver could not handle its results ({type(e).__name__}: {e})")
                if lease.call is not None:
                    lease.call.cancel()
            return
        if not lease.dead and not self.closed:
            self._lease_failed(q, lease, "the worker closed the stream")

    def _on_results(self, q: KeyQueue, lease: Lease, results: Any) -> None:
        _timeline.record(results, lease.inflight, lease.worker_address)
        if any(r.generator_item for r in results):  # items a streaming generator yielded: the task goes on
            for r in results:
                if r.generator_item:
                    _gen.deliver(r)
            results = [r for r in results if not r.generator_item]
        if any(r.lost_object_ids for r in results):  # arguments lost with their node: rebuild, then run again
            results = [r for r in results if not (r.lost_object_ids and self._rebuild_args(q, lease, r))]
        errors: dict[bytes, tuple[BaseException | None, bytes]] = {}
        for r in results:  # unpickle user exceptions outside the lock; a class that can't be rebuilt is no crash
            if r.failed and r.app_error:
                t = lease.inflight.get(r.task_id)
                errors[r.task_id] = load_error(r.error, r.error_text, t.spec.name if t else "")
        done: list[tuple[Task, pb.TaskResult]] = []
        with self.lock:
            now = time.monotonic()
            returned: list[Task] = []
            for r in results:
                was_head = bool(lease.inflight) and next(iter(lease.inflight)) == r.task_id
                task = lease.inflight.pop(r.task_id, None)
                if task is None:
                    continue
                _args.answered(self.cw, task.prepared, r)
                if r.returned:  # never started: it waited behind a long task
                    task.lease = None
                    if task.cancelled:
                        done.append((task, r))
                    else:
                        returned.append(task)
                    continue
                fn = task.spec.function_id
                if was_head:
                    lease.head_since = now
                if not r.failed:
                    self.estimates[fn] = _dispatch.observe(self.estimates.get(fn), r.exec_seconds)
                if r.failed and not r.cancelled and not task.cancelled:
                    err = errors.get(r.task_id, (None, b""))[0]
                    if task_should_retry(task.retries_left, r.app_error, task.retry_exceptions, err):
                        task.retries_left -= 1 if task.retries_left > 0 else 0
                        self._retry(q, task)
                        continue
                done.append((task, r))
            if returned:
                q.tasks.extendleft(reversed(returned))
                if lease.inflight:  # its running task has stalled: later calls of that function run alone
                    head = next(iter(lease.inflight.values())).spec.function_id
                    self.estimates[head] = _dispatch.stalled_estimate(self.estimates.get(head), now - lease.head_since)
            if not lease.inflight:
                lease.idle_since, lease.exclusive = now, False
            self._pump(q)
        for task, r in done:
            if r.cancelled or task.cancelled:
                self._finish_error_exc(task, cancelled_error(task))
            elif r.failed:
                blob = errors[r.task_id][1] if r.task_id in errors else r.error
                self._finish_error(task, pb.ObjectValue(inline=blob, is_error=True))
            else:
                self._finish(task, list(r.returns))

    def _rebuild_args(self, q: KeyQueue, lease: Lease, r: pb.TaskResult) -> bool:
        """The worker could not fetch arguments we own (their node died): rebuild them, then send the task again."""
        with self.lock:
            task = lease.inflight.get(r.task_id)
            if task is None or task.cancelled or not all(oid in self.cw.owned for oid in r.lost_object_ids):
                return False
            _args.answered(self.cw, task.prepared, r)
        if any(self.reconstruct(oid) for oid in r.lost_object_ids):
            return False  # some cannot be rebuilt: the task fails with the ObjectLostError it reported
        with self.lock:
            lease.inflight.pop(r.task_id, None)
            if not lease.inflight:
                lease.idle_since, lease.exclusive = time.monotonic(), False
            task.lease = None
            del task.spec.args[:]
            self._pump(q)

        def ready(err: pb.ObjectValue | None) -> None:
            if err is not None:
                self._finish_error(task, err)
                return
            task.spec.args.extend(task.prepared.args)
            with self.lock:
                if task.cancelled:
                    return
                q.tasks.append(task)
                self._pump(q)

        _args.resolve(self.cw, task.prepared, ready)
        return True

    def _lease_failed(self, q: KeyQueue, lease: Lease, why: str) -> None:
        with self.lock:
            if lease.dead:
                return
            lease.dead = True
            if lease in q.leases:
                q.leases.remove(lease)
            orphans = list(lease.inflight.values())
            lease.inflight.clear()
            failed: list[Task] = [t for t in orphans if t.cancelled]
            # only the first task was running; the ones queued behind it never started: place them again
            waiting = [t for t in orphans[1:] if not t.cancelled]
            for t in waiting:
                t.lease = None
            q.tasks.extendleft(reversed(waiting))
            if orphans and not orphans[0].cancelled:
                head = orphans[0]
                if head.retries_left != 0:
                    head.retries_left -= 1 if head.retries_left > 0 else 0
                    self._retry(q, head)
                else:
                    failed.append(head)
            self._pump(q)
        lease.out.put(None)
        self.cw.io_pool.submit(self._return_lease, lease, True)
        for t in failed:
            if t.cancelled:
                self._finish_error_exc(t, cancelled_error(t))
            else:
                self._finish_error_exc(t, WorkerCrashedError(
                    f"The worker running task {t.spec.name!r} died ({why}); no retries left "
                    f"(max_retries)."))

    def _finish(self, task: Task, returns: list[pb.ObjectValue]) -> None:
        self._forget(task)
        self.lineage.record(task, any(ov.in_store for ov in returns))
        for ov in returns:
            if task.spec.generator:  # a dynamic generator's items: ours, like the refs we return
                self.cw.owned.add(ov.object_id)
            self.cw.store.put(ov.object_id, ov)
        if task.spec.generator:
            _gen.finished(task.spec.task_id, None)

    def _finish_error(self, task: Task, err: pb.ObjectValue) -> None:
        self._forget(task)
        if task.spec.generator:
            _gen.finished(task.spec.task_id, err)
        for rid in task.spec.return_ids:
            ov = pb.ObjectValue()
            ov.CopyFrom(err)
            ov.object_id = rid
            self.cw.store.put(rid, ov)

    def _finish_error_exc(self, task: Task, exc: BaseException) -> None:
        s = task.spec
        self.cw.events.finished(s.task_id, s.name, s.job_id, b"", exception_error_type(exc), str(exc), ran_here=False)
        self._finish_error(task, self.cw.error_value(b"", exc))

    def _forget(self, task: Task) -> None:
        with self.lock:
            for rid in task.spec.return_ids:
                self.by_return.pop(rid, None)
        _args.release(self.cw, task.prepared)

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
                    self._lease_failed(q, lease, "its node died")
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
        self._finish_error_exc(task, cancelled_error(task))
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

    def _return_lease(self, lease: Lease, failed: bool) -> None:
        request = pb.ReturnLeaseRequest(lease_id=lease.lease_id, worker_failed=failed)
        try:
            self.cw.agent(lease.agent_address).ReturnLease(request, metadata=self.cw.md, timeout=10)
        except (grpc.RpcError, ValueError):  # unreachable, or our channels were closed under us (shutdown)
            if not self.cw.channels.closed:
                return  # the agent takes back a lease whose holder is gone (its stream closes, or is never opened)
            try:  # shutting down: one short-lived channel, so the node lends the worker again now
                with grpc.insecure_channel(lease.agent_address, options=CHANNEL_OPTIONS) as ch:
                    rpc.NodeAgentStub(ch).ReturnLease(request, metadata=self.cw.md, timeout=5)
            except grpc.RpcError:
                pass

    def _idle_loop(self) -> None:
        while not self.closed:
            # poll fast only while leases are held or retries wait, so an idle process stays idle
            pause = LEASE_IDLE_S / 4 if any(q.leases for q in list(self.queues.values())) else 0.5
            if self.delayed:
                pause = max(0.01, min(pause, self.delayed[0][0] - time.monotonic()))
            time.sleep(pause)
            now = time.monotonic()
            done: list[Lease] = []
            with self.lock:
                while self.delayed and self.delayed[0][0] <= now:
                    task = heapq.heappop(self.delayed)[2]
                    if not task.cancelled:
                        rq = self.queues[task.key]
                        rq.tasks.append(task)
                        self._pump(rq)
                for q in self.queues.values():
                    for lease in list(q.leases):
                        idle = not q.tasks and now - lease.idle_since > LEASE_IDLE_S
                        if lease.inflight or not (lease.draining or idle):
                            continue
                        q.leases.remove(lease)
                        lease.dead = True
                        done.append(lease)
            for lease in done:
                lease.out.put(None)
                self._return_lease(lease, False)

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
            leases = [lease for q in self.queues.values() for lease in q.leases]
        for lease in leases:
            lease.dead = True
            lease.out.put(None)
            self._return_lease(lease, False)
