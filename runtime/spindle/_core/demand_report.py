"""Telling the head which resource shapes this process's queued tasks wait for (autoscaler demand).

Tasks wait in the submitter's queues, inside drivers and workers, until a node agent grants a
lease; the head never sees them. The autoscaler needs them (Ray's "resource demand by shape"), so
each process reports its waiting shapes to the head: off the submission path (a background thread
samples the queues every ``SAMPLE_S``), only when they changed, refreshed every ``REFRESH_S`` while
non-empty (the head forgets a report after ``autoscaling.REPORT_TTL_S``, so a process that died
stops counting), and once more, empty, when the queues drain. A granted lease wakes it at once, so the
head learns that queued tasks left before the agent's heartbeat shows the lease busy (no double count).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import grpc

from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.submitter import TaskSubmitter

log = logging.getLogger("spindle")

SAMPLE_S = 0.5
REFRESH_S = 3.0

Shapes = tuple[tuple[tuple[tuple[str, float], ...], int], ...]


class DemandReporter:
    def __init__(self, submitter: TaskSubmitter):
        self.sub = submitter
        self.last: Shapes = ()
        self.sent_at = 0.0
        self._wake = threading.Event()
        threading.Thread(target=self._loop, daemon=True, name="spindle-demand").start()

    def shapes(self) -> Shapes:
        """Queued (not yet dispatched) tasks by resource shape."""
        counts: dict[tuple[tuple[str, float], ...], int] = {}
        with self.sub.lock:
            for q in self.sub.queues.values():
                if q.tasks:
                    shape = tuple(sorted((k, float(v)) for k, v in q.resources.items() if v > 0))
                    if shape:
                        counts[shape] = counts.get(shape, 0) + len(q.tasks)
        return tuple(sorted(counts.items()))

    def wake(self) -> None:
        """A lease was granted: queued tasks left for it, report now (before the agent's heartbeat shows the lease)."""
        if self.last:
            self._wake.set()

    def _loop(self) -> None:
        while not self.sub.closed:
            self._wake.wait(SAMPLE_S)
            self._wake.clear()
            try:
                self.tick(time.monotonic())
            except Exception:  # reporting must never take the process down
                log.debug("demand report failed", exc_info=True)

    def close(self) -> None:
        """The process is shutting down: withdraw its demand now rather than after the head's TTL."""
        if self.last:
            cw = self.sub.cw
            try:
                cw.head().ReportDemand(pb.DemandReport(reporter=cw.address), metadata=cw.md, timeout=2)
            except grpc.RpcError:
                pass
            self.last = ()

    def tick(self, now: float) -> None:
        shapes = self.shapes()
        if shapes == self.last and (not shapes or now - self.sent_at < REFRESH_S):
            return
        cw = self.sub.cw
        report = pb.DemandReport(reporter=cw.address, shapes=[
            pb.ShapeDemand(shape=pb.Resources(amounts=dict(shape)), count=n) for shape, n in shapes])
        try:
            cw.head().ReportDemand(report, metadata=cw.md, timeout=5)
        except grpc.RpcError as e:
            log.debug("could not report demand to the head: %s", e.code())
            return  # tried again at the next sample
        self.last, self.sent_at = shapes, now
