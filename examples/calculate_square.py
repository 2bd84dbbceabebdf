"""A thousand tiny tasks: square each number remotely and gather the results.

Shows the per-task overhead of the runtime: each task does almost nothing, so the elapsed time is
the cost of submitting, scheduling and returning 1,000 results.

    python examples/calculate_square.py [--n 1000]
"""

from __future__ import annotations

import argparse
import time

import spindle as ray


@ray.remote
def calculate_square(x: int) -> int:
    return x * x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of tasks")
    args = parser.parse_args()

    ray.init()
    began = time.perf_counter()
    squares = ray.get([calculate_square.remote(i) for i in range(args.n)])
    elapsed = time.perf_counter() - began
    print(f"First squares: {squares[:10]}")
    print(f"Tasks: {len(squares)}, sum of squares: {sum(squares)}")
    print(f"Elapsed: {elapsed:.3f} s ({len(squares) / elapsed:,.0f} tasks/s)")


if __name__ == "__main__":
    main()
