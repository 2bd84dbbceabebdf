"""Two-node figures: ``python -m bench --multinode`` (root; uses ``ip netns``).

A head with no CPUs runs in one network namespace next to the driver; a node with all the CPUs runs in
another, started the way a real deployment starts it (``spindle start --head`` / ``spindle start
--address``, per docs/CONVENTIONS.md; ``ray start`` likewise for Ray). So every task, actor call and
object transfer crosses the veth link. Each repetition starts a fresh cluster per implementation, in
alternating order, for every workload, and tears it down afterwards: a fresh cluster per run, as in
the single-node mode.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import netns, proc, report, run, spec

SPINDLE_PORT = 6380
RAY_PORT = 6379
RAY_TMPDIR = Path("/tmp/spindle-bench/ray-multinode")


def _cli(python: Path, name: str) -> list[str]:
    script = python.parent / name
    return [str(script)] if script.exists() else [str(python), "-m", f"{name}._cli"]


def cluster_commands(impl: str, python: Path, pair: netns.Pair, token: str) -> tuple[list[str], list[str]]:
    """(head, node) commands, both in the foreground (``--block``) so we own their processes."""
    if impl == "spindle":
        cli = _cli(python, "spindle")
        head = [
            *cli,
            "start",
            "--head",
            "--port",
            str(SPINDLE_PORT),
            "--num-cpus",
            "0",
            "--token",
            token,
        ]
        node = [
            *cli, "start", "--address", f"{pair.head_ip}:{SPINDLE_PORT}", "--num-cpus", "2",
            "--node-ip", pair.node_ip, "--token", token,
        ]  # fmt: skip
    else:
        cli = _cli(python, "ray")
        head = [
            *cli, "start", "--head", "--port", str(RAY_PORT), "--num-cpus", "0",
            "--node-ip-address", pair.head_ip, "--include-dashboard", "false", "--disable-usage-stats",
        ]  # fmt: skip
        node = [
            *cli, "start", "--address", f"{pair.head_ip}:{RAY_PORT}", "--num-cpus", "2",
            "--node-ip-address", pair.node_ip, "--disable-usage-stats",
        ]  # fmt: skip
    return [*head, "--block"], [*node, "--block"]


def address(impl: str, pair: netns.Pair) -> str:
    return f"{pair.head_ip}:{SPINDLE_PORT if impl == 'spindle' else RAY_PORT}"


def _kill_tree(p: subprocess.Popen[bytes]) -> None:
    try:
        root = psutil.Process(p.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for q in procs:
        try:
            q.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for q in alive:
        try:
            q.kill()
        except psutil.Error:
            pass


def _wait_two_nodes(python: Path, impl: str, pair: netns.Pair, env: dict[str, str], timeout_s: float) -> None:
    """Until a driver sees two alive nodes; backs off between attempts."""
    code = (
        f"import {impl} as r; r.init(address={address(impl, pair)!r}, log_to_driver=False); "
        "print(sum(1 for n in r.nodes() if n.get('Alive', n.get('alive')))); r.shutdown()"
    )
    deadline, delay = time.monotonic() + timeout_s, 0.5
    last = ""
    while time.monotonic() < deadline:
        try:
            r = subprocess.run(
                [*pair.exec_prefix(pair.head_ns), str(python), "-c", code],
                env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            last = "a driver could not connect within 60 s"
        else:
            if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == ["2"]:
                return
            last = (r.stdout + r.stderr).strip()[-500:]
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    raise TimeoutError(f"{impl} cluster did not show two nodes in {timeout_s:.0f} s: {last}")


@contextmanager
def cluster(impl: str, python: Path, pair: netns.Pair, env: dict[str, str]) -> Iterator[None]:
    head_cmd, node_cmd = cluster_commands(impl, python, pair, env.get("SPINDLE_TOKEN", ""))
    logs = Path("/tmp/spindle-bench")
    logs.mkdir(parents=True, exist_ok=True)
    RAY_TMPDIR.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        head_env = {**env, "SPINDLE_NODE_IP": pair.head_ip}
        for ns, cmd, cenv, name in (
            (pair.head_ns, head_cmd, head_env, "head"),
            (pair.node_ns, node_cmd, {**env, "SPINDLE_NODE_IP": pair.node_ip}, "node"),
        ):
            with open(logs / f"{impl}-{name}.log", "wb") as out:
                started.append(
                    subprocess.Popen(
                        [*pair.exec_prefix(ns), *cmd],
                        env=cenv,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        _wait_two_nodes(python, impl, pair, env, 120)
        yield
    finally:
        for p in reversed(started):
            _kill_tree(p)
        (RAY_TMPDIR / "ray" / "ray_current_cluster").unlink(missing_ok=True)


def _one(
    w: spec.Workload,
    impl: str,
    rep: int,
    python: Path,
    env: dict[str, str],
    pair: netns.Pair,
    args: argparse.Namespace,
    sizes: spec.Sizes,
) -> report.Run:
    """One workload in one fresh two-node cluster (a driver's leftovers cannot colour the next run)."""
    run.log(f"{w.name} {impl} rep {rep + 1}: starting a two-node cluster ...")
    try:
        with cluster(impl, python, pair, env):
            cmd = [
                *pair.exec_prefix(pair.head_ns), str(python), "-m", "bench.worker", "--impl", impl,
                "--workload", w.name, "--address", address(impl, pair), *(["--smoke"] if args.smoke else []),
            ]  # fmt: skip
            out = proc.run(cmd, env, str(run.ROOT), args.timeout, args.mem_cap_mib)
    except Exception as exc:  # noqa: BLE001 - one broken cluster must not lose the other runs
        run.log(f"    cluster failed: {exc}")
        return report.Run(w.name, impl, rep, False, 0.0, 0.0, {}, f"cluster failed: {exc}")
    r = run.to_run(w, impl, rep, out, sizes)
    run.log(f"    {run.describe(r, w)}")
    if not r.ok:
        run.log("    | " + "\n    | ".join(out.stderr_tail.strip().splitlines()[-8:]))
    return r


COPY_PORT = 7391


def socket_copy(python: Path, pair: netns.Pair, env: dict[str, str], size: int, streams: int) -> float:
    """GiB/s of a plain TCP copy (``bench/socket_copy.py``) from the node's namespace into the head's."""
    args = [str(COPY_PORT), str(size), str(streams)]
    sender = subprocess.Popen(
        [*pair.exec_prefix(pair.node_ns), str(python), "-m", "bench.socket_copy", "send", pair.node_ip, *args],
        cwd=run.ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sender.stdout is not None and sender.stdout.readline().strip() == "ready"
        r = subprocess.run(
            [*pair.exec_prefix(pair.head_ns), str(python), "-m", "bench.socket_copy", "recv", pair.node_ip, *args],
            cwd=run.ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        return float(r.stdout.strip())
    finally:
        try:
            sender.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sender.kill()


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        run.log("--multinode needs root (it creates network namespaces)")
        return 2
    # SIGTERM unwinds like Ctrl-C, so clusters are stopped and namespaces deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = spec.SMOKE if args.smoke else spec.FULL
    reps = args.reps or (1 if args.smoke else 3)
    workloads = spec.select(args.only, spec.MULTINODE_WORKLOADS)
    pythons = {"spindle": args.spindle_python or run.DEFAULT_SPINDLE_PYTHON}
    ray_python = args.ray_python or (run.DEFAULT_RAY_PYTHON if run.DEFAULT_RAY_PYTHON.exists() else None)
    if ray_python and not (args.smoke or args.no_ray):
        pythons["ray"] = ray_python
    if args.no_spindle and "ray" in pythons:
        del pythons["spindle"]
    token = secrets.token_hex(16)
    envs: dict[str, dict[str, str]] = {}
    for impl, python in pythons.items():
        env, version = run.probe(python, impl)
        # Ray 2.60 heads enable token auth by default; joining nodes must be told to use it too.
        envs[impl] = {
            **(env or run._env([run.ROOT / "runtime"])),
            "SPINDLE_TOKEN": token,
            "RAY_AUTH_MODE": "token",
            "RAY_TMPDIR": str(RAY_TMPDIR),  # its ray_current_cluster must not outlive the run
        }
        run.log(f"{impl}: {python} (version {version})")

    now = dt.datetime.now(dt.timezone.utc)
    meta: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "machine": run.machine(),
        "git_commit": run.git_commit(),
        "mode": "multinode-smoke" if args.smoke else "multinode",
        "reps": reps,
        "pythons": {k: str(v) for k, v in pythons.items()},
    }
    out_path = args.out or run.ROOT / "bench/results" / f"{now:%Y%m%dT%H%M%SZ}-multinode.json"

    def write(runs: list[report.Run]) -> list[report.Row]:
        rows = report.summarize(runs, [m.name for w in workloads for m in w.metrics])
        report.write(out_path, report.record(meta, runs, rows))
        return rows

    runs: list[report.Run] = []
    impls = list(pythons)
    copies: dict[str, list[float]] = {}
    with netns.pair() as pair:
        for w in workloads:
            for rep in range(reps):
                if w.name == "remote_pull":  # the physical limit, measured between the same runs
                    big = 1 << 30 if sizes.big_bytes >= 1 << 26 else sizes.big_bytes
                    for label, size in (("100mib", sizes.big_bytes), ("1gib", big)):
                        for streams in (1, 4):
                            key = f"socket_copy_{label}_{streams}_stream{'s' if streams > 1 else ''}"
                            copies.setdefault(key, []).append(
                                socket_copy(pythons["spindle"], pair, envs["spindle"], size, streams))
                    meta["socket_copy_gibs"] = copies
                for impl in impls if rep % 2 == 0 else impls[::-1]:
                    runs.append(_one(w, impl, rep, pythons[impl], envs[impl], pair, args, sizes))
                    write(runs)  # keep what is measured even if the run is cut short

    rows = write(runs)
    print(f"\nTwo nodes in network namespaces, {meta['date']}; ratio > 1 means Spindle is better\n")
    print(report.table(rows))
    for key, values in copies.items():
        print(f"{key} (plain TCP between the namespaces, sendfile -> recv_into + pwrite): "
              f"{statistics.median(values):.2f} GiB/s (median of {len(values)})")
    print(f"\nJSON: {out_path}")
    sys.stdout.flush()
    return 0 if all(r.ok for r in runs) else 1
