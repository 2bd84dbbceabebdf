"""``timeline()``: the job's tasks and actor calls, as Chrome trace events.

Ray's ``ray.timeline()`` dumps recent task executions of the whole job in the Chrome tracing format
(load the JSON in chrome://tracing or Perfetto). Two sources: each result that comes back to this
process carries how long the task ran, recorded here with the worker that ran it in a bounded ring
(the most recent ``SPINDLE_TIMELINE_MAX`` tasks; one append per result), so this process's own
submissions show at once; and the head's task events (the state API's rows) add what other
workers submitted (nested tasks, calls made by actors), as soon as those workers have reported them.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

MAX_EVENTS = int(os.environ.get("SPINDLE_TIMELINE_MAX", "10000"))

# (name, task id hex, end wall-clock seconds, run seconds, worker address, failed, actor id hex)
_Record = tuple[str, str, float, float, str, bool, str]
_events: collections.deque[_Record] = collections.deque(maxlen=MAX_EVENTS)
_lock = threading.Lock()


def record(results: Iterable[pb.TaskResult], specs: Mapping[bytes, Any], worker_address: str) -> None:
    """Note finished tasks; ``specs`` maps task id to anything with ``.spec`` (a Task or an ActorCall)."""
    now = time.time()
    rows = []
    for r in results:
        if r.returned:
            continue
        holder = specs.get(r.task_id)
        if holder is None:
            continue
        spec = holder.spec
        rows.append((spec.name, r.task_id.hex(), now, r.exec_seconds, worker_address, r.failed, spec.actor_id.hex()))
    if rows:
        with _lock:
            _events.extend(rows)


def chrome_trace(cw: CoreWorker | None = None) -> list[dict[str, Any]]:
    """The job's tasks as Chrome trace "complete" events (ph "X", microseconds), oldest first."""
    out = _local_events()
    if cw is not None:
        seen = {e["args"]["task_id"] for e in out}
        out.extend(e for e in _job_events(cw) if e["args"]["task_id"] not in seen)
        out.sort(key=lambda e: e["ts"])
    return out


def _job_events(cw: CoreWorker) -> list[dict[str, Any]]:
    """The job's finished tasks the head knows of (every worker's), from the state API."""
    from spindle.util.state import list_tasks

    try:
        rows = list_tasks(filters=[("job_id", "=", cw.job_id.hex())], limit=MAX_EVENTS, detail=True, timeout=10)
    except Exception:  # noqa: BLE001 - the head's HTTP API unreachable: this process's own view still answers
        return []
    out: list[dict[str, Any]] = []
    for r in rows:
        start, end = r.get("start_time_ms"), r.get("end_time_ms")
        if not start or not end or r.get("state") not in ("FINISHED", "FAILED"):
            continue
        name = str(r.get("name") or r.get("func_or_class_name") or "task")
        worker = str(r.get("worker_id") or "")
        failed = r.get("state") == "FAILED"
        args: dict[str, Any] = {"task_id": r.get("task_id"), "worker": worker, "failed": failed,
                                "worker_pid": r.get("worker_pid")}
        if r.get("actor_id"):
            args["actor_id"] = r.get("actor_id")
        out.append({"cat": "task::" + name, "name": name, "pid": f"Node {r.get('node_id') or ''}",
                    "tid": f"worker {worker}", "ph": "X", "ts": start * 1e3, "dur": max(end - start, 0) * 1e3,
                    "cname": "rail_response" if failed else "generic_work", "args": args})
    return out


def _local_events() -> list[dict[str, Any]]:
    with _lock:
        rows = list(_events)
    out: list[dict[str, Any]] = []
    for name, task_id, end, run_s, worker, failed, actor_id in rows:
        start = end - run_s
        host = worker.rsplit(":", 1)[0]
        args: dict[str, Any] = {"task_id": task_id, "worker": worker, "failed": failed}
        if actor_id:
            args["actor_id"] = actor_id
        out.append({"cat": "task::" + name, "name": name, "pid": f"Node {host}", "tid": f"worker {worker}",
                    "ph": "X", "ts": start * 1e6, "dur": max(run_s, 0.0) * 1e6,
                    "cname": "rail_response" if failed else "generic_work", "args": args})
    return out
