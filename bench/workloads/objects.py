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


def _mapping_of(address: int) -> str:
    """The /proc/self/maps pathname of the mapping holding ``address`` ("" for anonymous memory)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5].strip() if len(fields) > 5 else ""
    return ""


def _zero_copy(ctx: Context, arr: np.ndarray) -> bool:
    """True when ``get`` hands back a read-only view of shared store memory rather than a private copy.

    "Shared store memory" means the array's buffer lies in a file-backed mapping (``/dev/shm/...``,
    Ray's plasma file, a memfd), not on the heap; that holds whether the store maps the object once
    per process (Ray) or once per ``get``.
    """
    ref = ctx.ray.put(arr)
    got = ctx.ray.get(ref)
    backing = _mapping_of(got.ctypes.data)
    return bool(not got.flags.writeable and backing.startswith("/") and not np.shares_memory(got, arr))


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


@workload("single_client_tasks_100mib_inline")
def tasks_inline(ctx: Context) -> Result:
    """The array itself as the argument: each call puts it into the store first (as Ray does above 100 KiB)."""
    f = ctx.ray.remote(first_byte)
    arr = _array(ctx.sizes.big_bytes)
    r = rate(lambda: ctx.ray.get(f.remote(arr)), 1, ctx.sizes.duration_s, 2)
    return {"single_client_tasks_100mib_inline": r}


@workload("single_client_tasks_return_100mib")
def tasks_return(ctx: Context) -> Result:
    """A task that makes a 100 MiB array and returns it, and the caller's ``get`` of it: the store write of a
    value that never comes back to its writer (each return is a new object), then a zero-copy read."""
    f = ctx.ray.remote(_array)
    nbytes = ctx.sizes.big_bytes

    def call() -> None:
        got = ctx.ray.get(f.remote(nbytes))
        assert got.nbytes == nbytes
        del got

    return {"single_client_tasks_return_100mib": rate(call, 1, ctx.sizes.duration_s, 1)}
