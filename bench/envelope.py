"""The scale envelope (issue 14): how far one driver and one head go on this machine.

``python -m bench.envelope`` runs three measurements, each on a cluster of its own, and prints one JSON object:

- ``queued``: ``--tasks`` trivial tasks (default 1,000,000) submitted at once from one driver on an embedded
  cluster, then one ``get`` of all. Reports the driver's peak RSS over its idle baseline per queued task (sampled
  by a thread reading /proc, so nothing is imported into the measured path), submit and drain rates.
- ``agents``: a head with no CPUs and ``--agents`` node agents (default 20, one CPU each) as local processes, and
  this process as the driver: ``--agent-tasks`` short tasks spread over them. Reports tasks/s, how many nodes ran
  tasks, and the head's and the agents' CPU seconds per 1,000 tasks (from /proc), also over the head's idle cost.
- ``actors``: ``--actors`` actors (default 1,000) with no CPU requirement created at once and each called once
  (with the worker zygote). Reports actors/s and the summed PSS of all actor processes per actor, and what that
  makes 10,000 actors need against the machine's memory.

The tests check the behaviour; this only measures (and says so when a part could not run).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import spindle
from spindle import _local_cluster

MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _rss(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRss:
    """The process's peak RSS while inside the block, sampled every 20 ms by a thread."""

    def __init__(self) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def ident(x: int) -> int:
    return x


def queued(n: int) -> dict[str, Any]:
    spindle.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        f = spindle.remote(ident)
        assert spindle.get([f.remote(i) for i in range(100)]) == list(range(100))  # workers warm
        base = _rss()
        with PeakRss() as peak:
            t0 = time.perf_counter()
            refs = [f.remote(i) for i in range(n)]
            t1 = time.perf_counter()
            print(f"  queued {n:,} tasks in {t1 - t0:.1f} s; draining", flush=True)
            out = spindle.get(refs)
            t2 = time.perf_counter()
        assert out[-1] == n - 1 and len(out) == n
        del refs, out
        return {"tasks": n, "submit_per_s": round(n / (t1 - t0)), "drain_per_s": round(n / (t2 - t0)),
                "driver_base_mib": round(base / MIB, 1), "driver_peak_mib": round(peak.peak / MIB, 1),
                "bytes_per_queued_task": round((peak.peak - base) / n)}
    finally:
        spindle.shutdown()


def short(x: int) -> str:
    time.sleep(0.001)
    return spindle.get_runtime_context().get_node_id()


@contextmanager
def many_agents(count: int) -> Iterator[tuple[_local_cluster.LocalProcesses, list[_local_cluster.LocalProcesses]]]:
    head = _local_cluster.start(head=True, num_cpus=0, dashboard_port=-1)
    agents: list[_local_cluster.LocalProcesses] = []
    try:
        pending = [_local_cluster.spawn(head=False, head_address=head.head_address, num_cpus=1, token=head.token)
                   for _ in range(count)]
        agents = [p.wait_ready() for p in pending]
        yield head, agents
    finally:
        for a in agents:
            a.stop()
        head.stop()


def agents_run(count: int, n: int) -> dict[str, Any]:
    with many_agents(count) as (head, agents):
        os.environ["SPINDLE_TOKEN"] = head.token
        spindle.init(address=head.head_address, log_to_driver=False)
        try:
            deadline = time.monotonic() + 300
            while len([x for x in spindle.nodes() if x["Alive"]]) < count + 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(spindle.nodes())} of {count + 1} nodes joined in 300 s")
                time.sleep(0.2)
            f = spindle.remote(short)
            spindle.get([f.remote(i) for i in range(4 * count)])  # every agent has started a worker
            head_pid = head.procs[0].pid
            agent_pids = [p.pid for a in agents for p in a.procs]
            i0 = _cpu_s(head_pid)
            time.sleep(10)  # the head's idle cost with this many agents (heartbeats, usage reports)
            idle_rate = (_cpu_s(head_pid) - i0) / 10
            h0, a0 = _cpu_s(head_pid), sum(_cpu_s(p) for p in agent_pids)
            t0 = time.perf_counter()
            nodes = spindle.get([f.remote(i) for i in range(n)])
            wall = time.perf_counter() - t0
            h1, a1 = _cpu_s(head_pid), sum(_cpu_s(p) for p in agent_pids)
        finally:
            spindle.shutdown()
            os.environ.pop("SPINDLE_TOKEN", None)
    return {"agents": count, "tasks": n, "tasks_per_s": round(n / wall), "nodes_used": len(set(nodes)),
            "head_idle_cpu_percent": round(idle_rate * 100, 1),
            "head_cpu_s_per_1k_tasks": round((h1 - h0) * 1000 / n, 3),
            "head_cpu_s_per_1k_tasks_over_idle": round(max(0.0, h1 - h0 - idle_rate * wall) * 1000 / n, 3),
            "agents_cpu_s_per_1k_tasks": round((a1 - a0) * 1000 / n, 3)}


class Idle:
    def pid(self) -> int:
        return os.getpid()


def actors_run(n: int) -> dict[str, Any]:
    spindle.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cls = spindle.remote(num_cpus=0)(Idle)
        t0 = time.perf_counter()
        handles = [cls.remote() for _ in range(n)]
        pids = spindle.get([h.pid.remote() for h in handles], timeout=3600)
        wall = time.perf_counter() - t0
        pss = sum(_pss(p) for p in set(pids))
        total = os.sysconf("SC_PHYS_PAGES") * PAGE
        per_actor = pss / n
        out = {"actors": n, "actors_per_s": round(n / wall, 1), "distinct_processes": len(set(pids)),
               "pss_per_actor_mib": round(per_actor / MIB, 2),
               "pss_10k_actors_gib": round(per_actor * 10_000 / 1024**3, 1),
               "machine_memory_gib": round(total / 1024**3, 1)}
        for h in handles:
            spindle.kill(h)
        return out
    finally:
        spindle.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.envelope", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=1_000_000, help="tasks queued at once from one driver")
    p.add_argument("--agents", type=int, default=20, help="node agents started as local processes")
    p.add_argument("--agent-tasks", type=int, default=20_000, help="tasks spread over the agents")
    p.add_argument("--actors", type=int, default=1_000, help="actors created at once")
    p.add_argument("--only", choices=("queued", "agents", "actors"), action="append",
                   help="run only this part (repeatable)")
    args = p.parse_args()
    parts = args.only or ["queued", "agents", "actors"]
    result: dict[str, Any] = {"load_1m_before": round(os.getloadavg()[0], 1)}
    for part in parts:
        print(f"== {part}", flush=True)
        t0 = time.perf_counter()
        if part == "queued":
            result[part] = queued(args.tasks)
        elif part == "agents":
            result[part] = agents_run(args.agents, args.agent_tasks)
        else:
            result[part] = actors_run(args.actors)
        result[part]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"  {json.dumps(result[part])}", flush=True)
    result["load_1m_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
