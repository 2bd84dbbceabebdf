"""What a run's process tree costs the machine, sampled cheaply enough for 1,000 processes every 0.1 s.

Summed RSS counts a page once per process that maps it, so a tree of workers forked from one zygote
(1,000 actors sharing its ~40 MiB copy-on-write) looks 4-5x bigger than it is, and the bench's memory
cap killed such runs long before the machine was short of memory. PSS (``/proc/<pid>/smaps_rollup``:
each shared page split among the processes that map it) sums to what the tree really uses, but reading
it walks every page of the process: ~1-5 ms per process here, seconds for 1,000 processes.

So ``TreeMemory`` keeps each process's last PSS and the RSS it had then. Every sample reads RSS (``statm``,
cheap) and spends a small time budget on PSS readings, new processes first, then those read longest ago;
its running estimate is the sum over live processes of ``PSS + max(0, RSS now - RSS then)`` (growth since
the reading counted as private, which new allocations are), or RSS for a process not read yet: nearly an
upper bound (stale readings of processes that gained sharers since are high). The peak is taken from full
sweeps (every process read at once): one whenever the estimate passes the peak, at most one per 20 sweep
durations (so sampling stays under ~5% of a core however many processes there are), and one every couple of
seconds otherwise. A run is killed only when a full sweep confirms the estimate is over the cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PAGE = 4096


def read_pss(pid: int) -> int | None:
    """The process's PSS in bytes (``smaps_rollup``), or None when it is gone or the kernel lacks the file."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


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
    rss: int  # the process's RSS when its PSS was read
    at: float


class TreeMemory:
    """Running estimate of a process tree's PSS sum (see the module docstring) and its peak."""

    def __init__(
        self,
        budget_s: float = 0.003,
        max_age_s: float = 1.0,
        sweep_every_s: float = 2.0,
        duty: float = 20.0,
        pss: Callable[[int], int | None] = read_pss,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.budget_s = budget_s
        self.max_age_s = max_age_s
        self.sweep_every_s = sweep_every_s
        self.duty = duty  # a sweep of d seconds allows the next one only after duty * d more seconds
        self._pss = pss
        self._clock = clock
        self._readings: dict[int, _Reading] = {}
        self._last_sweep = 0.0
        self._next_sweep = -float("inf")
        self.peak = 0  # bytes, the largest PSS sum a full sweep found
        self.peak_rss = 0  # bytes, the largest summed RSS (for comparison)

    def _read(self, pid: int, rss: int) -> None:
        pss = self._pss(pid)
        if pss is not None:
            self._readings[pid] = _Reading(pss, rss, self._clock())

    def estimate(self, rss: dict[int, int]) -> int:
        """The tree's estimated PSS sum in bytes, given each live process's RSS now."""
        total = 0
        for pid, now in rss.items():
            r = self._readings.get(pid)
            total += now if r is None else r.pss + max(0, now - r.rss)
        return total

    def sweep(self, rss: dict[int, int]) -> int:
        """Read every process now: the tree's PSS sum in bytes (also a peak candidate)."""
        start = self._clock()
        for pid, now in rss.items():
            self._read(pid, now)
        end = self._clock()
        self._last_sweep, self._next_sweep = end, end + self.duty * (end - start)
        total = sum(r.pss for p, r in self._readings.items() if p in rss)
        self.peak = max(self.peak, total)
        return total

    def sample(self, rss: dict[int, int]) -> int:
        """One sample: forget exited processes, read some, maybe sweep; the estimate in bytes."""
        for pid in [p for p in self._readings if p not in rss]:
            del self._readings[pid]
        self.peak_rss = max(self.peak_rss, sum(rss.values()))
        start = self._clock()
        stale = start - self.max_age_s
        unread = [p for p in rss if p not in self._readings]
        old = sorted((r.at, p) for p, r in self._readings.items() if r.at <= stale)
        for pid in [*unread, *(p for _, p in old)]:
            if self._clock() - start >= self.budget_s:
                break
            self._read(pid, rss[pid])
        total = self.estimate(rss)
        now = self._clock()
        if now >= self._next_sweep and (total > self.peak or now - self._last_sweep >= self.sweep_every_s):
            total = self.sweep(rss)
        return total

    def over(self, rss: dict[int, int], cap: int) -> bool:
        """Whether the tree uses more than ``cap`` bytes (a full sweep confirms an estimate over the cap)."""
        return self.estimate(rss) > cap and self.sweep(rss) > cap
