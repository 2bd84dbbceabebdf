"""Job API latency: submit-to-RUNNING and submit-to-SUCCEEDED for trivial jobs, Spindle and Ray.

    python -m bench.jobs_latency [--runs 10] [--ray-python PATH]
    python -m bench --only job_api_latency     # the same as a row of the suite: alternating, medians


Each implementation runs in a fresh interpreter (``python -m bench.jobs_latency --impl spindle|ray``)
against a local head it starts itself (Spindle: head + agent with the job API; Ray: ``ray start
--head`` with its dashboard), submits through its own JobSubmissionClient and polls the status every
5 ms. Two entrypoints: ``true`` (the job machinery alone) and a Python driver that joins the cluster
and runs one task (what a real job pays on top). Medians and p90 in milliseconds are printed as JSON
and a table; Ray is skipped when ``--ray-python`` cannot import it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ENTRYPOINTS = {
    "shell true": "true",
    "driver + 1 task": "python -c \"import {m} as r; r.init(); print(r.get(r.remote(lambda: 1).remote()))\"",
}


def _measure(client: Any, entrypoint: str, runs: int) -> dict[str, Any]:
    running, done = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        sid = client.submit_job(entrypoint=entrypoint)
        t_run = None
        while True:
            info = client.get_job_info(sid)
            status = str(getattr(info.status, "value", info.status))
            if t_run is None and status != "PENDING":
                t_run = time.perf_counter()
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            time.sleep(0.005)
        t_end = time.perf_counter()
        if status != "SUCCEEDED":
            raise RuntimeError(f"{entrypoint!r} ended {status}: {info.message}")
        assert t_run is not None  # set on leaving PENDING, at the latest at the terminal status
        running.append((t_run - t0) * 1000)
        done.append((t_end - t0) * 1000)

    def stats(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {"median_ms": round(statistics.median(xs), 1), "p90_ms": round(xs[max(0, math.ceil(0.9 * len(xs)) - 1)], 1)}  # nearest rank

    return {"to_running": stats(running), "to_succeeded": stats(done), "runs": runs}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_spindle(runs: int) -> dict[str, Any]:
    from spindle import _local_cluster
    from spindle.job_submission import JobSubmissionClient

    procs = _local_cluster.start(num_cpus=2, dashboard_port=0, dashboard_port_fallback=False)
    try:
        client = JobSubmissionClient(procs.dashboard_address, token=procs.token)
        return {name: _measure(client, ep.format(m="spindle"), runs) for name, ep in ENTRYPOINTS.items()}
    finally:
        procs.stop()


def run_ray(runs: int) -> dict[str, Any]:
    import secrets

    # Ray >= 2.5x's dashboard refuses requests without a token: use its token mode (as Spindle always does),
    # set before Ray is imported (it reads the mode at import)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    # `python` in the entrypoint must be this venv's (Spindle's head puts its own interpreter first itself)
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    import ray
    from ray.job_submission import JobSubmissionClient

    tmp = tempfile.mkdtemp(prefix="ray-jobs-bench-")
    port, dash = free_port(), free_port()
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    # --block keeps `ray start` as the leader of the process group of everything it starts, so the cleanup
    # below stops exactly this Ray (`ray stop --force` would stop every Ray on the machine)
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}", f"--dashboard-port={dash}",
                             "--num-cpus=2", f"--temp-dir={tmp}", "--include-dashboard=true",
                             "--disable-usage-stats"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                client = JobSubmissionClient(f"http://127.0.0.1:{dash}")
                break
            except Exception:
                if head.poll() is not None:
                    raise RuntimeError(f"`ray start --head` exited with {head.returncode}; see {tmp}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        out = {name: _measure(client, ep.format(m="ray"), runs) for name, ep in ENTRYPOINTS.items()}
        out["version"] = ray.__version__
        return out
    finally:
        _stop_ray(head, tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_ray(head: subprocess.Popen[bytes], tmp: str) -> None:
    """Stop the Ray this run started: its process group, then any of its processes that left the group
    (every one of them names the run's private temp dir on its command line)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            pass
        try:
            head.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if tmp.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.jobs_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--impl", choices=("spindle", "ray"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--spindle-python", default=sys.executable)
    p.add_argument("--ray-python", default=os.path.expanduser("~/.cache/spindle-bench/ray-venv/bin/python"))
    args = p.parse_args()
    if args.impl:
        result = run_spindle(args.runs) if args.impl == "spindle" else run_ray(args.runs)
        print(json.dumps(result))
        true, driver = result["shell true"], result["driver + 1 task"]
        metrics = {"job_submit_to_running_ms": true["to_running"]["median_ms"],
                   "job_submit_to_succeeded_ms": true["to_succeeded"]["median_ms"],
                   "job_driver_submit_to_succeeded_ms": driver["to_succeeded"]["median_ms"]}
        print("BENCH_RESULT " + json.dumps({"ok": True, "metrics": metrics}), flush=True)  # for `python -m bench`
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results: dict[str, Any] = {}
    for impl, py in (("spindle", args.spindle_python), ("ray", args.ray_python)):
        if impl == "ray" and subprocess.run([py, "-c", "import ray.job_submission"], capture_output=True).returncode:
            print(f"ray: skipped ({py} cannot import ray.job_submission)", file=sys.stderr)
            continue
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.path.join(root, "runtime")])}
        out = subprocess.run([py, "-m", "bench.jobs_latency", "--impl", impl, "--runs", str(args.runs)], cwd=root,
                             env=env, capture_output=True, text=True, timeout=1800)
        if out.returncode:
            print(f"{impl}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
            continue
        results[impl] = json.loads(out.stdout.strip().splitlines()[-2])
    print(json.dumps(results, indent=2))
    print(f"\n| entrypoint | metric | {' | '.join(results)} |\n|---|---|{'---|' * len(results)}")
    for name in ENTRYPOINTS:
        for metric in ("to_running", "to_succeeded"):
            cells = [f"{r[name][metric]['median_ms']} (p90 {r[name][metric]['p90_ms']})" for r in results.values()]
            print(f"| {name} | submit {metric.replace('_', ' ')} ms | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
