"""Tasks as the head saw them: a bounded ring of rows, per-function state counters and recent errors.

Events of one task come from several processes (the driver that submitted it, the worker that ran it)
and arrive in batches in any order; ``merge`` keeps the most advanced state (a terminal state is never
replaced by an earlier one, but a later terminal state of a retried task wins). The ring holds the newest
``SPINDLE_TASK_EVENTS_MAX`` tasks (default 10,000); counters and errors outlive eviction.
Pure data structures: no I/O, no threads (the caller holds the lock).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from spindle._event_columns import Decoded

RANK = {"PENDING_ARGS_AVAIL": 0, "PENDING_NODE_ASSIGNMENT": 1, "SUBMITTED_TO_WORKER": 2, "RUNNING": 3,
        "FINISHED": 4, "FAILED": 4}
TERMINAL = ("FINISHED", "FAILED")
MAX_FUNCTIONS = 1000  # distinct (name, type) counters; beyond this, names count under "<other>"
MAX_MESSAGE = 16 * 1024


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(slots=True)
class TaskRow:
    task_id: str
    name: str = ""
    state: str = "PENDING_ARGS_AVAIL"
    type: str = "NORMAL_TASK"
    job_id: str = ""
    actor_id: str | None = None
    node_id: str | None = None
    worker_id: str | None = None
    worker_pid: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    creation_time_ms: int | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    required_resources: dict[str, float] = field(default_factory=dict)
    state_time_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt_number": 0, "name": self.name, "state": self.state,
                "job_id": self.job_id, "actor_id": self.actor_id, "type": self.type,
                "func_or_class_name": self.name, "node_id": self.node_id, "worker_id": self.worker_id,
                "worker_pid": self.worker_pid, "error_type": self.error_type, "error_message": self.error_message,
                "creation_time_ms": self.creation_time_ms, "start_time_ms": self.start_time_ms,
                "end_time_ms": self.end_time_ms, "required_resources": self.required_resources}


class Event(NamedTuple):
    """One reported event (the wire's fields, decoded; a tuple, so a batch of 10,000 is cheap to build)."""
    task_id: str
    state: str
    time_ms: int
    name: str = ""
    type: str = "NORMAL_TASK"
    job_id: str = ""
    actor_id: str = ""
    node_id: str = ""
    worker_id: str = ""
    worker_pid: int = 0
    error_type: str = ""
    error_message: str = ""
    required_resources: Mapping[str, float] = MappingProxyType({})
    start_time_ms: int = 0  # an end event that also says when the task started (its RUNNING folded in)


def exception_name(message: str) -> str:
    """The exception class named on the last line of a traceback ("" if none)."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    head = lines[-1].split(":", 1)[0].strip()
    return head if head.replace(".", "").replace("_", "").isalnum() else ""


class TaskTable:
    def __init__(self, max_tasks: int | None = None, max_errors: int | None = None):
        self.max_tasks = max_tasks or env_int("SPINDLE_TASK_EVENTS_MAX", 10_000)
        self.rows: OrderedDict[str, TaskRow] = OrderedDict()
        # (name, type) -> {state: number of tasks in that state}, over every task seen (evicted ones too)
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=max_errors or env_int("SPINDLE_ERRORS_MAX", 1000))
        self.total_seen = 0
        self.evicted = 0
        self.dropped_events = 0
        self.version = 0  # bumped by every merge that changed something
        self.changed_ms = 0
        self.errors_version = 0
        # worker id -> (task id, name) running there now, as the last events said
        self.current: dict[str, tuple[str, str]] = {}

    # ---------------------------------------------------------------- ingest
    def merge(self, events: Sequence[Decoded], dropped: int = 0) -> None:
        """Events as ``Event`` tuples (or plain tuples of its fields, as ``_event_columns.decode`` makes them)."""
        self.dropped_events += dropped
        for ev in events:
            self._merge_one(ev)
        if events:
            self.version += 1
            self.changed_ms = int(time.time() * 1000)

    def _merge_one(self, ev: Decoded) -> None:
        # the hot loop of the head's event intake (one call per event): locals, no helper calls on the common path
        tid, state, t, name, kind, job, actor, node, worker, pid, etype, emsg, res, start = ev
        rows = self.rows
        row = rows.get(tid)
        fresh = row is None
        if row is None:
            row = rows[tid] = TaskRow(tid, name=name, type=kind, job_id=job)
            self.total_seen += 1
            while len(rows) > self.max_tasks:
                rows.popitem(last=False)
                self.evicted += 1
        else:
            if not row.name:
                row.name = name
            if not row.job_id:
                row.job_id = job
            if kind and kind != "NORMAL_TASK":
                row.type = kind
        if actor:
            row.actor_id = actor
        if res:
            row.required_resources = dict(res)
        if state == "RUNNING":
            row.start_time_ms = t
            self._where(row, node, worker, pid)
            if worker and row.state not in TERMINAL:  # (its end may have arrived first)
                self.current[worker] = (tid, row.name)
        elif state in TERMINAL:
            row.end_time_ms = t
            if start:
                row.start_time_ms = start
            if worker:
                self._where(row, node, worker, pid)
                if self.current.get(worker, ("",))[0] == tid:
                    del self.current[worker]
        elif state == "PENDING_NODE_ASSIGNMENT":
            row.creation_time_ms = t
        if row.creation_time_ms is None:
            row.creation_time_ms = start or t
        old = row.state
        new_rank, cur_rank = RANK.get(state, 0), RANK.get(old, 0)
        if new_rank > cur_rank or (new_rank == cur_rank and state in TERMINAL and t >= row.state_time_ms
                                   and state != old):
            row.state, row.state_time_ms = state, t
            if state == "FAILED":
                row.error_type = etype or "TASK_EXECUTION_EXCEPTION"
                row.error_message = emsg[-MAX_MESSAGE:]
                self._error(row, t, emsg)
            elif state == "FINISHED":
                row.error_type = row.error_message = None
            self._count(row, None if fresh else old, state)
        elif fresh:
            self._count(row, None, old)

    @staticmethod
    def _where(row: TaskRow, node: str, worker: str, pid: int) -> None:
        row.node_id = node or row.node_id
        row.worker_id = worker or row.worker_id
        row.worker_pid = pid or row.worker_pid

    def _count(self, row: TaskRow, old: str | None, new: str) -> None:
        key = (row.name, row.type)
        counts = self.counts.get(key)
        if counts is None:
            if len(self.counts) >= MAX_FUNCTIONS:
                key = ("<other>", row.type)
            counts = self.counts.setdefault(key, {})
        if old is not None and counts.get(old, 0) > 0:
            counts[old] -= 1
        counts[new] = counts.get(new, 0) + 1

    def _error(self, row: TaskRow, time_ms: int, error_message: str) -> None:
        message = error_message[-MAX_MESSAGE:]
        self.errors.appendleft({
            "time": time_ms / 1000.0, "task_id": row.task_id, "actor_id": row.actor_id, "name": row.name,
            "error_type": exception_name(message) or row.error_type, "message": _summary(message),
            "traceback": message, "node_id": row.node_id, "worker_pid": row.worker_pid,
            "job_id": row.job_id, "task_error_type": row.error_type})
        self.errors_version += 1

    # ---------------------------------------------------------------- queries
    def newest_first(self) -> list[TaskRow]:
        return list(reversed(self.rows.values()))  # newest first

    def get(self, task_id: str) -> TaskRow | None:
        return self.rows.get(task_id)

    def by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for counts in self.counts.values():
            for state, n in counts.items():
                if n:
                    out[state] = out.get(state, 0) + n
        return out

    def summary(self) -> dict[str, dict[str, Any]]:
        """Ray's ``summarize_tasks`` cluster summary: {name: {func_or_class_name, type, state_counts}}."""
        out: dict[str, dict[str, Any]] = {}
        for (name, kind), counts in self.counts.items():
            entry = out.setdefault(name, {"func_or_class_name": name, "type": kind, "state_counts": {}})
            for state, n in counts.items():
                if n:
                    entry["state_counts"][state] = entry["state_counts"].get(state, 0) + n
        return out

    def timeline(self, limit: int) -> list[dict[str, Any]]:
        started = [r for r in self.rows.values() if r.start_time_ms is not None]
        started.sort(key=lambda r: r.start_time_ms or 0)
        return [{"task_id": r.task_id, "name": r.name, "node_id": r.node_id, "worker_pid": r.worker_pid,
                 "worker_id": r.worker_id, "start_time_ms": r.start_time_ms, "end_time_ms": r.end_time_ms,
                 "state": r.state} for r in started[-limit:]]


def _summary(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else message
