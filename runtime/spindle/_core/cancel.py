"""``cancel()`` for every kind of ref, as Ray does it, wherever the task is.

A ref names the process that owns it (submitted the task). The owner cancels: a normal task through
its submitter (queued: never runs; running: KeyboardInterrupt, or the worker is killed with
``force``), an actor call through its actor client (queued: never runs; running on an async actor:
its coroutine gets ``asyncio.CancelledError``; running on a sync actor: not interrupted, as in Ray, but
its caller reads TaskCancelledError; ``force`` is refused for actor calls). A ref owned by another process is forwarded to that owner.
On the actor's worker, ``cancel_actor_call`` is the executor's side of an actor call's cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from spindle._proto import pb, rpc

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker
    from spindle._core.executor import Executor
    from spindle._core.object_ref import ObjectRef
    from spindle._core.result_sink import Sink


def cancel(cw: CoreWorker, ref: ObjectRef, force: bool, recursive: bool) -> None:
    oid = ref.binary()
    if cancel_owned(cw, oid, force, recursive):
        return
    owner = ref.owner_address
    if owner and owner != cw.address:
        try:
            rpc.CoreWorkerStub(cw.channels.get(owner)).CancelTask(
                pb.CancelTaskRequest(object_id=oid, force=force, recursive=recursive), metadata=cw.md, timeout=30)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(e.details()) from None
            # the owner is gone: so is its task (its refs fail with OwnerDiedError)


def cancel_owned(cw: CoreWorker, oid: bytes, force: bool, recursive: bool) -> bool:
    """Cancel a task this process submitted; False if it has none (finished, or not ours)."""
    if cw.submitter.cancel(oid, force, recursive):
        return True
    return cw.actors.cancel(oid, force, recursive)


def cancel_actor_call(ex: Executor, task_id: bytes, recursive: bool, sink: Sink) -> None:
    """On the actor's worker: a queued call never runs; a running async call is cancelled; a running sync
    call goes on (Ray does not interrupt actor tasks). ``recursive`` cancels what a running call submitted."""
    with ex.lock:
        if task_id in ex.actor_queued:
            ex.actor_queued.discard(task_id)
            ex.skip.add(task_id)
            sink.q.put(pb.TaskResult(task_id=task_id, failed=True, cancelled=True))
            return
        task = ex.async_tasks.get(task_id)
        running = task is not None or task_id in ex.running
        if task_id in ex.running:  # a sync call runs on; get_runtime_context().is_canceled() tells it
            ex.cancelling.add(task_id)
    if task is not None and ex.loop is not None:
        ex.loop.call_soon_threadsafe(task.cancel)
    if running and recursive:
        ex.cw.submitter.cancel_children(task_id, False)
