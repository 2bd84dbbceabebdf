"""What a run's process tree costs the machine, sampled cheaply enough for 1,000 processes every 0.1 s.

Summed RSS counts a page once per process that maps it, so a tree of workers forked from one zygote
(1,000 actors sharing its ~40 MiB copy-on-write) looks 4-5x bigger than it is, and the bench's memory
cap killed such runs long before the machine was short of memory. PSS (``/proc/<pid>/smaps_rollup``:
each shared page split among the processes that map it) sums to what the tree really uses, but reading
it walks every page of the process: ~1-5 ms per process here, seconds for 1,000 processes.

So ``TreeMemory`` combines both. A full sweep (every process's ``smaps_rollup``) gives the exact sum and
splits it into each process's private pages (USS: what only it maps) and the shared rest, ``shared``. Between
sweeps the tree is estimated as ``shared`` (from the last sweep) plus each live process's last USS plus its
RSS growth since that reading (new allocations are private), or its whole RSS while it has not been read.
A fork adds its own private pages and nothing to ``shared`` (it maps its parent's pages), which is how
1,000 actors forked from one zygote are counted; a parent's pages that its children now share leave its USS
without leaving its RSS, and move to ``shared`` when it is read again. RSS (``statm``) is read every sample; USS/PSS readings are spent on a small time budget
per sample, new processes first, then those read longest ago; an estimate that would set a new peak reads
every unread process first; sweeps happen every couple of seconds, at most one per 20 sweep durations (so
sampling stays near 5% of a core however many processes there are). A run is killed only when a sweep
confirms the cap is exceeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PAGE = 4096


def read_pss(pid: int) -> tuple[int, int] | None:
    """The process's (PSS, USS) in bytes (``smaps_rollup``), or None when it is gone or the kernel lacks the file."""
    pss = uss = 0
    found = False
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    pss, found = int(line.split()[1]) * 1024, True
                elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    uss += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return (pss, uss) if found else None


def read_rss(pid: int) -> int | None:
    """The process's RSS in bytes (``statm``), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Reading:
    pss: int
    uss: int
    rss: int  # the process's RSS when it was read
    at: float


class TreeMemory:
    """Running estimate of a process tree's PSS sum (see the module docstring) and its peak."""

    def __init__(
        self,
        budget_s: float = 0.003,
        max_age_s: float = 1.0,
        sweep_every_s: float = 2.0,
        duty: float = 20.0,
        pss: Callable[[int], tuple[int, int] | None] = read_pss,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.budget_s = budget_s
        self.max_age_s = max_age_s
        self.sweep_every_s = sweep_every_s
        self.duty = duty  # a sweep of d seconds allows the next one only after duty * d more seconds
        self._pss = pss
        self._clock = clock
        self._readings: dict[int, _Reading] = {}
        self._shared = 0  # bytes: the last sweep's PSS sum minus its processes' USS
        self._swept = False
        self._last_sweep = 0.0
        self._next_sweep = 0.0
        self.peak = 0  # bytes, the largest estimate (settled) or sweep
        self.peak_rss = 0  # bytes, the largest summed RSS (for comparison)

    def _read(self, pid: int, rss: int) -> None:
        got = self._pss(pid)
        if got is None:
            return
        new, old = _Reading(got[0], got[1], rss, self._clock()), self._readings.get(pid)
        if old is not None:  # private pages it lost without its RSS falling became shared (it forked): count them
            self._shared += max(0, (old.uss - new.uss) - max(0, old.rss - new.rss))
        self._readings[pid] = new

    def estimate(self, rss: dict[int, int]) -> int:
        """The tree's estimated PSS sum in bytes, given each live process's RSS now."""
        total = self._shared
        for pid, now in rss.items():
            r = self._readings.get(pid)
            total += now if r is None else r.uss + max(0, now - r.rss)
        return total

    def settle(self, rss: dict[int, int]) -> int:
        """Read every process not read yet, then estimate."""
        for pid, now in rss.items():
            if pid not in self._readings:
                self._read(pid, now)
        return self.estimate(rss)

    def sweep(self, rss: dict[int, int]) -> int:
        """Read every process now: the tree's PSS sum in bytes."""
        start = self._clock()
        for pid, now in rss.items():
            self._read(pid, now)
        end = self._clock()
        self._last_sweep, self._next_sweep, self._swept = end, end + self.duty * (end - start), True
        live = [r for p, r in self._readings.items() if p in rss]
        total = sum(r.pss for r in live)
        self._shared = total - sum(r.uss for r in live)
        self.peak = max(self.peak, total)
        return total

    def sample(self, rss: dict[int, int]) -> int:
        """One sample: forget exited processes, read some, maybe sweep; the estimate in bytes."""
        for pid in [p for p in self._readings if p not in rss]:
            del self._readings[pid]
        self.peak_rss = max(self.peak_rss, sum(rss.values()))
        start = self._clock()
        if not self._swept or (start >= self._next_sweep and start - self._last_sweep >= self.sweep_every_s):
            return self.sweep(rss)
        stale = start - self.max_age_s
        unread = [p for p in rss if p not in self._readings]
        old = sorted((r.at, p) for p, r in self._readings.items() if r.at <= stale)
        for pid in [*unread, *(p for _, p in old)]:
            if self._clock() - start >= self.budget_s:
                break
            self._read(pid, rss[pid])
        total = self.estimate(rss)
        if total > self.peak:
            total = self.settle(rss)
            self.peak = max(self.peak, total)
        return total

    def over(self, rss: dict[int, int], cap: int) -> bool:
        """Whether the tree uses more than ``cap`` bytes (a full sweep confirms an estimate over the cap)."""
        return self.estimate(rss) > cap and self.sweep(rss) > cap
