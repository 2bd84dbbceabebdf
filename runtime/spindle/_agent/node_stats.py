"""The agent's periodic report to the head for the state API: machine usage, the store, its workers.

Sent every ``SPINDLE_NODE_STATS_INTERVAL_S`` (default 1 s; 0 = never) on its own thread, apart from the
heartbeat (which stays small and frequent: it decides liveness). CPU and memory come from psutil when it
is installed, else from /proc (Linux); on neither, they are reported as 0.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import grpc

from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

log = logging.getLogger("spindle.agent.stats")


def interval_s() -> float:
    raw = os.environ.get("SPINDLE_NODE_STATS_INTERVAL_S", "1")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"SPINDLE_NODE_STATS_INTERVAL_S={raw!r} is not a number of seconds (0 = off)") from None


class Sampler:
    """CPU percent since the previous sample, and memory used/total, of this machine."""

    def __init__(self) -> None:
        try:
            import psutil

            self._psutil = psutil
            psutil.cpu_percent(None)  # primes the interval
        except ImportError:
            self._psutil = None  # type: ignore[assignment]
        self._last: tuple[int, int] | None = self._proc_cpu_times()

    def cpu_percent(self) -> float:
        if self._psutil is not None:
            return float(self._psutil.cpu_percent(None))
        now = self._proc_cpu_times()
        if now is None or self._last is None:
            return 0.0
        busy, total = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return 100.0 * busy / total if total > 0 else 0.0

    def memory(self) -> tuple[int, int]:
        if self._psutil is not None:
            vm = self._psutil.virtual_memory()
            return int(vm.total - vm.available), int(vm.total)
        return proc_meminfo()

    @staticmethod
    def _proc_cpu_times() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        total = sum(fields[:8])
        return total - idle, total


def proc_meminfo() -> tuple[int, int]:
    """(used, total) bytes from /proc/meminfo: used = MemTotal - MemAvailable; (0, 0) when unreadable."""
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    values[name] = int(parts[0]) * 1024
    except (OSError, ValueError):
        return 0, 0
    total = values.get("MemTotal", 0)
    return total - values.get("MemAvailable", values.get("MemFree", 0)), total


def collect(agent: Agent, sampler: Sampler) -> pb.NodeStats:
    used, total = sampler.memory()
    stats = pb.NodeStats(node_id=agent.node_id, cpu_percent=sampler.cpu_percent(), mem_used_bytes=used,
                         mem_total_bytes=total, object_store_used_bytes=agent.store.budget.used,
                         object_store_total_bytes=agent.store.budget.capacity, log_dir=agent.log_dir)
    if agent.pool is not None:
        with agent.pool.cond:
            records = list(agent.pool.by_id.values())
        for w in records:
            if w.state != "dead":
                stats.workers.add(worker_id=w.worker_id, pid=w.proc.pid, address=w.address, actor_id=w.actor_id,
                                  state=w.state)
    return stats


def start(agent: Agent) -> None:
    every = interval_s()
    if every <= 0:
        return

    def loop() -> None:
        sampler = Sampler()
        warned = False
        while not agent.stopping:
            try:
                agent._head().ReportNodeStats(collect(agent, sampler), metadata=agent.channels.metadata, timeout=5)
                warned = False
            except grpc.RpcError as e:
                if not warned:
                    log.info("could not report node stats to the head (%s); retrying", e.code())
                    warned = True
            except Exception:  # the reporter must outlive one bad sample
                log.exception("node stats failed")
            threading.Event().wait(every)

    threading.Thread(target=loop, daemon=True, name="node-stats").start()
