"""The gRPC face of a driver or worker: what other processes may ask of its CoreWorker.

Split out of ``core_worker.py`` so the servicer stays a thin shell: each RPC forwards to the
CoreWorker (objects it owns), its executor (tasks and actor creation, workers only) or the
cancel protocol, and a driver refuses what only workers do with a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from spindle._proto import pb, rpc

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker


class CoreWorkerServicer(rpc.CoreWorkerServicer):
    def __init__(self, cw: CoreWorker):
        self.cw = cw

    def PushTasks(self, request_iterator: Iterator[pb.TaskBatch], context: Any) -> Iterator[pb.ResultBatch]:
        if self.cw.executor is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this process is a driver; it does not run tasks")
        return self.cw.executor.push_tasks(request_iterator, context)

    def GetObject(self, request: pb.GetObjectRequest, context: Any) -> pb.ObjectValue:
        return self.cw.serve_object(request.object_id, request.timeout_s or 30.0, context)

    def CreateActor(self, request: pb.StartActorRequest, context: Any) -> pb.StartActorReply:
        if self.cw.executor is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this process is a driver; it does not host actors")
        return self.cw.executor.create_actor(request)

    def RevokeLease(self, request: pb.ReturnLeaseRequest, context: Any) -> pb.LeaseState:
        """Our agent takes back a lease its holder has not used yet (see ``lease_guard``)."""
        if self.cw.executor is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this process is a driver; it holds no lease")
        return pb.LeaseState(revoked=self.cw.executor.leases.revoke(request.lease_id))

    def StreamPort(self, request: pb.Empty, context: Any) -> pb.StreamPortReply:
        """Where a caller on another node opens its actor-call stream to this worker (``_rpc.tcp_stream``)."""
        stream = self.cw.executor.tcp_stream if self.cw.executor is not None else None
        return pb.StreamPortReply(port=stream.port() if stream is not None else 0)

    def NodesDied(self, request: pb.DeadNodes, context: Any) -> pb.Empty:
        """Our agent heard from the head that these nodes died (``_agent.death_notice``): drop what we have there."""
        if len(request.node_ids) != len(request.addresses):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"DeadNodes has {len(request.node_ids)} node IDs but "
                          f"{len(request.addresses)} addresses: give one address per node, in the same order")
        self.cw.nodes_died(dict(zip(request.node_ids, request.addresses, strict=True)))
        return pb.Empty()

    def CancelTask(self, request: pb.CancelTaskRequest, context: Any) -> pb.Empty:
        from spindle._core.cancel import cancel_owned

        try:
            cancel_owned(self.cw, request.object_id, request.force, request.recursive)
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return pb.Empty()

    def Exit(self, request: pb.Empty, context: Any) -> pb.Empty:
        import os

        os._exit(0)
