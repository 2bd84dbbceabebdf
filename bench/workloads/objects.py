"""Large-object workloads: ``put``/``get`` of a 100 MiB numpy array and tasks taking it by reference.

These measure the object store rather than the scheduler: a store that shares memory with the driver
makes ``get`` free (zero-copy) and lets a task read the array without copying it into the worker.
"""

from __future__ import annotations

import numpy as np

from bench.workloads import Context, Result, workload
from bench.workloads.timing import rate

GIB = 1024**3


def first_byte(arr: np.ndarray) -> int:
    return int(arr[0])


def _array(nbytes: int) -> np.ndarray:
    arr = np.ones(nbytes, dtype=np.uint8)
    return arr


def _zero_copy(ctx: Context, arr: np.ndarray) -> bool:
    """True when ``get`` hands back a read-only view of the store rather than a private copy."""
    ref = ctx.ray.put(arr)
    a, b = ctx.ray.get(ref), ctx.ray.get(ref)
    return bool(not a.flags.writeable and np.shares_memory(a, b) and not np.shares_memory(a, arr))


@workload("single_client_put_gigabytes")
def put_gigabytes(ctx: Context) -> Result:
    arr = _array(ctx.sizes.big_bytes)

    def put_and_release() -> None:
        ref = ctx.ray.put(arr)
        del ref

    put_rate = rate(put_and_release, arr.nbytes, ctx.sizes.duration_s, 1) / GIB
    ref = ctx.ray.put(arr)
    get_rate = rate(lambda: ctx.ray.get(ref), 1, ctx.sizes.duration_s, 1)
    return {
        "single_client_put_gigabytes": put_rate,
        "single_client_get_100mib_calls": get_rate,
        "get_100mib_zero_copy": _zero_copy(ctx, arr),
    }


@workload("single_client_tasks_100mib_by_ref")
def tasks_by_ref(ctx: Context) -> Result:
    f = ctx.ray.remote(first_byte)
    ref = ctx.ray.put(_array(ctx.sizes.big_bytes))
    r = rate(lambda: ctx.ray.get(f.remote(ref)), 1, ctx.sizes.duration_s, 2)
    return {"single_client_tasks_100mib_by_ref": r}
