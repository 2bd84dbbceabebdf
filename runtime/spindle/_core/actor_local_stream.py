"""Actor calls over a direct frame stream (a Unix socket on one node, TCP across nodes) instead of gRPC.

Split out of ``actor_client.py`` because it is a transport detail: ``open_stream`` picks the stream
(``spindle._rpc.local_stream`` to a worker on this node, ``spindle._rpc.tcp_stream`` to one on
another node, None to stay on gRPC), and the two adapters make its FrameSocket look like the gRPC
stream the client otherwise uses (``Conn.out`` takes batches, ``Conn.call`` yields result batches),
and hold back a burst of calls to send them together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from spindle._proto import pb, rpc
from spindle._rpc import local_stream, tcp_stream
from spindle._rpc.frame_stream import FrameSocket

if TYPE_CHECKING:
    from spindle._core.actor_client import ActorClient
    from spindle._core.actor_conn import Conn
    from spindle._core.core_worker import CoreWorker


def open_stream(cw: CoreWorker, info: pb.ActorInfo) -> FrameSocket | None:
    """A frame stream to the actor's worker: Unix socket when it shares our network namespace, TCP when it
    is on another node and serves one; None (use gRPC) when neither is on or reachable."""
    fs = local_stream.connect(info.worker_address, cw.token)
    if fs is not None or info.node_id == cw.node_id or not tcp_stream.enabled():
        return fs
    try:
        stub = cw.channels.stub(info.worker_address, rpc.CoreWorkerStub)
        port = stub.StreamPort(pb.Empty(), metadata=cw.md, timeout=5).port
    except (grpc.RpcError, ValueError):  # ValueError: the channel closed under us (shutdown)
        return None
    return tcp_stream.connect(info.worker_address, port, cw.token)


class LocalOut:
    """``Conn.out`` of a local stream: ``put`` sends the batch from the calling thread (under the client's lock).

    A call made while none is in flight (a synchronous caller) is sent at once. Calls made while others
    are in flight (a burst of ``.remote()``) are gathered and sent together when a result comes back,
    when the caller blocks in get/wait, at 256 calls, or within ~1 ms by the client's flusher thread.
    """

    def __init__(self, fs: FrameSocket, conn: Conn, client: ActorClient):
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

    def __init__(self, fs: FrameSocket):
        self.fs = fs

    def __iter__(self) -> Iterator[pb.ResultBatch]:
        for frame in self.fs.frames():
            yield pb.ResultBatch.FromString(frame)

    def cancel(self) -> None:
        self.fs.close()
