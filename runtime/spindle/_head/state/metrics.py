"""Prometheus metrics of the cluster, served by the head on the metrics port (default 8080) at ``/metrics``.

A ``prometheus_client`` collector reads the head's state at scrape time (nothing is updated on the hot
path). The collectors and ``prometheus_client`` itself load at the first scrape, not with the head: ~1 MiB
(with ``urllib.request`` and ``http.server``, which it imports) of every idle head that nobody scrapes. The server is aiohttp with the same token check as the job API (``Authorization: Bearer <token>``),
bound like the head. Metric names are listed in the README (``spindle_*``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from spindle._head.http_server import HttpServer, _auth_middleware
from spindle._head.state import rows

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from spindle._head.head_state import HeadState
    from spindle._head.jobs.manager import JobManager

DEFAULT_PORT = 8080
ACTOR_STATES = ("PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD")


class ClusterCollector:  # a prometheus_client collector (the registry needs only ``collect``)
    def __init__(self, head: HeadState, manager: JobManager | None = None):
        self.head = head
        self.manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        head, obs = self.head, self.head.observed
        node_rows = rows.nodes(head, obs)
        alive = [n for n in node_rows if n["state"] != "DEAD"]
        res_total = GaugeMetricFamily("spindle_cluster_resources_total", "Resources of the live nodes, summed",
                                      labels=["resource"])
        res_used = GaugeMetricFamily("spindle_cluster_resources_used", "Resources in use on the live nodes, summed",
                                     labels=["resource"])
        total: dict[str, float] = {}
        used: dict[str, float] = {}
        for n in alive:
            for k, v in n["resources_total"].items():
                total[k] = total.get(k, 0.0) + v
                used[k] = used.get(k, 0.0) + max(0.0, v - n["resources_available"].get(k, 0.0))
        for k in sorted(total):
            res_total.add_metric([k], total[k])
            res_used.add_metric([k], used[k])
        yield res_total
        yield res_used
        nodes = GaugeMetricFamily("spindle_cluster_nodes", "Nodes by state", labels=["state"])
        for state in ("ALIVE", "DRAINING", "DEAD"):
            nodes.add_metric([state], sum(1 for n in node_rows if n["state"] == state))
        yield nodes
        cpu = GaugeMetricFamily("spindle_node_cpu_percent", "CPU use of the node's machine (percent of all cores)",
                                labels=["node_id", "node_ip"])
        cpus = GaugeMetricFamily("spindle_node_cpus", "CPU resource of the node", labels=["node_id", "node_ip"])
        cpus_used = GaugeMetricFamily("spindle_node_cpus_used", "CPU resource in use on the node",
                                      labels=["node_id", "node_ip"])
        mem = GaugeMetricFamily("spindle_node_mem_used_bytes", "Memory used on the node's machine",
                                labels=["node_id", "node_ip"])
        mem_total = GaugeMetricFamily("spindle_node_mem_total_bytes", "Memory of the node's machine",
                                      labels=["node_id", "node_ip"])
        store = GaugeMetricFamily("spindle_node_object_store_used_bytes", "Bytes of objects in the node's store memory",
                                  labels=["node_id", "node_ip"])
        store_total = GaugeMetricFamily("spindle_node_object_store_total_bytes", "The node's object store budget",
                                        labels=["node_id", "node_ip"])
        for n in alive:
            labels = [n["node_id"], n["node_ip"]]
            c = n["resources_total"].get("CPU", 0.0)
            cpus.add_metric(labels, c)
            cpus_used.add_metric(labels, max(0.0, c - n["resources_available"].get("CPU", 0.0)))
            if n["cpu_percent"] is not None:
                cpu.add_metric(labels, n["cpu_percent"])
                mem.add_metric(labels, n["mem_used_bytes"] or 0)
                mem_total.add_metric(labels, n["mem_total_bytes"] or 0)
                store.add_metric(labels, n["object_store_used_bytes"] or 0)
                store_total.add_metric(labels, n["object_store_total_bytes"] or 0)
        yield from (cpu, cpus, cpus_used, mem, mem_total, store, store_total)
        worker_rows = rows.workers(head, obs)
        workers = GaugeMetricFamily("spindle_node_workers", "Worker processes of the node", labels=["node_id"])
        per_node: dict[str, int] = {}
        for w in worker_rows:
            if w["worker_type"] == "WORKER":
                per_node[w["node_id"]] = per_node.get(w["node_id"], 0) + 1
        for nid, count in sorted(per_node.items()):
            workers.add_metric([nid], count)
        yield workers
        actors = GaugeMetricFamily("spindle_actors", "Actors by state", labels=["state"])
        by_state: dict[str, int] = dict.fromkeys(ACTOR_STATES, 0)
        for a in rows.actors(head, obs):
            by_state[a["state"]] = by_state.get(a["state"], 0) + 1
        for state, n_actors in by_state.items():
            actors.add_metric([state], n_actors)
        yield actors
        tasks = GaugeMetricFamily("spindle_tasks", "Tasks (every one recorded) by current state and function",
                                  labels=["state", "name"])
        with obs.lock:
            counts = [(name, dict(c)) for (name, _), c in obs.tasks.counts.items()]
            dropped, evicted, seen = obs.tasks.dropped_events, obs.tasks.evicted, obs.tasks.total_seen
        for name, c in sorted(counts):
            for state, n_tasks in sorted(c.items()):
                tasks.add_metric([state, name], n_tasks)
        yield tasks
        recorded = CounterMetricFamily("spindle_task_events_tasks", "Tasks the head has recorded")
        recorded.add_metric([], seen)
        yield recorded
        dropped_m = CounterMetricFamily("spindle_task_events_dropped", "Task events reporters dropped (head unreachable)")
        dropped_m.add_metric([], dropped)
        yield dropped_m
        evicted_m = CounterMetricFamily("spindle_task_events_evicted", "Task rows evicted from the bounded ring")
        evicted_m.add_metric([], evicted)
        yield evicted_m
        jobs = GaugeMetricFamily("spindle_jobs", "Jobs by status (submitted jobs and connected drivers)",
                                 labels=["status"])
        job_counts: dict[str, int] = {}
        for j in rows.jobs(head, self.manager):
            job_counts[str(j.get("status"))] = job_counts.get(str(j.get("status")), 0) + 1
        for status, count in sorted(job_counts.items()):
            jobs.add_metric([status], count)
        yield jobs


def make_registry(head: HeadState, manager: JobManager | None = None) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    from spindle._head.state.user_metrics import UserMetricsCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(head, manager))
    registry.register(UserMetricsCollector(head))  # spindle.util.metrics, as ray_<name>
    return registry


def make_app(token: str, head: HeadState, manager: JobManager | None) -> web.Application:
    app = web.Application(middlewares=[_auth_middleware(token)], client_max_size=4096)
    registry: list[CollectorRegistry] = []  # made at the first scrape
    lock = threading.Lock()

    def render() -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        with lock:
            if not registry:
                registry.append(make_registry(head, manager))
        return generate_latest(registry[0]), CONTENT_TYPE_LATEST

    async def metrics(request: web.Request) -> web.Response:
        import asyncio

        body, content_type = await asyncio.get_running_loop().run_in_executor(None, render)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/metrics", metrics)
    return app


def start(head: HeadState, manager: JobManager | None, token: str, host: str, port: int,
          fallback: bool) -> HttpServer:
    try:
        return HttpServer(make_app(token, head, manager), host, port, fallback)
    except OSError as e:
        raise OSError(e.errno, str(e).replace("job API", "metrics").replace("--dashboard-port", "--metrics-port")) from None
