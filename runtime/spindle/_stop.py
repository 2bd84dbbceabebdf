"""`spindle stop`: stop every process `spindle start` started on this machine for this user.

Like Ray's `ray stop`: every session under the user's temp dir that `spindle start` created (not
the embedded clusters of running drivers), SIGTERM first, SIGKILL for what is left after the grace
period (or at once with ``force``). A pid is signalled only after /proc confirms it is still the
Spindle process recorded at start (this user's, same start time, a Spindle entry point), so a
stale or planted record can never make us kill someone else's process.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from spindle import _procs, _sessions


@dataclass
class Target:
    info: _procs.ProcInfo
    session: str

    def describe(self) -> str:
        return f"{self.info.role()} pid {self.info.pid} ({os.path.basename(self.session)})"


def targets(base: str) -> list[Target]:
    """The live processes of every `spindle start` session under ``base``, workers included."""
    out: list[Target] = []
    for session in _sessions.sessions(base):
        record = _sessions.session_record(session)
        if not record or not record.get("cli"):
            continue
        for proc in _sessions.live_processes(session):
            out.append(Target(proc, session))
            if proc.role() == "agent":
                out.extend(Target(w, session) for w in _procs.spindle_children(proc))
    order = {"worker": 0, "agent": 1, "head": 2}  # agents first so they do not restart their workers
    out.sort(key=lambda t: order.get(t.info.role(), 3))
    return out


def _still_same(t: Target) -> bool:
    now = _procs.info(t.info.pid)
    return now is not None and now.start_ticks == t.info.start_ticks and now.uid == t.info.uid


def _signal(t: Target, sig: int) -> None:
    if _still_same(t):
        try:
            os.kill(t.info.pid, sig)
        except ProcessLookupError:
            pass


def stop(base: str, force: bool, grace_s: float, say: Callable[[str], None]) -> list[Target]:
    """Stop the targets under ``base``; returns what was stopped (``say`` reports progress)."""
    found = targets(base)
    if not found:
        return []
    first = signal.SIGKILL if force else signal.SIGTERM
    for t in found:
        if t.info.role() != "worker" or force:  # workers follow their agent (it kills them on SIGTERM)
            _signal(t, first)
    deadline = time.monotonic() + (0 if force else grace_s)
    delay = 0.02
    while time.monotonic() < deadline and any(_still_same(t) for t in found):
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    left = [t for t in found if _still_same(t)]
    if left and not force:
        say(f"{len(left)} process(es) still running after {grace_s:g}s: sending SIGKILL")
    for t in left:
        _signal(t, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_still_same(t) for t in found):
        time.sleep(0.05)
    return found
