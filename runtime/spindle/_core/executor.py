"""Running tasks and actor calls inside a worker process.

Each lease holder opens one PushTasks stream; its tasks go onto the worker's queue and run on
the main thread in arrival order (so calls from one caller to an actor run in submission
order). Threaded actors fan calls out to a pool of ``max_concurrency`` threads; async actors run
them as coroutines on an event loop. Results and the task's printed lines go back on the stream
they came from, batched (``result_sink``). Making a worker an actor (its constructor, its thread
pool or event loop) is ``actor_host``.

Tasks queued behind one that runs longer than ``_dispatch.STALL_S`` are handed back unstarted
(``returned``) so their submitter places them on another worker. ``cancel`` drops a task that
has not started and interrupts a running one the way Ray does: KeyboardInterrupt is raised in the
task (a SIGINT aimed at the main thread, so blocking calls such as ``time.sleep`` are woken).

Running one call (its arguments, user code, result or error) is ``task_run``.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from spindle import _accelerators, _dispatch
from spindle._core import actor_host, actor_shutdown, gen_exec, lease_guard, task_run
from spindle._core.cancel import cancel_actor_call
from spindle._core.result_sink import DirectOut, Sink
from spindle._core.task_run import ActorExit, apply_env, flush_std, restore_env, user_traceback
from spindle._proto import pb
from spindle._rpc.frame_stream import FrameSocket
from spindle._rpc.tcp_stream import OnDemand
from spindle._serialization import deserialize

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

__all__ = ["ActorExit", "Executor", "TaskContext", "apply_env", "flush_std", "restore_env", "user_traceback"]


class TaskContext(threading.local):
    task_id: bytes = b""
    name: str = ""
    function_name: str = ""
    sink: Sink | None = None
    placement: pb.SchedulingStrategy | None = None  # the placement group the task runs in


class Executor:
    """This worker's queue of calls, the streams they came on, and their cancellation; one per process."""

    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.functions: dict[bytes, Any] = {}
        self.ctx = TaskContext()
        self.main_ident = threading.get_ident()
        self.running: dict[bytes, int] = {}  # task id -> thread ident
        self.running_sinks: dict[bytes, Sink] = {}  # task id -> the stream it came from
        self.lock = threading.Condition()
        self.pending: dict[bytes, Sink] = {}  # tasks queued here that have not started (not actor calls)
        self.skip: set[bytes] = set()  # queued tasks already answered (handed back or cancelled)
        self.current_started = 0.0  # when the main thread's current task started (0: idle)
        self.interruptible = b""  # the task whose user code the main thread is running
        self.interrupt = b""  # the task a cancel asked to interrupt
        self.cancelling: set[bytes] = set()
        self.watching = False  # the give-back thread is polling (it sleeps while no task waits)
        self.actor: Any = None
        self.actor_spec: pb.ActorSpec | None = None
        self.actor_pool: ThreadPoolExecutor | None = None
        self.group_pools: dict[str, ThreadPoolExecutor] = {}  # concurrency group -> its threads
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_sem: asyncio.Semaphore | None = None
        self.group_sems: dict[str, asyncio.Semaphore] = {}  # async actors: concurrency group -> its slots
        self.last_sink: Sink | None = None
        self.loop_ident = 0
        self.tcp_stream: OnDemand | None = None  # the TCP stream for callers on other nodes (_rpc.tcp_stream)
        self.held_outs: set[DirectOut] = set()  # local streams whose results wait for the queue to empty
        self.held_event: threading.Event | None = None
        self.exiting = False  # no more calls start; the main loop ends and runs actor_shutdown.run
        self.exit_requested = False
        self.exit_called = False  # exit_actor() ran: the actor ends after this call even if its exception was caught
        self.async_calls: set[Any] = set()  # an async actor's calls submitted to its loop (futures)
        self.actor_queued: set[bytes] = set()  # actor calls received, not started (cancel drops them)
        self.async_tasks: dict[bytes, asyncio.Task[Any]] = {}  # an async actor's running calls (cancel)
        self.actor_incarnation = 0
        self.gen_acks = gen_exec.Acks()
        self.leases = lease_guard.LeaseGuard()  # which leases reached us, which the agent took back first
        threading.Thread(target=self._give_back_loop, daemon=True, name="spindle-give-back").start()

    # ---------------------------------------------------------------- streams
    def push_tasks(self, requests: Iterator[pb.TaskBatch], context: Any) -> Iterator[pb.ResultBatch]:
        sink = Sink()
        lease_id, named = b"", ""
        for key, value in context.invocation_metadata() or ():
            if key == "x-spindle-lease":
                lease_id = bytes.fromhex(value)
            elif key == "x-spindle-worker":
                named = value
            elif key == "x-spindle-resources":
                sink.resources = _parse_resources(value)
            elif key == "x-spindle-namespace":
                sink.namespace = value
        refusal = ""  # none of the lease's tasks may run here: its holder asks for another worker
        if named and named != self.cw.worker_id:  # the lease's worker exited and this one got its port
            refusal = (f"lease {lease_id.hex()[:8]} was granted on worker {named[:8]}, which is gone (this is worker "
                       f"{self.cw.worker_id[:8]} on its port)")
        elif lease_id and not self.leases.open(lease_id):  # taken back by the agent
            refusal = (f"the node agent took lease {lease_id.hex()[:8]} back before its holder used it (the holder "
                       "was stalled)")
        if refusal:
            import grpc

            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{lease_guard.REVOKED}: {refusal}; ask the agent for another")
        if lease_id and _accelerators.held(sink.resources):  # its devices must be known before its tasks run
            sink.accelerator_env = self.cw.lease_started(lease_id)
        elif lease_id:
            self.cw.io_pool.submit(self.cw.lease_started, lease_id)
        threading.Thread(target=self._read_stream, args=(requests, sink, lease_id), daemon=True,
                         name="spindle-push").start()
        return sink.batches()

    def serve_local(self, fs: FrameSocket) -> None:
        """One caller's frame stream (``_rpc.local_stream`` or ``_rpc.tcp_stream``), on its connection thread
        until it ends."""
        self._read_stream((pb.TaskBatch.FromString(f) for f in fs.frames()), Sink(DirectOut(fs, self)), b"")

    def _read_stream(self, requests: Iterator[pb.TaskBatch], sink: Sink, lease_id: bytes) -> None:
        try:
            for batch in requests:
                if batch.generator_acks:
                    self.gen_acks.update(batch.generator_acks)
                if batch.tasks:
                    self._track(batch.tasks, sink)
                for t in batch.tasks:
                    self.queue.put((t, sink))
                for tid in batch.cancel_task_ids:
                    self.cancel(tid, batch.force_cancel, batch.cancel_recursive, sink)
        except Exception:
            pass
        finally:
            sink.closed = True
            sink.q.put(None)
            if lease_id:
                # a holder that left (or died) while its task runs: this worker is not free, the agent
                # kills it rather than lend it out busy (as Ray's raylet does when a lease's owner dies)
                self.cw.holder_gone(lease_id, busy=self._busy_for(sink))

    def in_task(self) -> bool:
        return bool(self.ctx.task_id)

    def _track(self, tasks: Iterable[pb.TaskSpec], sink: Sink) -> None:
        with self.lock:
            for t in tasks:
                if not t.actor_id:
                    self.pending[t.task_id] = sink
                else:
                    self.actor_queued.add(t.task_id)
            if self.pending and not self.watching:  # wake the give-back thread (once per busy spell)
                self.watching = True
                self.lock.notify_all()

    def _give_back_loop(self) -> None:
        """Hand back the tasks queued behind a task that has run too long: they are placed elsewhere."""
        last_busy = 0.0
        with self.lock:
            while True:
                if not self.pending:
                    if time.monotonic() - last_busy > 1.0:  # idle for a while: sleep until work arrives
                        self.watching = False
                        while not self.watching:
                            self.lock.wait()
                    else:
                        self.lock.wait(_dispatch.STALL_S)
                    continue
                last_busy = time.monotonic()
                started = self.current_started
                running_for = time.monotonic() - started if started else 0.0
                if not _dispatch.should_give_back(running_for, len(self.pending)):
                    self.lock.wait(max(0.005, _dispatch.STALL_S - running_for))
                    continue
                back, self.pending = self.pending, {}
                self.skip.update(back)
                for tid, sink in back.items():
                    sink.q.put(pb.TaskResult(task_id=tid, returned=True))

    def cancel(self, task_id: bytes, force: bool, recursive: bool, sink: Sink) -> None:
        if self.actor_spec is not None:
            cancel_actor_call(self, task_id, recursive, sink)
            return
        with self.lock:
            if self.pending.pop(task_id, None) is not None:  # queued here, not started: it never runs
                self.skip.add(task_id)
                sink.q.put(pb.TaskResult(task_id=task_id, failed=True, cancelled=True))
                return
            ident = self.running.get(task_id)
            if ident is None:
                return  # already finished
            self.cancelling.add(task_id)
        if recursive:
            self.cw.submitter.cancel_children(task_id, force)
        if force:
            os._exit(1)
        if ident == self.main_ident:
            self.interrupt = task_id
            signal.pthread_kill(ident, signal.SIGINT)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT raises KeyboardInterrupt only in the task a cancel aimed at (a terminal's Ctrl-C is ignored)."""
        target = self.interrupt
        if target and target == self.interruptible:
            self.interrupt = b""
            raise KeyboardInterrupt

    def _call(self, task_id: bytes, fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run user code; a cancel of ``task_id`` raises KeyboardInterrupt inside it (main thread)."""
        if threading.get_ident() != self.main_ident:
            return fn(*args, **kwargs)
        self.interruptible = task_id
        try:
            if self.interrupt == task_id:  # cancelled while its arguments were being fetched
                self.interrupt = b""
                raise KeyboardInterrupt
            return fn(*args, **kwargs)
        finally:
            self.interruptible = b""

    def forward_logs(self, lines: Iterable[pb.LogLine]) -> None:
        sink = self.ctx.sink or self.last_sink
        for line in lines:
            if sink is not None:
                sink.q.put(line)

    def log_target(self) -> tuple[Sink | None, str]:
        sink = self.ctx.sink or self.last_sink
        return sink, self.ctx.name

    # ---------------------------------------------------------------- main loop
    def run_forever(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)
        actor_shutdown.install(self)
        while not self.exiting:
            if self.held_outs and self.queue.empty():
                self._flush_held()
            item = self.queue.get()
            if callable(item):
                item()
                continue
            spec, sink = item
            self.last_sink = sink
            if self.actor_pool is not None:
                pool = self.group_pools.get(spec.concurrency_group, self.actor_pool)
                pool.submit(task_run.execute, self, spec, sink)
            elif self.loop is not None:
                fut = asyncio.run_coroutine_threadsafe(task_run.execute_async(self, spec, sink), self.loop)
                self.async_calls.add(fut)
                fut.add_done_callback(self.async_calls.discard)
            else:
                task_run.execute(self, spec, sink)
        actor_shutdown.run(self)

    def hold(self, out: DirectOut) -> None:
        """``out`` holds results back; they go when the queue empties, or within ~2 ms (a long next call)."""
        with self.lock:
            self.held_outs.add(out)
            if self.held_event is None:
                self.held_event = threading.Event()
                threading.Thread(target=self._held_loop, daemon=True, name="spindle-result-flush").start()
        self.held_event.set()

    def _held_loop(self) -> None:
        assert self.held_event is not None
        while True:
            self.held_event.wait()
            time.sleep(0.002)
            self.held_event.clear()
            self._flush_held()

    def _flush_held(self) -> None:
        with self.lock:
            outs, self.held_outs = self.held_outs, set()
        for out in outs:
            out.flush()

    def resolve(self, args: Iterable[pb.Arg], maps: list[tuple[bytes, memoryview]] | None = None,
                 ) -> tuple[list[Any], dict[str, Any]]:
        """The call's arguments; ``maps`` collects the owner's store files read in place (to unmap after the run)."""
        pos: list[Any] = []
        kw: dict[str, Any] = {}
        for a in args:
            if maps is not None and a.value.in_store and not a.value.is_error:
                v = self.cw.materialize_arg(a.value, maps)
            elif a.value.in_store or a.value.is_error:
                v = self.cw.materialize(a.value)
            else:
                v = deserialize(a.value.inline)
            if a.keyword:
                kw[a.keyword] = v
            else:
                pos.append(v)
        return pos, kw

    def _busy_for(self, sink: Sink) -> bool:
        with self.lock:
            return any(s is sink for s in self.running_sinks.values())

    def assigned_resources(self) -> dict[str, float]:
        """What the running task holds (its lease's resources), or the actor's held resources."""
        if self.actor_spec is not None:
            return {k: v for k, v in self.actor_spec.hold.amounts.items() if v > 0}
        sink = self.ctx.sink
        return dict(sink.resources) if sink is not None and self.ctx.task_id else {}

    def _exit_now(self) -> None:
        actor_shutdown.request(self)

    # ---------------------------------------------------------------- actors
    def create_actor(self, req: pb.StartActorRequest) -> pb.StartActorReply:
        return actor_host.create(self, req)


def _parse_resources(text: str) -> dict[str, float]:
    try:
        data = json.loads(text)
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {}
