"""Lineage: how the owner recomputes a task output whose only copy died with its node.

A task's large returns live in the store of the node that ran it. When that node dies the value
is gone, but the owner still holds the task that made it: as in Ray's object reconstruction, it
submits that task again (same task id and return ids) within the task's ``max_retries``. Only
tasks with a return in a store are kept (inline values live in the owner's memory), and only
while one of their returns is still referenced. Values made by ``put()`` have no lineage: losing
them raises ``ObjectLostError``, as in Ray.

The task's arguments are resent as they were resolved the first time; an argument whose own
value died too is rebuilt first when this process owns it (the worker reports which arguments
it could not fetch).
"""

from __future__ import annotations

import threading
from typing import Any


class Lineage:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[bytes, Any] = {}  # return id -> the submitter's Task that made it

    def record(self, task: Any, any_in_store: bool) -> None:
        if not any_in_store:
            return
        with self.lock:
            for rid in task.spec.return_ids:
                self.tasks[rid] = task

    def get(self, oid: bytes) -> Any:
        with self.lock:
            return self.tasks.get(oid)

    def forget(self, oid: bytes) -> None:
        with self.lock:
            self.tasks.pop(oid, None)

