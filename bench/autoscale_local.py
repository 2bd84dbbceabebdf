"""How fast the local autoscaler grows and shrinks (``python -m bench.autoscale_local``).

Real processes on this machine: a head started with ``--num-cpus 0 --autoscale-local 2`` (the local
provider runs in it), and this process as the driver. Each repeat queues one one-CPU task on the
empty cluster and measures ``demand_to_running_s`` (submit -> the task runs on a node the provider
started, including that agent's start), then ``idle_to_removed_s`` (the task's end -> the head
lists the node DEAD: idle timeout + drain confirmation + stop). Prints one JSON object of medians;
the tests (tests/runtime/test_autoscaler_*.py) check the behaviour, this only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import spindle
from spindle import _local_cluster
from spindle.autoscaler.local import HttpHeadApi


@spindle.remote(num_cpus=1)
def _stamp() -> float:
    return time.time()


def _local_alive(api: HttpHeadApi) -> list[str]:
    return [n["node_id"] for n in api.state()["nodes"]
            if n["labels"].get("spindle.dev/group") == "local" and n["state"] != "DEAD"]


def run(repeats: int, idle_timeout_s: float) -> dict[str, float]:
    procs = _local_cluster.start(head=True, num_cpus=0, dashboard_port=0,
                                 head_args=["--autoscale-local", "2", "--idle-timeout-s", str(idle_timeout_s)])
    os.environ["SPINDLE_TOKEN"] = procs.token
    up: list[float] = []
    down: list[float] = []
    try:
        spindle.init(address=procs.head_address, log_to_driver=False)
        api = HttpHeadApi(procs.dashboard_address, procs.token)
        for _ in range(repeats):
            submitted = time.time()
            started = spindle.get(_stamp.remote(), timeout=300)
            finished = time.time()
            up.append(started - submitted)
            deadline = time.monotonic() + 300
            while _local_alive(api):
                if time.monotonic() > deadline:
                    raise TimeoutError("the idle node was never removed")
                time.sleep(0.05)
            down.append(time.time() - finished)
    finally:
        spindle.shutdown()
        procs.stop()
    return {"demand_to_running_s": round(statistics.median(up), 2),
            "idle_to_removed_s": round(statistics.median(down), 2), "idle_timeout_s": idle_timeout_s,
            "repeats": repeats, "load_1m": round(os.getloadavg()[0], 1)}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.autoscale_local", description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--idle-timeout-s", type=float, default=3.0)
    args = p.parse_args()
    print(json.dumps(run(args.repeats, args.idle_timeout_s)))


if __name__ == "__main__":
    main()
