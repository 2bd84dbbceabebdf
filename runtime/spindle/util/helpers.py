"""``ray.util.as_completed`` and ``ray.util.map_unordered``: results in the order they finish.

Both wrap ``wait``: ``as_completed`` hands out results in batches of ``chunk_size`` as soon as that many
are ready (instead of one ``get`` of everything, or a ``get`` per ref in a loop); ``map_unordered`` submits
a remote function over items, keeping at most ``backpressure_size`` in flight, and yields results the same
way. ``yield_obj_refs=True`` yields the refs instead of their values; other keyword arguments go to ``wait``
(``timeout``, ``fetch_local``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import spindle

DEFAULT_CHUNK_SIZE = 10
DEFAULT_BACKPRESSURE_SIZE = 100


def _check(chunk_size: int, wait_kwargs: dict[str, Any]) -> None:
    if chunk_size < 1:
        raise ValueError("`chunk_size` must be >= 1")
    if "num_returns" in wait_kwargs:
        raise ValueError("Use the `chunk_size` argument instead of `num_returns`.")


def _next_batch(refs: list[Any], chunk_size: int, yield_obj_refs: bool,
                wait_kwargs: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    ready, rest = spindle.wait(refs, num_returns=min(chunk_size, len(refs)), **wait_kwargs)
    return (list(ready) if yield_obj_refs else spindle.get(list(ready))), list(rest)


def as_completed(refs: Sequence[Any], *, chunk_size: int = DEFAULT_CHUNK_SIZE, yield_obj_refs: bool = False,
                 **wait_kwargs: Any) -> Iterator[Any]:
    """Yield the results of ``refs`` a batch at a time, each batch as soon as ``chunk_size`` of them are ready."""
    _check(chunk_size, wait_kwargs)
    left = list(refs)
    while left:
        batch, left = _next_batch(left, chunk_size, yield_obj_refs, wait_kwargs)
        yield from batch


def map_unordered(fn: Any, items: Iterable[Any], *, backpressure_size: int | None = DEFAULT_BACKPRESSURE_SIZE,
                  chunk_size: int = DEFAULT_CHUNK_SIZE, yield_obj_refs: bool = False,
                  **wait_kwargs: Any) -> Iterator[Any]:
    """``fn.remote(item)`` for each item (at most ``backpressure_size`` in flight); yield results as they finish."""
    if backpressure_size is not None and backpressure_size <= 0:
        raise ValueError("backpressure_size must be positive.")
    _check(chunk_size, wait_kwargs)
    limit = float("inf") if backpressure_size is None else backpressure_size
    in_flight: list[Any] = []
    for item in items:
        if len(in_flight) >= limit:
            batch, in_flight = _next_batch(in_flight, chunk_size, yield_obj_refs, wait_kwargs)
            yield from batch
        in_flight.append(fn.remote(item))
    yield from as_completed(in_flight, chunk_size=chunk_size, yield_obj_refs=yield_obj_refs, **wait_kwargs)
