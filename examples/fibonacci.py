"""Fibonacci sequences computed locally one after another, then as parallel remote tasks.

The same function body runs once per CPU in both modes; the remote version spreads the calls
over the cluster's worker processes, so on N cores it takes about 1/N of the local time (once the
sequence is long enough to outweigh the per-task overhead).

    python examples/fibonacci.py [--size 100000] [--copies N]
"""

from __future__ import annotations

import argparse
import os
import time

import spindle as ray


def fibonacci_local(sequence_size: int) -> int:
    """Build the first `sequence_size` Fibonacci numbers; return the last one."""
    fibonacci: list[int] = []
    for i in range(sequence_size):
        if i < 2:
            fibonacci.append(i)
            continue
        fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
    return fibonacci[-1] if fibonacci else 0


@ray.remote
def fibonacci_distributed(sequence_size: int) -> int:
    return fibonacci_local(sequence_size)


def describe(n: int) -> str:
    """The number itself when short, else its digit count and last digits (str() of a huge int
    is refused by Python past 4,300 digits)."""
    digits = int(n.bit_length() * 0.30102999566398)  # floor(log10(n)) or one less
    if n >= 10**digits:
        digits += 1
    return str(n) if digits <= 30 else f"{digits} digits, ending ...{n % 10**10:010d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="sequence length")
    parser.add_argument("--copies", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    began = time.perf_counter()
    local = [fibonacci_local(args.size) for _ in range(args.copies)]
    local_s = time.perf_counter() - began
    print(f"Sequence size: {args.size}, local execution time: {local_s:.3f} s")

    ray.init()
    began = time.perf_counter()
    remote = ray.get([fibonacci_distributed.remote(args.size) for _ in range(args.copies)])
    remote_s = time.perf_counter() - began
    print(f"Sequence size: {args.size}, remote execution time: {remote_s:.3f} s")

    assert remote == local, "remote and local results differ"
    print(f"Last Fibonacci number: {describe(remote[0])}")


if __name__ == "__main__":
    main()
