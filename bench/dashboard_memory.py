"""Idle memory of an embedded cluster with the dashboard on and off, Spindle next to Ray.

    python -m bench.dashboard_memory [--runs 3] [--settle 5] [--ray-python PATH]

Each configuration runs in a fresh interpreter: ``init()`` (Spindle: ``include_dashboard`` on/off; Ray:
``include_dashboard=True`` / ``False``), 10 trivial tasks, ``--settle`` seconds idle, then the driver and
every process it started (all descendants of the driver, for both) are summed: RSS (VmRSS in /proc),
and PSS (proportional set size, from /proc/<pid>/smaps_rollup: shared pages split among the processes
that map them, so the sum is what the cluster really costs the machine). Medians over ``--runs``.
Ray is skipped when ``--ray-python`` cannot import it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

CHILD = r"""
import json, os, sys, time
impl, dashboard, settle = sys.argv[1], sys.argv[2] == "on", float(sys.argv[3])
if impl == "ray":
    import ray as r
else:
    import spindle as r
r.init(include_dashboard=dashboard, num_cpus=2)
f = r.remote(lambda: 1)
assert r.get([f.remote() for _ in range(10)]) == [1] * 10
time.sleep(settle)

def kb(path, key):
    with open(path) as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0

parents = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            parents[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        pass
tree, frontier = {os.getpid()}, [os.getpid()]
while frontier:
    cur = frontier.pop()
    kids = [p for p, pp in parents.items() if pp == cur and p not in tree]
    tree.update(kids)
    frontier.extend(kids)
rss = pss = 0
names = []
for pid in tree:
    try:
        rss += kb(f"/proc/{pid}/status", "VmRSS:")
        pss += kb(f"/proc/{pid}/smaps_rollup", "Pss:")
        with open(f"/proc/{pid}/comm") as fh:
            names.append(fh.read().strip())
    except OSError:
        pass
print("RESULT " + json.dumps({"rss_mib": rss / 1024, "pss_mib": pss / 1024, "processes": len(names),
                              "names": sorted(names)}), flush=True)
r.shutdown()
"""


def run_once(python: str, impl: str, dashboard: str, settle: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINDLE_", "RAY_"))}
    out = subprocess.run([python, "-c", CHILD, impl, dashboard, str(settle)], capture_output=True, text=True,
                         timeout=300, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"{impl} dashboard={dashboard} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--settle", type=float, default=5.0, help="seconds idle before measuring (default 5)")
    p.add_argument("--ray-python", default=os.path.expanduser("~/.cache/spindle-ray/venv-2.60.0/bin/python"),
                   help="an interpreter with ray[default] (its dashboard needs the extra; tests/jobs/ray_venv.py makes "
                        "this venv)")
    p.add_argument("--only", choices=("spindle", "ray"), default=None)
    args = p.parse_args(argv)
    configs = [(i, py) for i, py in [("spindle", sys.executable), ("ray", args.ray_python)] if args.only in (None, i)]
    rows = []
    for impl, python in configs:
        if impl == "ray" and (not os.path.exists(python) or subprocess.run([python, "-c", "import ray"]).returncode):
            print(f"skipping Ray: {python} cannot import ray", file=sys.stderr)
            continue
        for dashboard in ("on", "off"):
            samples = []
            for i in range(args.runs):
                print(f"==> {impl} dashboard {dashboard}: run {i + 1}/{args.runs}", file=sys.stderr, flush=True)
                try:
                    samples.append(run_once(python, impl, dashboard, args.settle))
                except (RuntimeError, subprocess.TimeoutExpired) as e:  # e.g. Ray's start-up timeout on a loaded box
                    print(f"    run failed, not counted: {str(e)[-300:]}", file=sys.stderr, flush=True)
            if not samples:
                print(f"==> {impl} dashboard {dashboard}: every run failed", file=sys.stderr, flush=True)
                continue
            rows.append({"impl": impl, "dashboard": dashboard,
                         "rss_mib": statistics.median(s["rss_mib"] for s in samples),
                         "pss_mib": statistics.median(s["pss_mib"] for s in samples),
                         "processes": statistics.median(s["processes"] for s in samples),
                         "runs": len(samples), "names": samples[-1]["names"]})
    print(json.dumps(rows, indent=2))
    print("\n| cluster | dashboard | RSS MiB | PSS MiB | processes | runs |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['dashboard']} | {r['rss_mib']:.0f} | {r['pss_mib']:.0f} | {r['processes']:.0f} | {r['runs']} |")


if __name__ == "__main__":
    main()
