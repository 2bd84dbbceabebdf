"""Ray's single-client microbenchmarks (names follow ``ray/_private/ray_perf.py``).

They measure per-call overhead: a no-op task or actor method round trip, and ``put``/``get``/``wait`` of
tiny objects. The functions are plain module-level callables wrapped with ``ctx.ray.remote`` at run time
so the same definitions serve both implementations.
"""

from __future__ import annotations

from typing import Any

from bench.workloads import Context, Result, workload
from bench.workloads.timing import rate


def noop() -> int:
    return 0


class Actor:
    def noop(self) -> int:
        return 0


class AsyncActor:
    async def noop(self) -> int:
        return 0


@workload("single_client_tasks_sync")
def tasks_sync(ctx: Context) -> Result:
    f = ctx.ray.remote(noop)
    r = rate(lambda: ctx.ray.get(f.remote()), 1, ctx.sizes.duration_s, ctx.sizes.warmup)
    return {"single_client_tasks_sync": r}


@workload("single_client_tasks_async")
def tasks_async(ctx: Context) -> Result:
    f = ctx.ray.remote(noop)
    n = ctx.sizes.batch
    r = rate(lambda: ctx.ray.get([f.remote() for _ in range(n)]), n, ctx.sizes.duration_s, 1)
    return {"single_client_tasks_async": r}


def _actor(ctx: Context, cls: type) -> Any:
    a = ctx.ray.remote(cls).remote()
    ctx.ray.get(a.noop.remote())
    return a


@workload("1_1_actor_calls_sync")
def actor_calls_sync(ctx: Context) -> Result:
    a = _actor(ctx, Actor)
    r = rate(lambda: ctx.ray.get(a.noop.remote()), 1, ctx.sizes.duration_s, ctx.sizes.warmup)
    return {"1_1_actor_calls_sync": r}


def _batched_calls(ctx: Context, a: Any) -> float:
    n = ctx.sizes.batch
    return rate(
        lambda: ctx.ray.get([a.noop.remote() for _ in range(n)]),
        n,
        ctx.sizes.duration_s,
        1,
    )


@workload("1_1_actor_calls_async")
def actor_calls_async(ctx: Context) -> Result:
    return {"1_1_actor_calls_async": _batched_calls(ctx, _actor(ctx, Actor))}


@workload("1_1_async_actor_calls_async")
def async_actor_calls_async(ctx: Context) -> Result:
    return {"1_1_async_actor_calls_async": _batched_calls(ctx, _actor(ctx, AsyncActor))}


@workload("single_client_put_calls")
def put_calls(ctx: Context) -> Result:
    r = rate(lambda: ctx.ray.put(b"x"), 1, ctx.sizes.duration_s, ctx.sizes.warmup)
    return {"single_client_put_calls": r}


@workload("single_client_get_calls")
def get_calls(ctx: Context) -> Result:
    ref = ctx.ray.put(b"x")
    r = rate(lambda: ctx.ray.get(ref), 1, ctx.sizes.duration_s, ctx.sizes.warmup)
    return {"single_client_get_calls": r}


@workload("single_client_wait_1k_refs")
def wait_1k_refs(ctx: Context) -> Result:
    f = ctx.ray.remote(noop)
    n = ctx.sizes.wait_refs

    def wait_all_one_by_one() -> None:
        not_ready = [f.remote() for _ in range(n)]
        for _ in range(n):
            _ready, not_ready = ctx.ray.wait(not_ready)

    return {"single_client_wait_1k_refs": rate(wait_all_one_by_one, 1, ctx.sizes.duration_s, 1)}
