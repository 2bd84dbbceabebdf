"""A Counter actor: state that lives in one worker process and survives between calls.

A plain object passed to tasks would be copied into each task; an actor is one instance that all
calls go to, executed one at a time in the order each caller submitted them.

    python examples/counter.py [--increments 10] [--tasks 4]
"""

from __future__ import annotations

import argparse
from typing import Any

import spindle as ray


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> int:
        self.value += 1
        return self.value

    def get_counter(self) -> int:
        return self.value


@ray.remote
def increment_many(counter: Any, times: int) -> int:
    """Tasks can use an actor handle passed to them, like the driver does."""
    return ray.get([counter.increment.remote() for _ in range(times)])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--increments", type=int, default=10, help="driver increments")
    parser.add_argument("--tasks", type=int, default=4, help="tasks sharing the counter")
    args = parser.parse_args()

    ray.init()
    counter = Counter.remote()  # type: ignore[attr-defined]
    values = ray.get([counter.increment.remote() for _ in range(args.increments)])
    print(f"Values seen by the driver: {values}")

    ray.get([increment_many.remote(counter, args.increments) for _ in range(args.tasks)])
    print(f"Counter value after {args.tasks} tasks: {ray.get(counter.get_counter.remote())}")


if __name__ == "__main__":
    main()
