"""How many threads the head holds while N actors wait for a resource no node has yet.

Run: ``python -m bench.head_pending_actors [N]`` (default 1,000). It starts an embedded cluster,
creates N actors that each need ``{"later": 1}`` (no node has it, so all stay pending), waits until
the head lists them all, then prints the head process's thread count and CPU time, before and
after. A head that parks one thread per pending actor shows about N extra threads here.
"""

from __future__ import annotations

import os
import sys
import time

import psutil

import spindle
from spindle.util.state import list_actors


def _head() -> psutil.Process:
    for p in psutil.Process().children(recursive=True):
        try:
            if any(m in p.cmdline() for m in ("spindle._head", "spindle._embedded")):
                return p
        except psutil.NoSuchProcess:
            continue
    raise RuntimeError("no head (or embedded head+agent) process among this driver's children")


def _cpu_percent(p: psutil.Process, window: float = 5.0) -> float:
    t0 = sum(p.cpu_times()[:2])
    time.sleep(window)
    return (sum(p.cpu_times()[:2]) - t0) / window * 100


@spindle.remote(resources={"later": 1}, num_cpus=0)
class Waiter:
    def ping(self) -> int:
        return os.getpid()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    spindle.init(num_cpus=1, log_to_driver=False)
    head = _head()
    time.sleep(2.0)
    idle_threads = head.num_threads()
    idle_cpu = _cpu_percent(head)
    actors = [Waiter.remote() for _ in range(n)]  # noqa: F841 - kept alive: they stay pending
    deadline = time.monotonic() + 300
    while True:
        pending = list_actors(filters=[("state", "=", "PENDING_CREATION")], limit=n + 10)
        if len(pending) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2.0)  # let the head settle
    busy_cpu = _cpu_percent(head)
    print(f"pending actors listed: {len(pending)} of {n}")
    print(f"head threads: idle {idle_threads}, with {n} pending actors {head.num_threads()}")
    print(f"head CPU (5 s windows): idle {idle_cpu:.1f}% of a core, while they wait {busy_cpu:.1f}%")
    print(f"load average: {os.getloadavg()}")
    spindle.shutdown()


if __name__ == "__main__":
    main()
