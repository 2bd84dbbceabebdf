"""Tasks as the head saw them: a bounded ring of rows, per-function state counters and recent errors.

Events of one task come from several processes (the driver that submitted it, the worker that ran it)
and arrive in batches in any order; ``merge`` keeps the most advanced state (a terminal state is never
replaced by an earlier one, but a later terminal state of a retried task wins). The ring holds the newest
``SPINDLE_TASK_EVENTS_MAX`` tasks (default 10,000); counters and errors outlive eviction.
Pure data structures: no I/O, no threads (the caller holds the lock). Every task the cluster runs passes
through ``merge``, in the process that also serves leases in an embedded cluster: it is written for speed
(rows are lists, counters and eviction settle once per batch).
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
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


# A row is a plain tuple (cheaper to make than an object, and not tracked by the GC once it has looked at it:
# the head keeps one per task), these are its fields in ``TaskRow``'s order; ``TaskRow`` is what queries get.
(TID, NAME, STATE, TYPE, JOB, ACTOR, NODE, WORKER, PID, ETYPE, EMSG, CREATED, STARTED, ENDED, RES,
 STATE_T) = range(16)
_NO_RESOURCES: dict[str, float] = {}
_SEEN: list[Any] = []  # ``merge``'s marker that a batch had an event


class TaskTable:
    def __init__(self, max_tasks: int | None = None, max_errors: int | None = None):
        self.max_tasks = max_tasks or env_int("SPINDLE_TASK_EVENTS_MAX", 10_000)
        self.rows: dict[str, Sequence[Any]] = {}  # in the order tasks were first seen (tuples: see merge)
        self._order: deque[str] = deque()  # the same ids, oldest first (evicting from a dict's front is O(n))
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
    def merge(self, events: Iterable[Decoded], dropped: int = 0) -> None:
        """Events as ``Event`` tuples (or plain tuples of its fields, as ``_event_columns.decode`` makes them).

        The head's event intake: one pass of straight-line code per event (locals, lists, no calls on the
        common path); the per-function counters and the ring's eviction are settled once per batch."""
        self.dropped_events += dropped
        rows, current, order = self.rows, self.current, self._order
        get = rows.get
        added: list[str] = []
        # state changes as parallel lists of strings, not a tuple each: nothing here for the GC to track
        in_name: list[str] = []  # a task entered (name, type, state)
        in_type: list[str] = []
        in_state: list[str] = []
        out_name: list[str] = []  # ... and left
        out_type: list[str] = []
        out_state: list[str] = []
        row: list[Any] | None = None
        for tid, state, t, name, kind, job, actor, node, worker, pid, etype, emsg, res, start in events:
            found = get(tid)
            if found is None and state == "FINISHED":
                # the common case (every actor call; a task whose submission the driver has not reported yet):
                # the general path below, specialized for a task seen for the first time, already finished
                kind = kind or "NORMAL_TASK"
                rows[tid] = (tid, name, state, kind, job, actor or None, (node or None) if worker else None,
                             worker or None, (pid or None) if worker else None, None, None, start or t, start or None,
                             t, (res if type(res) is dict else dict(res)) if res else _NO_RESOURCES, t)
                added.append(tid)
                in_name.append(name)
                in_type.append(kind)
                in_state.append(state)
                if worker in current and current[worker][0] == tid:  # (its row was evicted while it ran)
                    del current[worker]
                row = _SEEN
                continue
            if found is None:
                row = [tid, name, "PENDING_ARGS_AVAIL", kind or "NORMAL_TASK", job, None, None, None, None, None,
                       None, None, None, None, _NO_RESOURCES, 0]
                added.append(tid)
                old = None
            else:
                row = list(found)
                if not row[NAME]:
                    row[NAME] = name
                if not row[JOB]:
                    row[JOB] = job
                if kind and kind != "NORMAL_TASK":
                    row[TYPE] = kind
                old = row[STATE]
            if actor:
                row[ACTOR] = actor
            if res:
                row[RES] = res if type(res) is dict else dict(res)
            if state == "RUNNING":
                row[STARTED] = t
                row[NODE], row[WORKER], row[PID] = node or row[NODE], worker or row[WORKER], pid or row[PID]
                if worker:
                    if old not in TERMINAL:  # (its end may have arrived first)
                        current[worker] = (tid, row[NAME])
            elif state == "FINISHED" or state == "FAILED":
                row[ENDED] = t
                if start:
                    row[STARTED] = start
                if worker:
                    row[NODE], row[WORKER], row[PID] = node or row[NODE], worker, pid or row[PID]
                    if worker in current and current[worker][0] == tid:
                        del current[worker]
            elif state == "PENDING_NODE_ASSIGNMENT":
                row[CREATED] = t
            if row[CREATED] is None:
                row[CREATED] = start or t
            cur = row[STATE]
            new_rank, cur_rank = RANK.get(state, 0), RANK.get(cur, 0)
            if new_rank > cur_rank or (new_rank == cur_rank and state in TERMINAL and t >= row[STATE_T]
                                       and state != cur):
                row[STATE], row[STATE_T] = state, t
                if state == "FAILED":
                    row[ETYPE] = etype or "TASK_EXECUTION_EXCEPTION"
                    row[EMSG] = emsg[-MAX_MESSAGE:]
                    self._error(row, t, emsg)
                elif state == "FINISHED":
                    row[ETYPE] = row[EMSG] = None
                if old is not None:
                    out_name.append(row[NAME])
                    out_type.append(row[TYPE])
                    out_state.append(old)
                in_name.append(row[NAME])
                in_type.append(row[TYPE])
                in_state.append(state)
            elif old is None:
                in_name.append(row[NAME])
                in_type.append(row[TYPE])
                in_state.append(cur)
            # kept as a tuple: the GC stops tracking a tuple of plain values after one look, so 10,000 rows
            # (and every batch's new ones) cost no collection any work
            rows[tid] = tuple(row)
        if row is None:
            return  # no event
        self._count(zip(in_name, in_type, in_state, strict=True), zip(out_name, out_type, out_state, strict=True))
        if added:
            self.total_seen += len(added)
            order.extend(added)
            excess = len(rows) - self.max_tasks
            if excess > 0:
                pop = order.popleft
                for _ in range(excess):
                    del rows[pop()]
                self.evicted += excess
        self.version += 1
        self.changed_ms = int(time.time() * 1000)

    def _count(self, inc: Iterable[tuple[str, str, str]], dec: Iterable[tuple[str, str, str]]) -> None:
        """Apply a batch's state changes to the per-function counters (entries first, then exits)."""
        for sign, changes in ((1, inc), (-1, dec)):
            for (name, kind, state), n in Counter(changes).items():
                key = (name, kind)
                counts = self.counts.get(key)
                if counts is None:
                    if len(self.counts) >= MAX_FUNCTIONS:
                        key = ("<other>", kind)
                    counts = self.counts.setdefault(key, {})
                counts[state] = max(0, counts.get(state, 0) + sign * n)

    def _error(self, row: Sequence[Any], time_ms: int, error_message: str) -> None:
        message = error_message[-MAX_MESSAGE:]
        self.errors.appendleft({
            "time": time_ms / 1000.0, "task_id": row[TID], "actor_id": row[ACTOR], "name": row[NAME],
            "error_type": exception_name(message) or row[ETYPE], "message": _summary(message),
            "traceback": message, "node_id": row[NODE], "worker_pid": row[PID],
            "job_id": row[JOB], "task_error_type": row[ETYPE]})
        self.errors_version += 1

    # ---------------------------------------------------------------- queries
    def newest_first(self) -> list[TaskRow]:
        return [TaskRow(*row) for row in reversed(self.rows.values())]

    def get(self, task_id: str) -> TaskRow | None:
        row = self.rows.get(task_id)
        return None if row is None else TaskRow(*row)

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
        started = [r for r in self.rows.values() if r[STARTED] is not None]
        started.sort(key=lambda r: r[STARTED] or 0)
        return [{"task_id": r[TID], "name": r[NAME], "node_id": r[NODE], "worker_pid": r[PID],
                 "worker_id": r[WORKER], "start_time_ms": r[STARTED], "end_time_ms": r[ENDED],
                 "state": r[STATE]} for r in started[-limit:]]


def _summary(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else message
