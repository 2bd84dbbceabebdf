"""What the dashboard's data costs the hot path: bench rows with the dashboard on and off, alternating.

    python -m bench.dashboard_overhead [--reps 3] [--only NAME ...]

"On" is ``spindle.init()`` as the suite runs it (the head serves the dashboard, every driver and worker
reports task events); "off" is ``init(include_dashboard=False)`` with ``SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS=0``
(no HTTP server, no task events), i.e. Spindle before the dashboard existed. Each run is a fresh
``python -m bench.worker`` (the suite's own runner); on and off alternate and swap order every repetition;
the table shows medians and the machine's load average at the start and end of each row's runs. The first
rows, CPU time per task and per actor call of each process (driver, head + agent, workers) and of the whole
cluster, show the events' cost far less dependent on how busy the machine is than throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench import proc, spec
from bench.run import DEFAULT_SPINDLE_PYTHON, ROOT, _env, log

ROWS = ("single_client_tasks_sync", "single_client_tasks_async", "1_1_actor_calls_sync", "1_1_actor_calls_async",
        "1_1_async_actor_calls_async", "calculate_square_1000")


def one(python: Path, workload: str, dashboard: bool, timeout_s: float) -> dict[str, float]:
    env = _env([ROOT / "runtime"])
    cmd = [str(python), "-m", "bench.worker", "--impl", "spindle", "--workload", workload]
    if not dashboard:
        env["SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS"] = "0"
        cmd.append("--no-dashboard")
    out = proc.run(cmd, env, str(ROOT), timeout_s, 8192)
    if not out.ok:
        raise RuntimeError(f"{workload} dashboard={'on' if dashboard else 'off'} failed: {out.error}\n"
                           f"{out.stderr_tail[-1500:]}")
    return {k: float(v) for k, v in out.metrics.items() if isinstance(v, (int, float))}


CPU_CHILD = r"""
import json, os, sys, time, psutil, spindle
dashboard, kind, batches = sys.argv[1] == "on", sys.argv[2], int(sys.argv[3])
spindle.init(include_dashboard=dashboard, log_to_driver=False)
if kind == "tasks":
    f = spindle.remote(lambda: 0)
    call = f.remote
else:
    @spindle.remote
    class A:
        def m(self):
            return 0
    call = A.remote().m.remote
for _ in range(2):
    spindle.get([call() for _ in range(1000)])  # warm: leases and workers up
time.sleep(1.5)

def cpu():
    out = {"driver": 0.0, "head+agent": 0.0, "workers": 0.0}
    for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = p.cpu_times()
            role = ("driver" if p.pid == os.getpid() else
                    "head+agent" if "spindle._embedded" in " ".join(p.cmdline()) else "workers")
            out[role] += t.user + t.system
        except psutil.Error:
            pass
    return out

before, t0 = cpu(), time.perf_counter()
for _ in range(batches):
    spindle.get([call() for _ in range(1000)])
rate = batches * 1000 / (time.perf_counter() - t0)
time.sleep(2.5)  # the last event batches are reported and merged (every second)
after = cpu()
us = {k: (after[k] - before[k]) / (batches * 1000) * 1e6 for k in after}
print("CPU_US_PER_TASK", json.dumps({**us, "cluster": sum(us.values()), "rate": rate}))
spindle.shutdown()
"""


def cpu_per_task(python: Path, dashboard: bool, kind: str, batches: int) -> dict[str, float]:
    """CPU time (user + system) per task or actor call of the driver, the head + agent process and the workers,
    over ``batches`` x 1,000 calls (``kind``: tasks or actors), and the calls per second.

    Unlike throughput this hardly depends on what else the machine runs, so it shows the cost of the events
    even on a shared, loaded machine (it still varies by ~10% between runs: compare medians).
    """
    env = _env([ROOT / "runtime"])
    if not dashboard:
        env["SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS"] = "0"
    out = subprocess.run([str(python), "-c", CPU_CHILD, "on" if dashboard else "off", kind, str(batches)], env=env,
                         capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("CPU_US_PER_TASK "):
            return {k: float(v) for k, v in json.loads(line.split(" ", 1)[1]).items()}
    raise RuntimeError(f"cpu run failed (exit {out.returncode}): {out.stderr[-1500:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="runs per side and row (default 3)")
    p.add_argument("--only", action="append", default=None, help="rows whose name contains this (repeatable)")
    p.add_argument("--python", type=Path, default=DEFAULT_SPINDLE_PYTHON if DEFAULT_SPINDLE_PYTHON.exists()
                   else Path(sys.executable), help="interpreter with Spindle (default .venv/bin/python)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--cpu-batches", type=int, default=20,
                   help="also measure CPU per task and per actor call over this many batches of 1,000 (0 = skip)")
    args = p.parse_args(argv)
    rows = [r for r in ROWS if not args.only or any(o in r for o in args.only)]
    table = []
    for kind in ("tasks", "actors") if args.cpu_batches else ():
        cpu: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        load0 = os.getloadavg()[0]
        for rep in range(args.reps):
            for dashboard in ((True, False) if rep % 2 == 0 else (False, True)):
                log(f"==> cpu per call ({kind}), dashboard {'on' if dashboard else 'off'} rep {rep + 1}/{args.reps}")
                cpu[dashboard].append(cpu_per_task(args.python, dashboard, kind, args.cpu_batches))
                log("    " + ", ".join(f"{k} {v:.0f}" for k, v in cpu[dashboard][-1].items()))
        load1 = os.getloadavg()[0]
        for part in cpu[True][0]:
            on = statistics.median(c[part] for c in cpu[True])
            off = statistics.median(c[part] for c in cpu[False])
            metric, unit = (f"{kind}_per_s", "/s") if part == "rate" else (f"cpu_us_per_call_{kind}_{part}", "us")
            table.append((metric, unit, on, off, (on / off - 1) if unit == "/s" else (off / on - 1), load0, load1))
    units = {m.name: m.unit for w in spec.WORKLOADS for m in w.metrics}
    for workload in rows:
        samples: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        load0 = os.getloadavg()[0]
        for rep in range(args.reps):
            for dashboard in ((True, False) if rep % 2 == 0 else (False, True)):
                log(f"==> {workload} dashboard {'on' if dashboard else 'off'} rep {rep + 1}/{args.reps}")
                samples[dashboard].append(one(args.python, workload, dashboard, args.timeout))
        load1 = os.getloadavg()[0]
        for metric in samples[True][0]:
            on = statistics.median(s[metric] for s in samples[True])
            off = statistics.median(s[metric] for s in samples[False])
            higher_better = units.get(metric, "/s") == "/s"
            change = (on / off - 1) if higher_better else (off / on - 1)
            table.append((metric, units.get(metric, ""), on, off, change, load0, load1))
            log(f"    {metric}: on {on:.4g} off {off:.4g} ({change:+.1%})")
    print("\n| metric | unit | dashboard on | dashboard off | on vs off | load avg (start-end) |")
    print("|---|---|---|---|---|---|")
    for metric, unit, on, off, change, l0, l1 in table:
        print(f"| {metric} | {unit} | {on:,.4g} | {off:,.4g} | {change:+.1%} | {l0:.1f}-{l1:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
