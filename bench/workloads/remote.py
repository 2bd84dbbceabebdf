"""Two-node workloads: tasks, actor calls and object transfers that must cross the network.

The head node (where the driver runs) has no CPUs, so everything asking for a CPU lands on the other
node; that is plain Ray API, so these run unchanged under either implementation connected to a
two-node cluster (``bench.multinode``).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.workloads import Context, Result, workload
from bench.workloads.micro import Actor, noop
from bench.workloads.objects import GIB, first_byte
from bench.workloads.timing import rate

REMOTE = {"num_cpus": 1}


def make_array(nbytes: int) -> np.ndarray:
    return np.ones(nbytes, dtype=np.uint8)


@workload("remote_tasks")
def remote_tasks(ctx: Context) -> Result:
    f = ctx.ray.remote(noop).options(**REMOTE)
    sync = rate(lambda: ctx.ray.get(f.remote()), 1, ctx.sizes.duration_s, ctx.sizes.warmup)
    n = ctx.sizes.batch
    batched = rate(lambda: ctx.ray.get([f.remote() for _ in range(n)]), n, ctx.sizes.duration_s, 1)
    return {"remote_tasks_sync": sync, "remote_tasks_async": batched}


@workload("remote_actor_calls")
def remote_actor_calls(ctx: Context) -> Result:
    a = ctx.ray.remote(Actor).options(**REMOTE).remote()
    ctx.ray.get(a.noop.remote())
    sync = rate(lambda: ctx.ray.get(a.noop.remote()), 1, ctx.sizes.duration_s, ctx.sizes.warmup)
    n = ctx.sizes.batch
    batched = rate(
        lambda: ctx.ray.get([a.noop.remote() for _ in range(n)]),
        n,
        ctx.sizes.duration_s,
        1,
    )
    return {"remote_actor_calls_sync": sync, "remote_actor_calls_async": batched}


@workload("remote_transfer")
def remote_transfer(ctx: Context) -> Result:
    """100 MiB to the other node (a fresh ``put`` each time, read there) and back (made there, ``get`` here)."""
    nbytes = ctx.sizes.big_bytes
    arr = make_array(nbytes)
    reader = ctx.ray.remote(first_byte).options(**REMOTE)
    maker = ctx.ray.remote(make_array).options(**REMOTE)

    def send() -> None:
        ref = ctx.ray.put(arr)
        ctx.ray.get(reader.remote(ref))
        del ref

    def fetch() -> None:
        got = ctx.ray.get(maker.remote(nbytes))
        assert got.nbytes == nbytes

    return {
        "remote_transfer_to_node": rate(send, nbytes, ctx.sizes.duration_s, 1) / GIB,
        "remote_transfer_from_node": rate(fetch, nbytes, ctx.sizes.duration_s, 1) / GIB,
    }


@workload("remote_pull")
def remote_pull(ctx: Context) -> Result:
    """An object made on the other node, then one timed ``get`` here (the transfer between the nodes' stores):
    100 MiB (5 objects) and 1 GiB (3 objects; smoke: the small size), median GiB/s of the gets."""
    maker = ctx.ray.remote(make_array).options(**REMOTE)
    out = {}
    big = 1 << 30 if ctx.sizes.big_bytes >= 1 << 26 else ctx.sizes.big_bytes
    for name, nbytes, count in (("remote_pull_100mib", ctx.sizes.big_bytes, 5), ("remote_pull_1gib", big, 3)):
        speeds = []
        for _ in range(count):
            ref = maker.remote(nbytes)
            ctx.ray.wait([ref], fetch_local=False)  # made there, not yet here
            start = time.perf_counter()
            got = ctx.ray.get(ref)
            seconds = time.perf_counter() - start
            assert got.nbytes == nbytes
            del got, ref
            speeds.append(nbytes / seconds / GIB)
        out[name] = statistics.median(speeds)
    return out
