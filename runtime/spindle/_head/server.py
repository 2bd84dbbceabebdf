"""The head process: its gRPC servicer (thin: every call forwards to ``HeadState``) and its start-up.

The head is deliberately off the per-task path: drivers lease workers from node agents and push
tasks to them directly. It is on the path only for things that need one source of truth: which
nodes are alive (heartbeats), where each actor lives and whether it restarts, and named lookups.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from spindle import _ids, _sessions
from spindle import _membership as membership
from spindle._head import package_service
from spindle._head.head_state import HeadState
from spindle._head.tables import open_tables
from spindle._local_cluster import announce, service_setup
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels, make_server

log = logging.getLogger("spindle.head")


class HeadServicer(rpc.HeadServicer):
    def __init__(self, state: HeadState):
        self.s = state

    def RegisterNode(self, request: pb.RegisterNodeRequest, context: Any) -> pb.RegisterNodeReply:
        self.s.register_node(request.node, list(request.actors), request.rejoining, list(request.bundles))
        return pb.RegisterNodeReply(session=self.s.session)

    def Heartbeat(self, request: pb.HeartbeatRequest, context: Any) -> pb.ClusterView:
        return self.s.heartbeat(request.node_id, request.available,
                                request.usage if request.HasField("usage") else None, request.draining)

    def GetClusterView(self, request: pb.Empty, context: Any) -> pb.ClusterView:
        with self.s.lock:
            return self.s.cluster_view()

    def RegisterJob(self, request: pb.RegisterJobRequest, context: Any) -> pb.RegisterJobReply:
        return pb.RegisterJobReply(job_id=self.s.register_job(request), session=self.s.session)

    def WatchJob(self, request: pb.WatchJobRequest, context: Any) -> Iterator[pb.Empty]:
        done = threading.Event()
        context.add_callback(done.set)
        while not done.wait(5.0):
            yield pb.Empty()
        self.s.job_finished(request.job_id)

    def CreateActor(self, request: pb.CreateActorRequest, context: Any) -> pb.ActorInfo:
        return self.s.create_actor(request)

    def GetActor(self, request: pb.GetActorRequest, context: Any) -> pb.ActorInfo:
        return self.s.get_actor(request)

    def KillActor(self, request: pb.KillActorRequest, context: Any) -> pb.Empty:
        self.s.kill_actor(request.actor_id, request.no_restart, request.reason, request.graceful)
        return pb.Empty()

    def ReportWorkerExit(self, request: pb.WorkerExit, context: Any) -> pb.Empty:
        if request.actor_id:
            self.s.actor_exited(request.actor_id, request.incarnation, request.reason, request.intended,
                                request.worker_id)
        if request.worker_id:  # a recycled task worker keeps the actors it made (Ray never recycles an owner)
            self.s.owner_died(worker_id=request.worker_id, recycled=request.intended and not request.actor_id)
        return pb.Empty()

    def KvPut(self, request: pb.KvRequest, context: Any) -> pb.KvReply:
        with self.s.lock:
            found = request.key in self.s.kv
            if request.overwrite or not found:
                self.s.kv[request.key] = request.value
                self.s.recovery.save_kv(request.key)
        return pb.KvReply(found=found)

    def KvGet(self, request: pb.KvRequest, context: Any) -> pb.KvReply:
        if request.key == _sessions.SESSION_NAME_KEY:  # read-only, like Ray's session_name key in its internal KV
            return pb.KvReply(found=True, value=self.s.session.encode())
        with self.s.lock:
            v = self.s.kv.get(request.key)
        return pb.KvReply(found=v is not None, value=v or b"")

    def CreatePlacementGroup(self, request: pb.PlacementGroupSpec, context: Any) -> pb.PlacementGroupInfo:
        return self.s.pgs.create(request)

    def GetPlacementGroup(self, request: pb.GetPlacementGroupRequest, context: Any) -> pb.PlacementGroupInfo:
        return self.s.pgs.get(request)

    def RemovePlacementGroup(self, request: pb.GetPlacementGroupRequest, context: Any) -> pb.Empty:
        self.s.pgs.remove(request.pg_id)
        return pb.Empty()

    def ListPlacementGroups(self, request: pb.Empty, context: Any) -> pb.PlacementGroupList:
        return self.s.pgs.table()
    def PutPackage(self, request: pb.PackageRequest, context: Any) -> pb.PackageReply:
        return package_service.put(self.s.package_store(), request, context)

    def GetPackage(self, request: pb.PackageRequest, context: Any) -> pb.PackageReply:
        return package_service.get(self.s.package_store(), request, context)

    def ReportDemand(self, request: pb.DemandReport, context: Any) -> pb.Empty:
        with self.s.lock:
            self.s.autoscaler.report_demand(request.reporter, request.shapes, time.monotonic())
        return pb.Empty()

    def RequestResources(self, request: pb.ResourceRequest, context: Any) -> pb.Empty:
        with self.s.lock:
            self.s.autoscaler.request_resources(dict(b.amounts) for b in request.bundles)
        return pb.Empty()

    def ReportTaskEvents(self, request: pb.TaskEventBatch, context: Any) -> pb.Empty:
        try:
            self.s.observed.report_tasks(request)
        except ValueError as e:  # a malformed batch: the reporter drops and counts it rather than resending it
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return pb.Empty()

    def ReportNodeStats(self, request: pb.NodeStats, context: Any) -> pb.Empty:
        self.s.observed.report_node(request)
        return pb.Empty()


def serve(host: str, port: int, token: str, storage: str | None = None) -> tuple[grpc.Server, HeadState, int]:
    state = HeadState(Channels(token), session=_ids.new_id().hex()[:12], tables=open_tables(storage))
    server, bound = make_server(token, host, port, max_workers=64)
    rpc.add_HeadServicer_to_server(HeadServicer(state), server)
    server.start()
    state.recovery.start()

    def monitor() -> None:
        while True:
            time.sleep(membership.CHECK_INTERVAL_S)
            try:
                state.check_nodes()
            except Exception:  # the monitor must outlive any one bad check
                log.exception("node check failed")

    threading.Thread(target=monitor, daemon=True, name="node-monitor").start()
    return server, state, bound


@dataclass
class Started:
    """A head that serves (gRPC, and the job API and metrics when asked), not yet announced."""
    server: grpc.Server
    state: HeadState
    lines: list[str]  # the start-up markers, the gRPC port first: starters wait for it
    stoppers: list[Any]
    provider: Any  # the local autoscaler's provider, started after the announcement


def start(argv: list[str] | None = None, role: str = "head") -> Started:
    p = argparse.ArgumentParser(prog="spindle-head", description="Run a Spindle head process.")
    p.add_argument("--host", default=os.environ.get("SPINDLE_NODE_IP") or "127.0.0.1",
                   help="address to listen on (default: SPINDLE_NODE_IP, else 127.0.0.1; 0.0.0.0 = every address)")
    p.add_argument("--port", type=int, default=6380)
    p.add_argument("--storage", default=None, help="SQLite file for the head's tables (default: SPINDLE_HEAD_STORAGE; "
                   "none = in memory, lost when the head restarts)")
    p.add_argument("--dashboard-port", type=int, default=None,
                   help="port of the HTTP job API (default 8265, or any free port when 8265 is taken; 0 = any free "
                        "port, -1 = none; an explicit port must be free)")
    p.add_argument("--dashboard-port-fallback", action="store_true",
                   help="use any free port when --dashboard-port is taken (embedded clusters)")
    p.add_argument("--session-dir", default=None, help="where job logs and uploaded packages are kept")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="port of the Prometheus metrics (/metrics; default 8080, or any free port when 8080 is taken; "
                        "-1 = none; an explicit port must be free; default from SPINDLE_METRICS_PORT)")
    from spindle.autoscaler import local as autoscale_local

    autoscale_local.add_head_args(p)
    args = p.parse_args(argv)
    token = service_setup(role)
    try:
        server, state, bound = serve(args.host, args.port, token, args.storage)
    except OSError as e:
        raise SystemExit(f"spindle head: {e}") from None
    lines = [f"SPINDLE_HEAD_PORT={bound}"]
    stoppers: list[Any] = []
    if args.dashboard_port is None:
        args.dashboard_port, args.dashboard_port_fallback = 8265, True
    if args.dashboard_port >= 0:
        from spindle._head.jobs import service as job_service

        session_dir = args.session_dir or _sessions.private_dir(os.path.join(_sessions.root(), f"head_{state.session}"))
        storage = args.storage or os.environ.get("SPINDLE_HEAD_STORAGE", "")
        # with storage, job records and logs sit beside it (e.g. on the head pod's volume) and outlive a restart
        records = os.path.join(os.path.dirname(os.path.abspath(storage)), "spindle-jobs") if storage else None
        try:
            http, jobs = job_service.start(host=args.host, port=args.dashboard_port,
                                           fallback=args.dashboard_port_fallback, token=token, grpc_port=bound,
                                           session=state.session, jobs_dir=session_dir, state=state,
                                           records_dir=records)
        except OSError as e:
            raise SystemExit(f"spindle head: {e}") from None
        if args.metrics_port is None and os.environ.get("SPINDLE_METRICS_PORT"):
            try:
                args.metrics_port = int(os.environ["SPINDLE_METRICS_PORT"])
            except ValueError:
                raise SystemExit(f"spindle head: SPINDLE_METRICS_PORT={os.environ['SPINDLE_METRICS_PORT']!r} is not "
                                 "a port number (-1 = no metrics)") from None
        metrics_port, metrics_fallback = (8080, True) if args.metrics_port is None else (args.metrics_port, False)
        if metrics_port >= 0:
            from spindle._head.state import metrics

            try:
                served = metrics.start(state, jobs, token, args.host, metrics_port, metrics_fallback)
            except OSError as e:
                raise SystemExit(f"spindle head: {e}") from None
            lines.append(f"SPINDLE_METRICS_PORT={served.port}")
        lines.append(f"SPINDLE_DASHBOARD_PORT={http.port}")
        state.packages = jobs.packages  # one package store for the job API and runtime_env
        stoppers.append(jobs.shutdown)
    provider = autoscale_local.from_head_args(args, state, bound, token)
    if provider is not None:
        stoppers.insert(0, provider.shutdown)  # its agents stop cleanly before the head goes
    return Started(server, state, lines, stoppers, provider)


def main(argv: list[str] | None = None) -> None:
    head = start(argv)
    if head.stoppers:
        def on_term(*_: Any) -> None:
            for stop in head.stoppers:
                stop()
            os._exit(0)

        signal.signal(signal.SIGTERM, on_term)
    announce("\n".join(head.lines))  # the gRPC port first: starters wait for it
    if head.provider is not None:
        head.provider.start()
    head.server.wait_for_termination()


if __name__ == "__main__":
    main()
