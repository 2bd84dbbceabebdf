"""Count the primes between 10,000,000 and 20,000,000 in chunks, one remote task per chunk.

The classic first Ray program: a CPU-bound loop split into independent tasks that run on every core
(and every node) of the cluster, then summed on the driver.

    python examples/primes.py                                   # the full range
    python examples/primes.py --start 10000000 --end 12000000   # the benchmark range
"""

from __future__ import annotations

import argparse
import time

import spindle as ray


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    i = 3
    while i * i <= n:
        if n % i == 0:
            return False
        i += 2
    return True


@ray.remote
def count_primes(start: int, end: int) -> int:
    """Number of primes in [start, end)."""
    return sum(1 for n in range(start, end) if is_prime(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=10_000_000)
    parser.add_argument("--end", type=int, default=20_000_000, help="exclusive")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args()

    began = time.perf_counter()
    ray.init()
    chunks = range(args.start, args.end, args.chunk_size)
    refs = [count_primes.remote(s, min(s + args.chunk_size, args.end)) for s in chunks]
    total = sum(ray.get(refs))
    elapsed = time.perf_counter() - began
    print(f"Primes between {args.start:,} and {args.end:,}: {total}")
    print(f"Tasks: {len(refs)}, elapsed: {elapsed:.2f} s")


if __name__ == "__main__":
    main()
