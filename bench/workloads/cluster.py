"""Whole-cluster figures: start-up time, a small end-to-end job, and the footprint of an idle cluster.

The footprint is the driver plus every process it started (for Ray: gcs_server, raylet, agents and
workers, which are all descendants of a local ``ray.init()``), summed RSS as ``psutil`` reports it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bench.workloads import Context, Result, workload

if TYPE_CHECKING:
    import psutil  # type: ignore[import-untyped]

MIB = 1024 * 1024


def one() -> int:
    return 1


def calculate_square(x: int) -> int:
    return x * x


def tree_processes() -> list[psutil.Process]:
    # imported here: the scale workloads' actor class lives in a module importing this one, and every actor
    # imports that module after its fork (~3 MiB of private memory per actor with psutil, measured)
    import psutil

    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def tree_rss(procs: list[psutil.Process]) -> int:
    import psutil

    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_pss(procs: list[psutil.Process]) -> int:
    """Summed PSS (shared pages split among the processes mapping them: what the tree costs the machine)."""
    total = 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration):
            pass
    return total


@workload("init", own_init=True)
def init_seconds(ctx: Context) -> Result:
    """``init()`` until a task has run: what a user waits for before their program does anything."""
    start = time.perf_counter()
    ctx.init()
    ctx.ray.get(ctx.ray.remote(one).remote())
    return {"init_seconds": time.perf_counter() - start}


@workload("calculate_square_1000")
def calculate_square_1000(ctx: Context) -> Result:
    f = ctx.ray.remote(calculate_square)
    n = ctx.sizes.square_tasks
    start = time.perf_counter()
    results = ctx.ray.get([f.remote(i) for i in range(n)])
    elapsed = time.perf_counter() - start
    if results != [i * i for i in range(n)]:
        raise AssertionError("calculate_square returned wrong results")
    return {"calculate_square_1000_seconds": elapsed}


@workload("idle_cluster")
def idle_cluster(ctx: Context) -> Result:
    f = ctx.ray.remote(one)
    ctx.ray.get([f.remote() for _ in range(ctx.sizes.idle_tasks)])
    time.sleep(ctx.sizes.idle_settle_s)
    procs = tree_processes()
    return {
        "idle_cluster_rss_mib": tree_rss(procs) / MIB,
        "idle_cluster_pss_mib": tree_pss(procs) / MIB,
        "idle_cluster_processes": float(len(procs)),
    }
