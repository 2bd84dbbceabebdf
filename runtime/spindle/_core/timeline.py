"""``timeline()``: the tasks and actor calls this process submitted, as Chrome trace events.

Ray's ``ray.timeline()`` dumps recent task executions in the Chrome tracing format (load the JSON in
chrome://tracing or Perfetto). Each result that comes back carries how long the task ran; the
submitter records it here with the worker that ran it, in a bounded ring (the most recent
``SPINDLE_TIMELINE_MAX`` tasks), so recording costs one append per result.
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
    """The recorded tasks as Chrome trace "complete" events (ph "X", microseconds), oldest first."""
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
