"""Turning a worker into an actor: running the constructor and setting up how calls run.

Split out of the executor, which runs calls; this is the one-time step before them. The
constructor runs on the worker's main thread (queued like a task, so it sees the same thread
state as later calls); then the actor gets its call machinery: a thread pool for a threaded actor
(``max_concurrency`` > 1 or concurrency groups), an event loop on its own thread for an async one.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import cloudpickle

from spindle import _actor_death, _logging_config
from spindle._core import executor as ex
from spindle._proto import pb
from spindle._serialization import pickle_error
from spindle.exceptions import RayTaskError

if TYPE_CHECKING:
    from spindle._core.executor import Executor


def create(e: Executor, req: pb.StartActorRequest) -> pb.StartActorReply:
    """Construct the actor ``req`` describes on ``e``'s main thread; the reply says how it went."""
    done = threading.Event()
    reply: list[pb.StartActorReply] = []

    def construct() -> None:
        spec = req.spec
        saved = e.ctx.name
        e.ctx.name = spec.class_name
        init = f"{spec.class_name}.__init__"
        e.cw.events.running(spec.actor_id, init, spec.job_id, spec.actor_id, kind="ACTOR_CREATION_TASK")
        try:
            ex.apply_env(spec.env_vars)
            e.cw.runtime_env_vars = dict(spec.env_vars)  # what the actor submits inherits them
            _logging_config.apply_from_env()
            e.cw.job_id = spec.job_id
            e.cw.namespace = spec.namespace
            cls = cloudpickle.loads(spec.class_blob)
            args, kwargs = e.resolve(spec.args)
            e.actor_spec = spec
            e.actor_incarnation = req.incarnation
            e.actor = cls(*args, **kwargs)
            if e.exit_called:  # exit_actor() in the constructor, its exception caught
                raise ex.ActorExit()
            groups = cloudpickle.loads(spec.concurrency_groups_blob) if spec.concurrency_groups_blob else {}
            if spec.is_async:
                _start_loop(e, spec.max_concurrency or 1000, groups)
            elif spec.max_concurrency > 1 or groups:
                e.actor_pool = ThreadPoolExecutor(spec.max_concurrency or 1, thread_name_prefix="actor")
                e.group_pools = {g: ThreadPoolExecutor(n, thread_name_prefix=f"actor-{g}")
                                 for g, n in groups.items()}
            reply.append(pb.StartActorReply(ok=True, worker_address=e.cw.address))
        except ex.ActorExit:  # the actor ends before its first call; the agent stops this worker gracefully
            e.actor = None
            reply.append(pb.StartActorReply(ok=False, exited=True, error_text=_actor_death.EXIT_ACTOR))
        except BaseException as err:  # noqa: BLE001 - the constructor's error goes to the caller
            tb = ex.user_traceback(err)
            wrapped = RayTaskError(f"{spec.class_name}.__init__", tb, err).as_instanceof_cause()
            reply.append(pb.StartActorReply(ok=False, error=pickle_error(wrapped), error_text=tb))
        finally:
            failed = not reply or not (reply[0].ok or reply[0].exited)
            e.cw.events.finished(spec.actor_id, init, spec.job_id, spec.actor_id,
                                 "TASK_EXECUTION_EXCEPTION" if failed else "",
                                 reply[0].error_text if failed and reply else "", kind="ACTOR_CREATION_TASK")
            e.ctx.name = saved
            ex.flush_std()
            done.set()

    e.queue.put(construct)
    done.wait()
    return reply[0]


def _start_loop(e: Executor, concurrency: int, groups: dict[str, int]) -> None:
    """An async actor's event loop, on its own thread; its calls are coroutines submitted to it."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        e.loop_ident = threading.get_ident()
        e.async_sem = asyncio.Semaphore(concurrency)
        e.group_sems = {g: asyncio.Semaphore(n) for g, n in groups.items()}
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True, name="actor-loop").start()
    ready.wait()
    e.loop = loop
