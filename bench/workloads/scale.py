"""Scale runs: many tasks, many actors, many refs in one call.

They report throughput; peak memory of the process tree is sampled by the orchestrator from outside
(``bench.proc``) so sampling does not compete with the driver for the GIL.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.workloads import Context, Result, workload
from bench.workloads.cluster import MIB, tree_processes, tree_pss

PROGRESS = "BENCH_PROGRESS "  # the orchestrator quotes the last one if the run is cut short


def ident(x: int) -> int:
    return x


def count_args(*args: int) -> int:
    return len(args)


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


@workload("scale_100k_tasks")
def many_tasks(ctx: Context) -> Result:
    f = ctx.ray.remote(ident)
    n = ctx.sizes.scale_tasks
    start = time.perf_counter()
    refs = [f.remote(i) for i in range(n)]
    total = sum(ctx.ray.get(refs))
    elapsed = time.perf_counter() - start
    if total != n * (n - 1) // 2:
        raise AssertionError("wrong sum of task results")
    return {"scale_100k_tasks_per_s": n / elapsed}


@workload("scale_1k_actors")
def many_actors(ctx: Context) -> Result:
    cls = ctx.ray.remote(Counter)
    n = ctx.sizes.scale_actors
    start = time.perf_counter()
    actors = [cls.remote() for _ in range(n)]
    pending = [a.incr.remote() for a in actors]
    done: list[Any] = []
    while pending:  # in rounds, reporting progress, so a run cut short still says how far it got
        ready, pending = ctx.ray.wait(pending, num_returns=len(pending), timeout=5.0)
        done += ready
        elapsed = time.perf_counter() - start
        print(PROGRESS + json.dumps({"actors_ready": len(done), "of": n, "seconds": round(elapsed, 1)}), flush=True)
    counts = ctx.ray.get(done)
    elapsed = time.perf_counter() - start
    if counts != [1] * n:
        raise AssertionError("actors returned wrong counts")
    # what the live actors cost the machine: summed RSS counts the pages forked workers share with their
    # zygote once per process, PSS splits them (the orchestrator's peak MiB is the RSS sum)
    pss = tree_pss(tree_processes())
    for a in actors:
        ctx.ray.kill(a)
    return {"scale_1k_actors_per_s": n / elapsed, "scale_1k_actors_pss_mib": pss / MIB}


@workload("scale_get_10k_refs")
def get_many_refs(ctx: Context) -> Result:
    n = ctx.sizes.scale_get_refs
    refs = [ctx.ray.put(i) for i in range(n)]
    start = time.perf_counter()
    values = ctx.ray.get(refs)
    elapsed = time.perf_counter() - start
    if values != list(range(n)):
        raise AssertionError("get returned wrong values")
    return {"scale_get_10k_refs_per_s": n / elapsed}


@workload("scale_1k_ref_args")
def many_ref_args(ctx: Context) -> Result:
    n = ctx.sizes.scale_args
    f = ctx.ray.remote(count_args)
    refs = [ctx.ray.put(i) for i in range(n)]
    start = time.perf_counter()
    got = ctx.ray.get(f.remote(*refs))
    elapsed = time.perf_counter() - start
    if got != n:
        raise AssertionError("task saw the wrong number of arguments")
    return {"scale_1k_ref_args_seconds": elapsed}
