"""Task events for the state API, recorded on the hot path for the price of a list append.

Workers record when a task starts and ends, drivers when they submit one and when they give up on it.
Each event is appended to one flat list, its fields end to end (one ``list.extend`` of a tuple the
interpreter frees at once: atomic under the GIL, and nothing left for the GC to track); a daemon thread drains it every
``SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS`` (default 1000; 0 = no events at all, as Ray's
``RAY_task_events_report_interval_ms``) and sends it to the head as one ``ReportTaskEvents`` call, encoded as
columns (``spindle._event_columns.encode_flat``: a column is one slice of the flat list, not a protobuf message
per event nor a transposition of tuples). While the
head is unreachable at most ``MAX_BUFFERED`` events wait; older ones are dropped and counted, never blocking
a task. A task's start is not an event of its own: ``running`` notes it in a dict and ``finished`` takes it
out into the end event (one event per task for the head to merge, nothing to pair up at flush time); only
a task still running when a batch goes out is reported as RUNNING (once), so the dashboard shows what each
worker runs now.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from spindle._event_columns import FIELDS, Event, encode_flat
from spindle._proto import pb

MAX_BUFFERED = 20_000


def report_interval_s() -> float:
    raw = os.environ.get("SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS", "1000")
    try:
        return max(0.0, float(raw) / 1000.0)
    except ValueError:
        raise ValueError(f"SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS={raw!r} is not a number of milliseconds "
                         "(0 turns task events off)") from None


def _now_ms() -> int:
    return int(time.time() * 1000)


class TaskEvents:
    """The per-process buffer; ``send`` delivers one batch (to the head) and raises on failure."""

    def __init__(self, send: Callable[[pb.TaskEventBatch], None], node_id: Callable[[], str], worker_id: str,
                 pid: int, interval_s: float | None = None):
        self.interval = report_interval_s() if interval_s is None else interval_s
        self.enabled = self.interval > 0
        self._send = send
        self._node_id = node_id
        self._worker_id = worker_id
        self._pid = pid
        # the flat buffer, never swapped out: a recording thread that is preempted between looking the buffer up and
        # extending it still extends the one buffer the reporter drains (a swapped-out list could already have
        # been sent, losing the event); the reporter takes events from its front only, recorders add at its end
        self._flat: list[Any] = []
        self._flush_lock = threading.Lock()  # one drain at a time (the loop's and close()'s)
        self._running: dict[bytes, Event] = {}
        self._reported: set[bytes] = set()  # of those, the ones whose RUNNING event the head has (reporter only)
        self._dropped = 0
        self._closed = threading.Event()
        if self.enabled:
            threading.Thread(target=self._loop, daemon=True, name="spindle-task-events").start()

    # ---------------------------------------------------------------- recording (hot path)
    def submitted(self, task_id: bytes, name: str, job_id: bytes, resources: Any) -> None:
        """``resources``: a mapping, or (cheaper to batch) a sorted tuple of (name, amount) pairs."""
        if self.enabled:
            self._flat.extend((task_id, "PENDING_NODE_ASSIGNMENT", _now_ms(), name, "NORMAL_TASK", job_id, b"",
                               "", "", resources, False, 0))

    def running(self, task_id: bytes, name: str, job_id: bytes, actor_id: bytes, kind: str = "") -> None:
        if self.enabled:
            running = self._running
            running[task_id] = (task_id, "RUNNING", _now_ms(), name, kind or _kind(actor_id), job_id, actor_id,
                                "", "", None, True, 0)
            if len(running) > MAX_BUFFERED:  # a start whose end never came: forget the oldest
                running.pop(next(iter(running)), None)

    def finished(self, task_id: bytes, name: str, job_id: bytes, actor_id: bytes, error_type: str = "",
                 error_message: str = "", kind: str = "", ran_here: bool = True) -> None:
        """The task ended here (``ran_here``), or its owner gave up on it (e.g. its worker died)."""
        if self.enabled:
            start = self._running.pop(task_id, None) if ran_here else None
            self._flat.extend((task_id, "FAILED" if error_type else "FINISHED", _now_ms(), name,
                               kind or _kind(actor_id), job_id, actor_id, error_type, error_message, None, ran_here,
                               start[2] if start is not None else 0))

    # ---------------------------------------------------------------- reporting (background)
    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        flat = self._flat
        n = len(flat)  # whole events only: every recording adds its FIELDS values in one atomic extend
        buf = flat[:n]
        del flat[:n]  # recorders only append at the end meanwhile: exactly the values taken go
        recorded = n // FIELDS
        # after the drain: a task that ends meanwhile has left the dict, so its end goes with the next batch
        running = self._running.copy()
        if running:
            reported = self._reported
            for tid, ev in running.items():
                if tid not in reported:
                    buf.extend(ev)
            self._reported = set(running)  # only what still runs: a task reported RUNNING is not reported again
        if not buf:
            return
        batch = encode_flat(buf, self._node_id(), self._worker_id, self._pid, self._dropped)
        try:
            self._send(batch)
            self._dropped = 0
        except grpc.RpcError as e:
            total = len(buf) // FIELDS
            if _code(e) == grpc.StatusCode.INVALID_ARGUMENT:  # the head refused this batch: resending won't help
                self._dropped += total
                return
            keep_from = max(0, total - MAX_BUFFERED)  # the newest MAX_BUFFERED events stay, the rest are counted
            self._dropped += keep_from
            self._reported.difference_update(buf[k * FIELDS] for k in range(max(keep_from, recorded), total))
            flat[0:0] = buf[keep_from * FIELDS:recorded * FIELDS]  # not RUNNING ones (the dict still has those)

    def close(self) -> None:
        if self.enabled and not self._closed.is_set():
            self._closed.set()
            try:
                self.flush()
            except Exception:  # shutting down: the head may be gone already
                pass


def _code(e: grpc.RpcError) -> Any:
    code = getattr(e, "code", None)
    return code() if callable(code) else None


def _kind(actor_id: bytes) -> str:
    return "ACTOR_TASK" if actor_id else "NORMAL_TASK"


def error_fields(result: pb.TaskResult) -> tuple[str, str]:
    """(Ray's error_type, message with the traceback) of a failed result; ("", "") for a success."""
    if not result.failed:
        return "", ""
    if result.cancelled:
        return "TASK_CANCELLED", "the task was cancelled"
    kind = "TASK_EXECUTION_EXCEPTION" if result.app_error else "ACTOR_DIED"
    return kind, result.error_text or "the task failed"


def exception_error_type(exc: BaseException) -> str:
    """Ray's error_type for an exception a driver gives a task when it gives up on it."""
    name = type(exc).__name__
    return {"WorkerCrashedError": "WORKER_DIED", "NodeDiedError": "NODE_DIED", "TaskCancelledError": "TASK_CANCELLED",
            "ActorDiedError": "ACTOR_DIED", "ObjectLostError": "OBJECT_LOST",
            "ObjectReconstructionFailedError": "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED", "OwnerDiedError": "OWNER_DIED",
            }.get(name, "TASK_EXECUTION_EXCEPTION")
