"""The way a worker's results travel back to the caller that sent the tasks.

Split out of the executor because it is the one part that knows about transports: a gRPC
PushTasks stream drains a ``Sink``'s queue into ResultBatch messages, and a frame stream
(``_rpc.local_stream`` or ``_rpc.tcp_stream``) uses a ``DirectOut`` that sends from the producing thread itself, holding
results back briefly while more calls wait so they go together.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from spindle._proto import pb
from spindle._rpc.frame_stream import FrameSocket

if TYPE_CHECKING:
    from spindle._core.executor import Executor


class Sink:
    """The way back to one lease holder: a queue drained into ResultBatch messages."""

    def __init__(self, q: Any = None) -> None:
        # q.put(TaskResult | LogLine | None); a DirectOut sends from the putting thread itself
        self.q: Any = q if q is not None else queue.SimpleQueue()
        self.closed = False  # the caller is gone: its queued tasks are dropped
        self.resources: dict[str, float] = {}  # what the lease behind this stream holds (get_assigned_resources)
        self.namespace = ""  # the submitting job's namespace
        self.accelerator_env: dict[str, str] = {}  # the lease's devices (CUDA_VISIBLE_DEVICES, ...), set per task

    def batches(self) -> Iterator[pb.ResultBatch]:
        while True:
            item = self.q.get()
            if item is None:
                return
            batch = pb.ResultBatch()
            while item is not None:
                if isinstance(item, pb.LogLine):
                    batch.logs.append(item)
                else:
                    batch.results.append(item)
                try:
                    item = self.q.get_nowait()
                except queue.Empty:
                    break
            yield batch
            if item is None:
                return


class DirectOut:
    """A Sink's queue for a local stream: results are sent by the thread that produces them.

    The executor's main thread holds its results back while more calls wait in its queue and sends
    them together once the queue is empty (or 64 are held); an async actor's results produced in one
    turn of its event loop go together too. Any other thread sends at once.
    """

    def __init__(self, fs: FrameSocket, executor: Executor):
        self.fs = fs
        self.executor = executor
        self.lock = threading.Lock()
        self.held: list[pb.TaskResult | pb.LogLine] = []
        self.scheduled = False

    def put(self, item: pb.TaskResult | pb.LogLine | None) -> None:
        if item is None:
            self.flush()
            self.fs.close()
            return
        ex = self.executor
        with self.lock:
            self.held.append(item)
            n = len(self.held)
            if n < 64 and threading.get_ident() == ex.main_ident and not ex.queue.empty():
                ex.hold(self)
                return
            loop = ex.loop
            if loop is not None and n < 64 and threading.get_ident() == ex.loop_ident:
                if not self.scheduled:
                    self.scheduled = True
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        with self.lock:
            held, self.held = self.held, []
            self.scheduled = False
            if not held:
                return
            batch = pb.ResultBatch()
            for item in held:
                if isinstance(item, pb.LogLine):
                    batch.logs.append(item)
                else:
                    batch.results.append(item)
            try:
                self.fs.send(batch.SerializeToString())
            except OSError:
                self.fs.close()  # the caller is gone; it learns what happened from the head
