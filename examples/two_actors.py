"""Two data-holding actors that load and filter their halves of a dataset in parallel.

Each actor keeps its shard in memory between calls, so the data is loaded once and then filtered
as many times as needed without moving it; because the actors are separate processes, the two
loads (and the two filters) run at the same time, and only the small filtered results travel back.

    python examples/two_actors.py [--rows 1000000] [--load-delay 1.0] [--threshold 100]
"""

from __future__ import annotations

import argparse
import time

import spindle as ray


def record_value(row_id: int) -> int:
    """A deterministic pseudo-random value in [0, 1000) for each row."""
    return (row_id * 7919 + 13) % 1000


@ray.remote
class DataHolder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[tuple[int, int]] = []

    def ready(self) -> str:
        return self.name

    def load(self, start: int, end: int, delay: float) -> int:
        """Load rows [start, end); `delay` stands in for reading them from storage."""
        time.sleep(delay)
        self.rows = [(i, record_value(i)) for i in range(start, end)]
        return len(self.rows)

    def filter(self, threshold: int) -> tuple[int, int]:
        """Count and id-sum of the rows whose value is below `threshold`."""
        ids = [i for i, value in self.rows if value < threshold]
        return len(ids), sum(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--load-delay", type=float, default=1.0, help="simulated I/O per load")
    parser.add_argument("--threshold", type=int, default=100)
    args = parser.parse_args()

    ray.init()
    holders = [DataHolder.remote("first"), DataHolder.remote("second")]  # type: ignore[attr-defined]
    half = args.rows // 2
    ray.get([h.ready.remote() for h in holders])  # both processes are up: time only the work

    began = time.perf_counter()
    loaded = ray.get(
        [
            holders[0].load.remote(0, half, args.load_delay),
            holders[1].load.remote(half, args.rows, args.load_delay),
        ]
    )
    load_s = time.perf_counter() - began
    print(f"Loaded {loaded} rows in {load_s:.2f} s (each load takes at least {args.load_delay} s)")

    began = time.perf_counter()
    parts = ray.get([h.filter.remote(args.threshold) for h in holders])
    filter_s = time.perf_counter() - began
    matches, id_sum = sum(p[0] for p in parts), sum(p[1] for p in parts)
    print(f"Rows with value < {args.threshold}: {matches} (id sum {id_sum}) in {filter_s:.2f} s")


if __name__ == "__main__":
    main()
