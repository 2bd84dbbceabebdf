"""Actor calls to a worker on the same node, over a local socket instead of gRPC.

Split out of ``actor_client.py`` because it is a transport detail: these two adapters make a
``spindle._rpc.local_stream`` FrameSocket look like the gRPC stream the client otherwise uses
(``Conn.out`` takes batches, ``Conn.call`` yields result batches), and hold back a burst of calls
to send them together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from spindle._proto import pb
from spindle._rpc import local_stream

if TYPE_CHECKING:
    from spindle._core.actor_client import ActorClient
    from spindle._core.actor_conn import Conn


class LocalOut:
    """``Conn.out`` of a local stream: ``put`` sends the batch from the calling thread (under the client's lock).

    A call made while none is in flight (a synchronous caller) is sent at once. Calls made while others
    are in flight (a burst of ``.remote()``) are gathered and sent together when a result comes back,
    when the caller blocks in get/wait, at 256 calls, or within ~1 ms by the client's flusher thread.
    """

    def __init__(self, fs: local_stream.FrameSocket, conn: Conn, client: ActorClient):
        self.fs = fs
        self.conn = conn
        self.client = client
        self.buf: pb.TaskBatch | None = None

    def put(self, batch: pb.TaskBatch | None) -> None:
        if batch is None:
            self.fs.release()
            return
        if any(f.name != "tasks" for f, _ in batch.ListFields()):  # acks, cancels: at once, after held calls
            self.flush()
            self._send(batch)
            return
        if self.buf is None and len(self.conn.inflight) <= len(batch.tasks):
            self._send(batch)
            return
        if self.buf is None:
            self.buf = batch
            self.client.mark_dirty(self)
        else:
            self.buf.tasks.extend(batch.tasks)
        if len(self.buf.tasks) >= 256:
            self.flush()

    def flush(self) -> None:
        buf, self.buf = self.buf, None
        if buf is not None:
            self._send(buf)

    def _send(self, batch: pb.TaskBatch) -> None:
        try:
            self.fs.send(batch.SerializeToString())
        except OSError:
            self.fs.close()  # the reader sees the stream end and handles the calls in flight


class LocalCall:
    """``Conn.call`` of a local stream: iterates the worker's ResultBatch messages; ``cancel`` breaks it."""

    def __init__(self, fs: local_stream.FrameSocket):
        self.fs = fs

    def __iter__(self) -> Iterator[pb.ResultBatch]:
        for frame in self.fs.frames():
            yield pb.ResultBatch.FromString(frame)

    def cancel(self) -> None:
        self.fs.close()
