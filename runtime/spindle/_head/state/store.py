"""What the head keeps of what workers, drivers and agents report: tasks, node samples, workers.

Fed by the ``ReportTaskEvents`` and ``ReportNodeStats`` RPCs; read by the HTTP routes and the metrics
collector. Everything is bounded: the task ring (``SPINDLE_TASK_EVENTS_MAX``), errors
(``SPINDLE_ERRORS_MAX``), and per node the last ``SAMPLE_WINDOW_S`` of samples. It has its own lock so
that reading it never waits for the head's actor and membership lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from spindle._event_columns import Decoded
from spindle._event_columns import events as columns_events
from spindle._head.state.tasks import Event, TaskTable
from spindle._proto import pb

SAMPLE_WINDOW_S = 300.0
MAX_SAMPLES = 600


@dataclass
class NodeUsage:
    cpu_percent: float = 0.0
    mem_used_bytes: int = 0
    mem_total_bytes: int = 0
    object_store_used_bytes: int = 0
    object_store_total_bytes: int = 0
    log_dir: str = ""
    workers: list[pb.WorkerStat] = field(default_factory=list)
    samples: deque[tuple[float, float, int]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    updated: float = 0.0


def decode_events(batch: pb.TaskEventBatch) -> Iterable[Decoded]:
    """The batch's events in order (as ``Event`` fields): its columns, then any one message per event ones.

    Lazily (the columns are checked first: ValueError when malformed), so the merge makes no object per event."""
    columns = columns_events(batch.columns) if batch.HasField("columns") else iter(())
    if not batch.events:
        return columns
    return chain(columns, [Event(task_id=e.task_id.hex(), state=e.state, time_ms=e.time_ms, name=e.name,
                     type=e.type or "NORMAL_TASK", job_id=e.job_id.hex(), actor_id=e.actor_id.hex(), node_id=e.node_id,
                     worker_id=e.worker_id, worker_pid=e.worker_pid, error_type=e.error_type,
                     error_message=e.error_message, required_resources=dict(e.required_resources))
               for e in batch.events])


class ObservedState:
    def __init__(self, max_tasks: int | None = None):
        self.lock = threading.Lock()
        self.tasks = TaskTable(max_tasks)
        self.nodes: dict[str, NodeUsage] = {}
        self.changed = threading.Condition(self.lock)
        self.node_start_ms: dict[str, int] = {}
        self.node_end_ms: dict[str, int] = {}

    def report_tasks(self, batch: pb.TaskEventBatch) -> None:
        events = decode_events(batch)
        with self.lock:
            self.tasks.merge(events, batch.dropped)
            self.changed.notify_all()

    def report_node(self, stats: pb.NodeStats, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.lock:
            usage = self.nodes.setdefault(stats.node_id, NodeUsage())
            self.node_start_ms.setdefault(stats.node_id, int(now * 1000))
            self.node_end_ms.pop(stats.node_id, None)
            usage.cpu_percent = stats.cpu_percent
            usage.mem_used_bytes, usage.mem_total_bytes = stats.mem_used_bytes, stats.mem_total_bytes
            usage.object_store_used_bytes = stats.object_store_used_bytes
            usage.object_store_total_bytes = stats.object_store_total_bytes
            usage.log_dir = stats.log_dir
            usage.workers = list(stats.workers)
            usage.updated = now
            usage.samples.append((now, stats.cpu_percent, stats.mem_used_bytes))
            while usage.samples and usage.samples[0][0] < now - SAMPLE_WINDOW_S:
                usage.samples.popleft()
            # a worker that died mid-task never reported its end: forget what it was running
            alive = {w.worker_id for u in self.nodes.values() for w in u.workers}
            for wid in [w for w in self.tasks.current if w not in alive]:
                del self.tasks.current[wid]

    def forget_node(self, node_id: str) -> None:
        with self.lock:
            usage = self.nodes.get(node_id)
            if usage is not None:
                usage.workers = []
            self.node_end_ms[node_id] = int(time.time() * 1000)

    def usage(self, node_id: str) -> NodeUsage | None:
        return self.nodes.get(node_id)

    def snapshot_samples(self, node_id: str) -> list[dict[str, Any]]:
        usage = self.nodes.get(node_id)
        if usage is None:
            return []
        return [{"t": t, "cpu_percent": cpu, "mem_used_bytes": mem} for t, cpu, mem in usage.samples]
