"""How fast Spindle notices a dead node and recovers the work on it (``python -m bench.node_loss``).

Real processes on this machine: an embedded cluster (the driver's node) plus node agents on
loopback, killed with SIGKILL together with their workers (a pod's process tree dying), or
SIGSTOPped (a machine that hangs or vanishes: it stops heartbeating but its port is not closed).
Prints one JSON object of median seconds; the tests assert behaviour, this only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

import spindle
from spindle import _ids
from spindle._core import api
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def _until(pred: Callable[[], bool], timeout: float = 60.0, pause: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(pause)


def _alive(node_id: str) -> bool:
    return any(n["NodeID"] == node_id and n["Alive"] for n in spindle.nodes())


@spindle.remote(num_cpus=0)
def _where() -> str:
    return str(spindle.get_runtime_context().get_node_id())


def _soft(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)


def _add_node(procs: list[subprocess.Popen[bytes]]) -> tuple[str, subprocess.Popen[bytes]]:
    local = api._state["local"]
    node_id = _ids.new_id().hex()
    proc = subprocess.Popen([sys.executable, "-m", "spindle._agent", "--head", local.head_address, "--node-id", node_id,
                             "--num-cpus", "1", "--node-ip", "127.0.0.1"],
                            env={**os.environ, "SPINDLE_TOKEN": local.token}, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    procs.append(proc)
    _until(lambda: _alive(node_id))
    # probes spaced past the lease idle time, so a lease granted before the node was known is given back
    _until(lambda: spindle.get(_where.options(scheduling_strategy=_soft(node_id)).remote()) == node_id, pause=0.3)
    return node_id, proc


def _kill_tree(pid: int, sig: int = signal.SIGKILL) -> float:
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return time.monotonic()
    for p in tree:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return time.monotonic()


@spindle.remote(max_retries=3)
def _sleep_on(delay: float) -> str:
    time.sleep(delay)
    return str(spindle.get_runtime_context().get_node_id())


@spindle.remote(max_retries=3)
def _big() -> np.ndarray:
    return np.ones(1_000_000)


class _Echo:
    def ping(self) -> str:
        return "pong"


# the call form, not the decorator: under a class decorator mypy keeps the plain class's type (no .options)
_EchoActor = spindle.remote(max_restarts=1, max_task_retries=1)(_Echo)


def measure(repeats: int) -> dict[str, Any]:
    # head and node agent as two processes (init() runs them as one since 6610cdf): the last measurement
    # kills the driver's own agent, which must not take the head with it
    os.environ["SPINDLE_EMBEDDED_SPLIT"] = "1"
    spindle.init(num_cpus=1, log_to_driver=False)
    procs: list[subprocess.Popen[bytes]] = []
    out: dict[str, list[float]] = {k: [] for k in ("detect_exit_s", "detect_hung_s", "task_recovery_s",
                                                   "actor_restart_s", "reconstruction_s")}
    try:
        for _ in range(repeats):
            node, proc = _add_node(procs)
            t0 = _kill_tree(proc.pid)
            _until(lambda n=node: not _alive(n))  # type: ignore[misc]
            out["detect_exit_s"].append(time.monotonic() - t0)

            node, proc = _add_node(procs)
            t0 = _kill_tree(proc.pid, signal.SIGSTOP)
            _until(lambda n=node: not _alive(n))  # type: ignore[misc]
            out["detect_hung_s"].append(time.monotonic() - t0)
            _kill_tree(proc.pid)

            node, proc = _add_node(procs)
            ref = _sleep_on.options(scheduling_strategy=_soft(node)).remote(1.0)
            time.sleep(0.3)
            t0 = _kill_tree(proc.pid)
            spindle.get(ref, timeout=120)
            out["task_recovery_s"].append(time.monotonic() - t0)

            node, proc = _add_node(procs)
            actor = _EchoActor.options(scheduling_strategy=_soft(node)).remote()
            spindle.get(actor.ping.remote())
            t0 = _kill_tree(proc.pid)
            spindle.get(actor.ping.remote(), timeout=120)
            out["actor_restart_s"].append(time.monotonic() - t0)

            node, proc = _add_node(procs)
            big = _big.options(scheduling_strategy=_soft(node)).remote()
            spindle.wait([big])
            t0 = _kill_tree(proc.pid)
            spindle.get(big, timeout=120)
            out["reconstruction_s"].append(time.monotonic() - t0)

        # last: the driver's own agent dies while another node is alive
        _add_node(procs)
        t0 = _kill_tree(api._state["local"].procs[-1].pid)
        spindle.get(_sleep_on.remote(0.0), timeout=120)
        driver_switch = time.monotonic() - t0
    finally:
        for p in procs:
            _kill_tree(p.pid)
        spindle.shutdown()
    result: dict[str, Any] = {k: round(statistics.median(v), 3) for k, v in out.items()}
    result["driver_switch_s"] = round(driver_switch, 3)
    result["repeats"] = repeats
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.node_loss", description=__doc__)
    p.add_argument("--repeats", type=int, default=3, help="kills per measurement (median reported)")
    args = p.parse_args()
    print(json.dumps(measure(args.repeats), indent=2))


if __name__ == "__main__":
    main()
