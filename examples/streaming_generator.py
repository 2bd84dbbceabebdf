"""Streaming results from a generator task: use each item as soon as it is produced.

A task that produces a long series of results (batches of a dataset, steps of a simulation)
does not have to finish before its caller sees anything: with ``num_returns="streaming"`` (the
default for generator functions) each ``yield`` becomes an object at once and the caller iterates
their refs as they arrive. Back-pressure keeps a fast producer from running ahead of a slow
consumer: here the producer pauses while ``--window`` items wait unconsumed.

    python examples/streaming_generator.py [--batches 8] [--batch-size 100000] [--window 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import numpy as np

import spindle as ray


@ray.remote
def load_batches(batches: int, batch_size: int) -> Iterator[np.ndarray]:
    """Produce ``batches`` arrays one by one (a stand-in for reading a dataset in chunks)."""
    rng = np.random.default_rng(0)
    for _ in range(batches):
        yield rng.integers(0, 1000, size=batch_size)


@ray.remote
class Stats:
    """An actor that streams running statistics back as it consumes batches."""

    def __init__(self) -> None:
        self.seen = 0
        self.total = 0

    def running_means(self, batches: list[np.ndarray]) -> Iterator[float]:
        for b in batches:
            self.seen += len(b)
            self.total += int(b.sum())
            yield self.total / self.seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=100_000)
    p.add_argument("--window", type=int, default=2, help="items the producer may run ahead (back-pressure)")
    args = p.parse_args()

    ray.init()
    start = time.perf_counter()
    gen = load_batches.options(_generator_backpressure_num_objects=args.window).remote(args.batches, args.batch_size)
    first_after = None
    sums = []
    for ref in gen:  # each ref is ready as soon as its batch was yielded
        batch = ray.get(ref)
        if first_after is None:
            first_after = time.perf_counter() - start
        sums.append(int(batch.sum()))
    print(f"Batches streamed: {len(sums)}")
    print(f"First batch after {first_after:.3f} s, all after {time.perf_counter() - start:.3f} s")
    print(f"Total of all values: {sum(sums)}")

    stats = Stats.remote()
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 1000, size=args.batch_size) for _ in range(args.batches)]
    means = [ray.get(r) for r in stats.running_means.remote(batches)]
    print(f"Running means from the actor: {len(means)} values, last {means[-1]:.3f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
