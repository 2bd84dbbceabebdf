"""Wiring the job API into the head process: where jobs live, how they reach the cluster, what fits.

Kept apart from server.py so the head's gRPC side stays about membership and actors.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from spindle._head.http_server import HttpServer, make_app
from spindle._head.jobs.manager import JobManager
from spindle._packages import PackageStore
from spindle._rpc.net import routable_ip

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState


def advertised_ip(host: str) -> str:
    """The address a process on this machine uses to reach a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return os.environ.get("SPINDLE_NODE_IP") or routable_ip()
    return host


def _fits(state: HeadState) -> object:
    def fits(resources: dict[str, float]) -> str | None:
        with state.lock:
            totals = [dict(r.info.total.amounts) for r in state.nodes.values() if r.view.alive]
        for total in totals:
            if all(total.get(k, 0.0) >= v for k, v in resources.items()):
                return None
        return (f"no node in the cluster offers the entrypoint resources {resources} (nodes offer {totals}): "
                "lower entrypoint_num_cpus/_num_gpus/_resources or add a node that has them")
    return fits


def start(*, host: str, port: int, fallback: bool, token: str, grpc_port: int, session: str, jobs_dir: str,
          state: HeadState | None, records_dir: str | None = None) -> tuple[HttpServer, JobManager]:
    ip = advertised_ip(host)
    # job records and driver logs are logs (kept with the session's); uploaded packages are a cache, removed
    # when the head stops (JobManager.shutdown)
    packages = PackageStore(os.path.join(jobs_dir, "packages"))
    manager = JobManager(records_dir or os.path.join(jobs_dir, "logs", "jobs"), packages,
                         cluster_env={"SPINDLE_ADDRESS": f"{ip}:{grpc_port}", "SPINDLE_TOKEN": token},
                         node_ip=ip, fits=_fits(state) if state is not None else None)  # type: ignore[arg-type]
    app = make_app(token, manager, packages, session, state)
    if state is not None:
        from spindle._head.state import routes as state_routes

        state_routes.install(app, state)
    server = HttpServer(app, host, port, fallback)
    return server, manager
