"""The classic prime-counting example, timed as a whole script (interpreter start to exit).

``python bench/primes.py --impl spindle|ray [--lo N --hi M --chunks K]`` counts the primes in
``[lo, hi)`` with one remote task per chunk and prints ``BENCH_RESULT {"count": ...}``. It is a copy of
the user-facing example rather than an import of it, so the benchmark stays fixed while examples evolve.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for d in range(3, math.isqrt(n) + 1, 2):
        if n % d == 0:
            return False
    return True


def count_primes(lo: int, hi: int) -> int:
    return sum(1 for n in range(lo, hi) if is_prime(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=["ray", "spindle"], required=True)
    parser.add_argument("--lo", type=int, default=10_000_000)
    parser.add_argument("--hi", type=int, default=12_000_000)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    ray = importlib.import_module(args.impl)
    kwargs = {"include_dashboard": False} if args.impl == "ray" else {}
    ray.init(log_to_driver=False, **kwargs)
    remote_count = ray.remote(count_primes)
    step = -(-(args.hi - args.lo) // args.chunks)
    bounds = [(lo, min(lo + step, args.hi)) for lo in range(args.lo, args.hi, step)]
    count = sum(ray.get([remote_count.remote(lo, hi) for lo, hi in bounds]))
    ray.shutdown()
    print(
        "BENCH_RESULT " + json.dumps({"ok": True, "metrics": {"count": count}}),
        flush=True,
    )


if __name__ == "__main__":
    main()
