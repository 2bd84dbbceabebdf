"""CPU time and latency per synchronous call to an actor on another node: TCP frame stream vs gRPC stream.

``python -m bench.actor_stream_cpu [--calls N] [--reps R]`` (root; uses ``ip netns``). One two-node
cluster (``bench.multinode.cluster``: a head with no CPUs beside the driver, a node in another
namespace); each repetition runs one driver per mode, in alternating order, with
``SPINDLE_TCP_ACTOR_STREAM`` set for the driver only (the caller decides whether to ask for the TCP
port; ``0`` is the gRPC stream every cross-node call used before). Per mode it prints the medians over
repetitions of: the driver's and the actor worker's CPU time per call (all their threads, from
``/proc`` via psutil) and the median and p90 latency of one call, for calls made one at a time, and
the CPU per call for five bursts of 1,000 calls (``batch_*``: the batched path must not get worse). Throughput on a shared two-core
machine swings too much to compare; CPU per call does not, so that is the figure to read, beside the
load average printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

from bench import multinode, netns

DRIVER = r"""
import json, os, sys, time
import psutil
import spindle

spindle.init(address=sys.argv[1], log_to_driver=False)

@spindle.remote(num_cpus=1)  # on the node with CPUs: never beside the driver
class A:
    def f(self):
        return 1
    def pid(self):
        return os.getpid()

a = A.remote()
worker = psutil.Process(spindle.get(a.pid.remote()))
for _ in range(300):
    spindle.get(a.f.remote())
n = int(sys.argv[2])
me = psutil.Process()
lat = []
c0, w0 = me.cpu_times(), worker.cpu_times()
t0 = time.perf_counter()
for _ in range(n):
    s = time.perf_counter()
    spindle.get(a.f.remote())
    lat.append(time.perf_counter() - s)
wall = time.perf_counter() - t0
c1, w1 = me.cpu_times(), worker.cpu_times()
t1 = time.perf_counter()
for _ in range(5):
    spindle.get([a.f.remote() for _ in range(1000)])
batch_wall = time.perf_counter() - t1
c2, w2 = me.cpu_times(), worker.cpu_times()
from spindle._core import context
call = context.core().actors.conns[a._actor_id].call
lat.sort()
print(json.dumps({
    "transport": call.fs.sock.family.name if hasattr(call, "fs") else "grpc",
    "driver_cpu_us": ((c1.user + c1.system) - (c0.user + c0.system)) / n * 1e6,
    "worker_cpu_us": ((w1.user + w1.system) - (w0.user + w0.system)) / n * 1e6,
    "lat_p50_us": lat[n // 2] * 1e6, "lat_p90_us": lat[int(n * 0.9)] * 1e6, "calls_per_s": n / wall,
    "batch_driver_cpu_us": ((c2.user + c2.system) - (c1.user + c1.system)) / 5000 * 1e6,
    "batch_worker_cpu_us": ((w2.user + w2.system) - (w1.user + w1.system)) / 5000 * 1e6,
    "batch_calls_per_s": 5000 / batch_wall,
}))
spindle.shutdown()
"""

KEYS = ("driver_cpu_us", "worker_cpu_us", "lat_p50_us", "lat_p90_us", "calls_per_s", "batch_driver_cpu_us",
        "batch_worker_cpu_us", "batch_calls_per_s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000, help="synchronous calls per driver run (default 3000)")
    ap.add_argument("--reps", type=int, default=5, help="driver runs per mode, alternating (default 5)")
    args = ap.parse_args()
    python = Path(sys.executable)
    token = secrets.token_hex(16)
    env = {**os.environ, "SPINDLE_TOKEN": token}
    results: dict[str, list[dict[str, float]]] = {"tcp": [], "grpc": []}
    with netns.pair(prefix="spas", subnet="10.78.0") as pair, multinode.cluster("spindle", python, pair, env):
        for rep in range(args.reps):
            for mode in (("tcp", "grpc") if rep % 2 == 0 else ("grpc", "tcp")):
                denv = {**env, "SPINDLE_TCP_ACTOR_STREAM": "1" if mode == "tcp" else "0"}
                r = subprocess.run(
                    [*pair.exec_prefix(pair.head_ns), str(python), "-c", DRIVER,
                     multinode.address("spindle", pair), str(args.calls)],
                    env=denv, capture_output=True, text=True, timeout=600, check=True,
                )  # fmt: skip
                row = json.loads(r.stdout.strip().splitlines()[-1])
                shown = " ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
                print(f"rep {rep + 1} {mode:4} load {os.getloadavg()[0]:.2f} {shown}", flush=True)
                results[mode].append(row)
    for mode, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in KEYS}
        print(f"{mode:4} medians over {len(rows)} runs: " + "  ".join(f"{k} {v:.0f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
