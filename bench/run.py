"""The orchestrator: ``python -m bench [--smoke] [--only NAME] [--reps N] [--ray-python PATH] ...``.

It never imports Ray or Spindle itself. Each (workload, implementation, repetition) runs in a fresh
interpreter (``bench.worker``, or a whole script such as ``bench/primes.py``); implementations alternate
within each repetition, and their order flips between repetitions, so that slow drifts of a shared machine
hit both alike. The table shows medians; the JSON under ``bench/results/`` keeps every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import proc, report, spec
from bench.primes import count_primes

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RAY_PYTHON = Path.home() / ".cache/spindle-bench/ray-venv/bin/python"
DEFAULT_SPINDLE_PYTHON = ROOT / ".venv/bin/python"
RAY_TMPDIR = Path("/tmp/spindle-bench/ray")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run Spindle's benchmarks side by side with Ray and print metric / Spindle / Ray / "
        "ratio (median; ratio > 1 means Spindle is better).",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, Spindle only, one repetition (for CI)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run workloads whose name contains NAME (repeatable)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions per implementation (default 3; smoke 1)",
    )
    p.add_argument(
        "--ray-python",
        type=Path,
        default=None,
        help=f"interpreter with Ray installed (default {DEFAULT_RAY_PYTHON} when it exists)",
    )
    p.add_argument(
        "--spindle-python",
        type=Path,
        default=None,
        help=f"interpreter with Spindle installed (default {DEFAULT_SPINDLE_PYTHON})",
    )
    p.add_argument("--no-ray", action="store_true", help="measure Spindle only")
    p.add_argument(
        "--no-spindle",
        action="store_true",
        help="measure Ray only (to check the harness)",
    )
    p.add_argument("--no-scale", action="store_true", help="skip the scale runs")
    p.add_argument(
        "--scale-ray",
        action="store_true",
        help="also run the scale runs under Ray (1,000 Ray actors are 1,000 processes)",
    )
    p.add_argument(
        "--scale-actors",
        type=int,
        default=None,
        metavar="N",
        help="actors created in scale_1k_actors (default 1,000; fewer where 1,000 processes do not fit the machine)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds per run before it is killed",
    )
    p.add_argument(
        "--mem-cap-mib",
        type=float,
        default=12288.0,
        help="kill a run whose process tree exceeds this (MiB of PSS: pages shared between its processes count once)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default bench/results/<utc time>.json)",
    )
    p.add_argument("--list", action="store_true", help="list workloads and metrics, then exit")
    p.add_argument("--show", type=Path, default=None, metavar="JSON", help="print the table of a saved run, then exit")
    p.add_argument("--markdown", action="store_true", help="with --show: a Markdown table (for bench/README.md)")
    p.add_argument(
        "--multinode",
        action="store_true",
        help="two-node figures in network namespaces (root; see bench/README.md)",
    )
    p.add_argument(
        "--k8s",
        action="store_true",
        help="Spindle's operator beside KubeRay's on a kind cluster built here (root, Go, Docker; "
        "see bench/README.md): cluster and job start-up, pod and operator memory, image sizes",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="the whole table in one run: this machine (every workload), then --multinode, then --k8s; "
        "prints one Markdown report for bench/README.md at the end (root, Go, Docker; about an hour)",
    )
    p.add_argument("--keep-cluster", action="store_true", help="with --k8s: leave the kind cluster up afterwards, and measure on such a cluster again "
                   "instead of creating one")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _env(extra_path: list[Path]) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(p) for p in [ROOT, *extra_path]]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # A private Ray temp dir: ray.init() would otherwise join whatever cluster the last `ray start`
    # on this machine recorded in /tmp/ray/ray_current_cluster (another engineer's, or ours).
    env["RAY_TMPDIR"] = str(RAY_TMPDIR)
    env.pop("RAY_ADDRESS", None)
    return env


def probe(python: Path, module: str) -> tuple[dict[str, str] | None, str]:
    """Environment under which ``python`` imports ``module`` (trying ``runtime/`` on the path for Spindle)."""
    candidates = [[], [ROOT / "runtime"]] if module == "spindle" else [[]]
    detail = ""
    for extra in candidates:
        env = _env(extra)
        # byte-compile the package first, as installing a wheel does (a source checkout run with
        # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module in every process it starts)
        code = (f"import compileall, os, {module}; compileall.compile_dir(os.path.dirname({module}.__file__), "
                f"quiet=2); print(getattr({module}, '__version__', '?'))")
        r = subprocess.run(
            [str(python), "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if r.returncode == 0:
            return env, r.stdout.strip()
        detail = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    return None, detail


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
    }


def git_commit() -> str:
    """Short HEAD, with "+dirty" when runtime/ has uncommitted changes (the run measured the working tree)."""
    r = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    d = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "runtime"], capture_output=True, text=True, check=False
    )
    return (r.stdout.strip() or "unknown") + ("+dirty" if d.stdout.strip() else "")


def command(w: spec.Workload, impl: str, python: Path, sizes: spec.Sizes, smoke: bool) -> list[str]:
    if w.script == "bench/tune_asha.py":
        return [str(python), str(ROOT / w.script), "--impl", impl, "--samples", str(sizes.tune_samples),
                "--steps", str(sizes.tune_steps)]
    if w.script == "bench/jobs_latency.py":
        return [str(python), str(ROOT / w.script), "--impl", impl, "--runs", str(sizes.job_runs)]
    if w.script:
        return [
            str(python),
            str(ROOT / w.script),
            "--impl",
            impl,
            "--lo",
            str(sizes.primes_lo),
            "--hi",
            str(sizes.primes_hi),
            "--chunks",
            str(sizes.primes_chunks),
        ]
    return [
        str(python),
        "-m",
        "bench.worker",
        "--impl",
        impl,
        "--workload",
        w.name,
        *(["--smoke"] if smoke else []),
        *(["--scale-actors", str(sizes.scale_actors)] if w.name == "scale_1k_actors" else []),
    ]


def expected_primes(sizes: spec.Sizes) -> int:
    if (sizes.primes_lo, sizes.primes_hi) == (spec.FULL.primes_lo, spec.FULL.primes_hi):
        return spec.PRIMES_FULL_COUNT
    return count_primes(sizes.primes_lo, sizes.primes_hi)


def to_run(w: spec.Workload, impl: str, rep: int, out: proc.Outcome, sizes: spec.Sizes) -> report.Run:
    """Fill in the metrics the orchestrator measures from outside (whole-script wall, peak memory)."""
    metrics = dict(out.metrics)
    ok, error = out.ok, out.error
    if w.script == "bench/tune_asha.py" and ok:
        metrics[w.metrics[0].name] = out.wall_s
    elif w.script == "bench/jobs_latency.py":
        pass  # the script reports its own medians
    elif w.script and ok:
        if metrics.pop("count", None) != expected_primes(sizes):
            ok, error = False, "wrong prime count"
        metrics[w.metrics[0].name] = out.wall_s
    if w.scale and ok:
        metrics[f"{w.name}_peak_mib"] = out.peak_mib
    return report.Run(w.name, impl, rep, ok, out.wall_s, out.peak_mib, metrics, error, out.peak_rss_mib)


def describe(run: report.Run, w: spec.Workload) -> str:
    if not run.ok:
        return f"FAILED: {run.error}"
    parts = [
        f"{m.name}={report.format_value(run.metrics.get(m.name))}{'' if m.unit == 'bool' else ' ' + m.unit}" for m in w.metrics
    ]
    return ", ".join(parts) + f"  ({run.wall_s:.1f} s wall, peak {run.peak_mib:.0f} MiB PSS, {run.peak_rss_mib:.0f} MiB summed RSS)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for w in spec.WORKLOADS:
            print(w.name + ("  [scale]" if w.scale else ""))
            for m in w.metrics:
                print(f"    {m.name} ({m.unit}, {m.better.value} is better)")
        return 0
    if args.show:
        data = json.loads(args.show.read_text())
        rows = [report.Row(**r) for r in data["summary"]]
        print(report.heading(data["meta"]))
        print(report.table(rows, markdown=args.markdown))
        return 0
    if args.all:
        from bench import full

        return full.main(args)
    if args.multinode:
        from bench import multinode

        return multinode.main(args)
    if args.k8s:
        from bench.k8s import run as k8s

        return k8s.main(reps=args.reps or 3, keep=args.keep_cluster, out=args.out)
    return run_local(args)


def run_local(args: argparse.Namespace) -> int:
    """Every workload on this machine, Spindle and Ray alternating (the default mode)."""
    RAY_TMPDIR.mkdir(parents=True, exist_ok=True)
    sizes = spec.SMOKE if args.smoke else spec.FULL
    if args.scale_actors:
        sizes = dataclasses.replace(sizes, scale_actors=args.scale_actors)
    reps = args.reps or (1 if args.smoke else 3)
    workloads = [w for w in spec.select(args.only) if not (w.scale and args.no_scale)]
    if not workloads:
        log(f"no workload matches {args.only}; see --list")
        return 2

    pythons: dict[str, Path] = {
        "spindle": args.spindle_python
        or (DEFAULT_SPINDLE_PYTHON if DEFAULT_SPINDLE_PYTHON.exists() else Path(sys.executable))
    }
    ray_python = args.ray_python or (DEFAULT_RAY_PYTHON if DEFAULT_RAY_PYTHON.exists() else None)
    if ray_python and not (args.smoke or args.no_ray):
        pythons["ray"] = ray_python
    if args.no_spindle and "ray" in pythons:
        del pythons["spindle"]
    envs: dict[str, dict[str, str]] = {}
    versions: dict[str, str] = {}
    for impl, python in list(pythons.items()):
        env, detail = probe(python, impl)
        if env is None:
            log(f"{impl}: cannot import with {python}: {detail}")
            if impl == "ray":
                del pythons[impl]
                continue
            env = _env([ROOT / "runtime"])  # run anyway so every workload reports the failure
        envs[impl] = env
        versions[impl] = detail
        log(f"{impl}: {python} (version {detail})")

    plan = []
    for w in workloads:
        impls = [i for i in pythons if not (w.scale and i == "ray" and not args.scale_ray)]
        for rep in range(reps):
            plan += [(w, impl, rep) for impl in (impls if rep % 2 == 0 else impls[::-1])]

    metric_names = [m.name for w in workloads for m in w.metrics]
    now = dt.datetime.now(dt.timezone.utc)
    meta: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "git_commit": git_commit(),
        "mode": "smoke" if args.smoke else "full",
        "reps": reps,
        "pythons": {k: str(v) for k, v in pythons.items()},
        "versions": versions,
        "sizes": sizes.__dict__,
    }
    out_path = args.out or ROOT / "bench/results" / f"{now:%Y%m%dT%H%M%SZ}{'-smoke' if args.smoke else ''}.json"
    runs: list[report.Run] = []
    for i, (w, impl, rep) in enumerate(plan, 1):
        log(f"[{i}/{len(plan)}] {w.name} {impl} rep {rep + 1}/{reps} ...")
        out = proc.run(
            command(w, impl, pythons[impl], sizes, args.smoke),
            envs[impl],
            str(ROOT),
            args.timeout,
            args.mem_cap_mib,
        )
        run = to_run(w, impl, rep, out, sizes)
        runs.append(run)
        log(f"    {describe(run, w)}")
        if not run.ok and out.stderr_tail:
            log("    | " + "\n    | ".join(out.stderr_tail.strip().splitlines()[-8:]))
        # Written after every run, so an interrupted suite keeps what it measured.
        report.write(out_path, report.record(meta, runs, report.summarize(runs, metric_names)))

    rows = report.summarize(runs, metric_names)
    print("\n" + report.heading(meta) + "\n")
    print(report.table(rows))
    print(f"\nJSON: {out_path}")
    return 0 if all(r.ok for r in runs) else 1
