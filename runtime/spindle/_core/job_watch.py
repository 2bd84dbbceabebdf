"""A driver's job stays attached to the head, also to a head that was restarted.

The head learns that a driver is gone when the driver's WatchJob stream breaks, and then kills the
driver's non-detached actors. When the *head* goes away instead, the stream breaks on the
driver's side: the driver keeps trying to register its job again (same job id) with backoff, and
watches it anew once the head is back, so the restarted head knows the job is alive.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import grpc

from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker

log = logging.getLogger("spindle")


class JobWatch:
    def __init__(self, cw: CoreWorker, registration: pb.RegisterJobRequest):
        self.cw = cw
        self.registration = pb.RegisterJobRequest()
        self.registration.CopyFrom(registration)
        self.registration.job_id = cw.job_id
        self._stopped = threading.Event()
        self.attached = threading.Event()
        self.attached.set()
        self._lock = threading.Lock()
        self._call: Any = None
        threading.Thread(target=self._run, daemon=True, name="spindle-job").start()

    def _run(self) -> None:
        cw, delay, attached = self.cw, 0.1, True
        while not self._stopped.is_set():
            if not attached:
                try:
                    cw.head().RegisterJob(self.registration, metadata=cw.md, timeout=10)
                    log.info("job %s re-attached to the head at %s", cw.job_id.hex(), cw.head_address)
                    attached = True
                    self.attached.set()
                except grpc.RpcError:
                    self._stopped.wait(delay)
                    delay = min(delay * 2, 1.0)
                    continue
            with self._lock:
                if self._stopped.is_set():
                    return
                self._call = cw.head().WatchJob(pb.WatchJobRequest(job_id=cw.job_id), metadata=cw.md)
            started = time.monotonic()
            try:
                for _ in self._call:
                    delay = 0.1
            except grpc.RpcError:
                pass
            attached = False
            self.attached.clear()
            if time.monotonic() - started < 1.0:
                self._stopped.wait(delay)
                delay = min(delay * 2, 1.0)

    def wait_attached(self, timeout: float) -> None:
        """Let a lookup that follows a head restart see a head that knows this job again (bounded)."""
        self.attached.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
