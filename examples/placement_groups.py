"""Gang scheduling with a placement group: reserve resources for a group of workers, then run them.

A training-style job needs all of its workers at once: starting half of them and waiting for
the rest wastes what the first half holds. A placement group reserves every bundle atomically
(all or nothing); the workers then run inside their bundles, on the reserved resources, and the
reservation is released when the group is removed (or when this driver exits).

    python examples/placement_groups.py [--workers 2] [--strategy SPREAD] [--steps 3]
"""

from __future__ import annotations

import argparse
import time

import spindle as ray
from spindle.util import placement_group, placement_group_table, remove_placement_group
from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote(num_cpus=1)
class Worker:
    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.total = 0

    def step(self, value: int) -> int:
        self.total += value * (self.rank + 1)
        return self.total

    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--strategy", default="SPREAD", choices=["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"])
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()

    ray.init()
    start = time.perf_counter()
    pg = placement_group([{"CPU": 1}] * args.workers, strategy=args.strategy, name="trainers")
    if not pg.wait(timeout_seconds=60):
        raise SystemExit(f"the cluster cannot hold {args.workers} one-CPU bundles ({args.strategy}) right now")
    print(f"Placement group ready: {args.workers} bundles, strategy {args.strategy}, "
          f"reserved in {time.perf_counter() - start:.2f} s")

    workers = [Worker.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i))
               .remote(i) for i in range(args.workers)]
    totals: list[int] = []
    for s in range(1, args.steps + 1):
        totals = ray.get([w.step.remote(s) for w in workers])
    print(f"Totals after {args.steps} steps: {totals}")

    nodes = placement_group_table(pg)["bundles_to_node_id"]
    on = ray.get([w.node.remote() for w in workers])
    print(f"Every worker ran on its bundle's node: {on == [nodes[i] for i in range(args.workers)]}")
    print(f"Nodes used: {len(set(on))}")
    remove_placement_group(pg)
    print(f"State after removal: {placement_group_table(pg)['state']}")
    ray.shutdown()


if __name__ == "__main__":
    main()
