"""The submitter's results: reading a lease's result stream and settling each task's fate.

Split out of ``submitter.py`` (which queues and dispatches tasks) because what happens after a
worker answers is its own state machine: store returns and lineage, retry the failures the task
allows (``max_retries``/``retry_exceptions``), put back tasks a worker handed back unstarted,
rebuild arguments lost with a node, and, when the stream breaks (the worker died), retry or fail
the running task and place again the ones queued behind it. Functions take the ``TaskSubmitter``
whose lock and queues they share.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import grpc

from spindle import _dispatch
from spindle._core import args as _args
from spindle._core import generators as _gen
from spindle._core import leases
from spindle._core import timeline as _timeline
from spindle._core.task_events import exception_error_type
from spindle._core.task_records import KeyQueue, Lease, Task, cancelled_error, fail_returns, load_error
from spindle._proto import pb
from spindle._scheduling import task_should_retry
from spindle.exceptions import WorkerCrashedError

if TYPE_CHECKING:
    from spindle._core.submitter import TaskSubmitter

log = logging.getLogger("spindle")


def read(sub: TaskSubmitter, q: KeyQueue, lease: Lease, call: Any) -> None:
    try:
        for batch in call:
            lease.answered = True
            if batch.logs:
                sub.cw.emit_log(batch.logs)
            if batch.results:
                _on_results(sub, q, lease, batch.results)
    except grpc.RpcError as e:
        if sub.closed:
            return
        if not lease.answered and leases.revoked(sub, lease, e):
            lease_revoked(sub, q, lease)
        else:
            lease_failed(sub, q, lease, f"{e.code().name}: {e.details()}")
        return
    except Exception as e:  # a bug handling a result must not strand this lease's tasks: place them again
        log.exception("spindle: handling results from worker %s failed", lease.worker_address)
        if not sub.closed:
            lease_failed(sub, q, lease, f"the driver could not handle its results ({type(e).__name__}: {e})")
            if lease.call is not None:
                lease.call.cancel()
        return
    if not lease.dead and not sub.closed:
        lease_failed(sub, q, lease, "the worker closed the stream")

def _on_results(sub: TaskSubmitter, q: KeyQueue, lease: Lease, results: Any) -> None:
    _timeline.record(results, lease.inflight, lease.worker_address)
    if any(r.generator_item for r in results):  # items a streaming generator yielded: the task goes on
        for r in results:
            if r.generator_item:
                _gen.deliver(r)
        results = [r for r in results if not r.generator_item]
    if any(r.lost_object_ids for r in results):  # arguments lost with their node: rebuild, then run again
        results = [r for r in results if not (r.lost_object_ids and _rebuild_args(sub, q, lease, r))]
    errors: dict[bytes, tuple[BaseException | None, bytes]] = {}
    for r in results:  # unpickle user exceptions outside the lock; a class that can't be rebuilt is no crash
        if r.failed and r.app_error:
            t = lease.inflight.get(r.task_id)
            errors[r.task_id] = load_error(r.error, r.error_text, t.spec.name if t else "")
    done: list[tuple[Task, pb.TaskResult]] = []
    with sub.lock:
        now = time.monotonic()
        returned: list[Task] = []
        for r in results:
            was_head = bool(lease.inflight) and next(iter(lease.inflight)) == r.task_id
            task = lease.inflight.pop(r.task_id, None)
            if task is None:
                continue
            _args.answered(sub.cw, task.prepared, r)
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
                sub.estimates[fn] = _dispatch.observe(sub.estimates.get(fn), r.exec_seconds)
            if r.failed and not r.cancelled and not task.cancelled:
                err = errors.get(r.task_id, (None, b""))[0]
                if task_should_retry(task.retries_left, r.app_error, task.retry_exceptions, err):
                    task.retries_left -= 1 if task.retries_left > 0 else 0
                    sub._retry(q, task)
                    continue
            done.append((task, r))
        if returned:
            q.tasks.extendleft(reversed(returned))
            if lease.inflight:  # its running task has stalled: later calls of that function run alone
                head = next(iter(lease.inflight.values())).spec.function_id
                sub.estimates[head] = _dispatch.stalled_estimate(sub.estimates.get(head), now - lease.head_since)
        if not lease.inflight:
            lease.idle_since, lease.exclusive = now, False
        sub._pump(q)
    for task, r in done:
        if r.cancelled or task.cancelled:
            finish_error_exc(sub, task, cancelled_error(task))
        elif r.failed:
            blob = errors[r.task_id][1] if r.task_id in errors else r.error
            finish_error(sub, task, pb.ObjectValue(inline=blob, is_error=True))
        else:
            finish(sub, task, list(r.returns))

def _rebuild_args(sub: TaskSubmitter, q: KeyQueue, lease: Lease, r: pb.TaskResult) -> bool:
    """The worker could not fetch arguments we own (their node died): rebuild them, then send the task again."""
    with sub.lock:
        task = lease.inflight.get(r.task_id)
        if task is None or task.cancelled or not all(oid in sub.cw.owned for oid in r.lost_object_ids):
            return False
        _args.answered(sub.cw, task.prepared, r)
    if any(sub.reconstruct(oid) for oid in r.lost_object_ids):
        return False  # some cannot be rebuilt: the task fails with the ObjectLostError it reported
    with sub.lock:
        lease.inflight.pop(r.task_id, None)
        if not lease.inflight:
            lease.idle_since, lease.exclusive = time.monotonic(), False
        task.lease = None
        del task.spec.args[:]
        sub._pump(q)

    def ready(err: pb.ObjectValue | None) -> None:
        if err is not None:
            finish_error(sub, task, err)
            return
        task.spec.args.extend(task.prepared.args)
        with sub.lock:
            if task.cancelled:
                return
            q.tasks.append(task)
            sub._pump(q)

    _args.resolve(sub.cw, task.prepared, ready)
    return True


def _retire(q: KeyQueue, lease: Lease) -> list[Task] | None:
    """Mark the lease dead and take its in-flight tasks (None: it was already retired). Under the submitter's lock."""
    if lease.dead:
        return None
    lease.dead = True
    if lease in q.leases:
        q.leases.remove(lease)
    orphans = list(lease.inflight.values())
    lease.inflight.clear()
    return orphans


def lease_revoked(sub: TaskSubmitter, q: KeyQueue, lease: Lease) -> None:
    """The agent took the lease back before our stream reached its worker (we were stalled past the confirm
    window): none of its tasks ran, so all go back to the front of the queue, retries untouched, for a new lease."""
    with sub.lock:
        orphans = _retire(q, lease)
        if orphans is None:
            return
        for t in orphans:
            t.lease = None
        q.tasks.extendleft(reversed([t for t in orphans if not t.cancelled]))
        sub._pump(q)
    lease.out.put(None)
    log.warning("spindle: the node agent at %s took back a worker lease this process had not used within its "
                "confirm window (this process was stalled); %d task(s) go to another lease, none ran",
                lease.agent_address, len(orphans))
    for t in orphans:
        if t.cancelled:
            finish_error_exc(sub, t, cancelled_error(t))


def lease_failed(sub: TaskSubmitter, q: KeyQueue, lease: Lease, why: str) -> None:
    with sub.lock:
        orphans = _retire(q, lease)
        if orphans is None:
            return
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
                sub._retry(q, head)
            else:
                failed.append(head)
        sub._pump(q)
    lease.out.put(None)
    sub.cw.io_pool.submit(leases.return_lease, sub, lease, True)
    for t in failed:
        if t.cancelled:
            finish_error_exc(sub, t, cancelled_error(t))
        else:
            finish_error_exc(sub, t, WorkerCrashedError(
                f"The worker running task {t.spec.name!r} died ({why}); no retries left "
                f"(max_retries)."))

def finish(sub: TaskSubmitter, task: Task, returns: list[pb.ObjectValue]) -> None:
    _forget(sub, task)
    in_store = any(ov.in_store for ov in returns)
    sub.lineage.record(task, in_store)
    if not in_store:  # no lineage keeps the arguments (to run the task again): let go of their refs now
        task.prepared.deps = []
    for ov in returns:
        if task.spec.generator:  # a dynamic generator's items: ours, like the refs we return
            sub.cw.owned.add(ov.object_id)
        sub.cw.store.put(ov.object_id, ov)
    if task.spec.generator:
        _gen.finished(task.spec.task_id, None)

def finish_error(sub: TaskSubmitter, task: Task, err: pb.ObjectValue) -> None:
    _forget(sub, task)
    task.prepared.deps = []
    fail_returns(sub.cw, task.spec, err)

def finish_error_exc(sub: TaskSubmitter, task: Task, exc: BaseException) -> None:
    s = task.spec
    sub.cw.events.finished(s.task_id, s.name, s.job_id, b"", exception_error_type(exc), str(exc), ran_here=False)
    finish_error(sub, task, sub.cw.error_value(b"", exc))

def _forget(sub: TaskSubmitter, task: Task) -> None:
    """The task is done: unpin its arguments. (Its argument refs go with it, or with its lineage; a large
    argument promoted to the store is then freed before the caller sees the result, so its file is the
    spare again by the next call's put.)"""
    with sub.lock:
        for rid in task.spec.return_ids:
            sub.by_return.pop(rid, None)
    _args.release(sub.cw, task.prepared)

