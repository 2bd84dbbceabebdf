"""What the dashboard's data costs the hot path: bench rows with the dashboard on and off, alternating.

    python -m bench.dashboard_overhead [--reps 3] [--only NAME ...]

"On" is ``spindle.init()`` as the suite runs it (the head serves the dashboard, every driver and worker
reports task events); "off" is ``init(include_dashboard=False)`` with ``SPINDLE_TASK_EVENTS_REPORT_INTERVAL_MS=0``
(no HTTP server, no task events), i.e. Spindle before the dashboard existed. Each run is a fresh
``python -m bench.worker`` (the suite's own runner); on and off alternate and swap order every repetition;
the table shows medians and the machine's load average at the start and end of each row's runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="runs per side and row (default 3)")
    p.add_argument("--only", action="append", default=None, help="rows whose name contains this (repeatable)")
    p.add_argument("--python", type=Path, default=DEFAULT_SPINDLE_PYTHON if DEFAULT_SPINDLE_PYTHON.exists()
                   else Path(sys.executable), help="interpreter with Spindle (default .venv/bin/python)")
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args(argv)
    rows = [r for r in ROWS if not args.only or any(o in r for o in args.only)]
    units = {m.name: m.unit for w in spec.WORKLOADS for m in w.metrics}
    table = []
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
