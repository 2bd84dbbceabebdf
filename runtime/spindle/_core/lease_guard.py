"""A worker's side of taking a lease back: which leases reached it, and which its agent took back first.

A node agent lends a worker to a holder (a driver or another worker) and expects the holder's task
stream to reach that worker within ``SPINDLE_LEASE_CONFIRM_S``; a lease nobody used in that time
(its holder died or gave up) goes back to the pool. But a holder that was only starved (SIGSTOPped,
a machine at load 300) may still come, and its tasks must then neither run on a worker that is lent
to someone else (or stopped) nor be lost. So the agent does not take a lease back on its own: it
asks the worker (``RevokeLease``), and this guard answers under one lock: a lease whose stream
already reached the worker is in use (the agent keeps it lent); any other is revoked, and a stream
of it that comes later is refused before any of its tasks is read. No I/O.
"""

from __future__ import annotations

import threading

from spindle._recent import Recent

REVOKED = "lease revoked"  # how a refused stream's status details start (FAILED_PRECONDITION)
REMEMBERED = 1024  # leases kept of each kind (a revocation is rare; a used lease is returned within seconds)


class LeaseGuard:
    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._lock = threading.Lock()
        self._used = Recent(remembered)  # leases whose stream came
        self._revoked = Recent(remembered)

    def open(self, lease_id: bytes) -> bool:
        """A stream of ``lease_id`` reached this worker: False if the agent took that lease back (refuse it)."""
        with self._lock:
            if lease_id in self._revoked:
                return False
            self._used.add(lease_id)
            return True

    def revoke(self, lease_id: bytes) -> bool:
        """The agent takes ``lease_id`` back unless a stream of it came here: True if it did (then none of its
        tasks ever ran here, which its holder relies on to run them elsewhere without spending a retry)."""
        with self._lock:
            if lease_id in self._used:
                return False
            self._revoked.add(lease_id)
            return True

