"""Chaos: kill node agents, workers and other drivers at random points of a mixed workload.

Real processes (an embedded cluster plus node agents on loopback). A fixed seed chooses what is
killed and when; the run is bounded in rounds and every ``get`` in time. Every result must be
right or a clear Spindle error (never a hang, never a wrong value): tasks retry within
``max_retries``, the actor restarts (``max_restarts=-1``), lost task outputs are reconstructed.
A node is added back after each node kill, so one is always alive.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psutil
import pytest

import spindle
from spindle.exceptions import (
    ActorDiedError,
    NodeDiedError,
    ObjectLostError,
    WorkerCrashedError,
)
from tests.runtime._nodes import Cluster, Node

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SPINDLE_CHAOS_SEED", "1234"))
ROUNDS = int(os.environ.get("SPINDLE_CHAOS_ROUNDS", "6"))
GET_TIMEOUT_S = 90.0
CLEAR_ERRORS = (WorkerCrashedError, ObjectLostError, ActorDiedError, NodeDiedError)


@spindle.remote(max_retries=5)
def square(i: int) -> int:
    time.sleep(0.05)
    return i * i


@spindle.remote(max_retries=5)
def big(i: int) -> np.ndarray:
    time.sleep(0.1)
    return np.full(300_000, i)


@spindle.remote(max_retries=5)
def total(a: np.ndarray) -> int:
    return int(a.sum())


@spindle.remote(max_restarts=-1, max_task_retries=-1)
class Tally:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return k


def _workers(cluster: Cluster) -> list[psutil.Process]:
    out = []
    for pid in [cluster.local.procs[-1].pid] + [n.proc.pid for n in cluster.nodes if n.proc is not None]:
        try:
            out += [c for c in psutil.Process(pid).children(recursive=True) if _is_worker(c)]
        except psutil.NoSuchProcess:
            pass
    return out


def _is_worker(p: psutil.Process) -> bool:
    """A worker started as an interpreter, or forked by the node's zygote (it keeps the zygote's command line)."""
    try:
        if "spindle._core.worker" in " ".join(p.cmdline()):
            return True
        parent = p.parent()
        return parent is not None and "spindle._core.zygote" in " ".join(parent.cmdline())
    except psutil.NoSuchProcess:
        return False


def _other_driver(cluster: Cluster) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(f"""
        import time, spindle
        spindle.init(address="{cluster.head_address}", log_to_driver=False)
        @spindle.remote
        def f(i):
            time.sleep(0.2)
            return i
        while True:
            spindle.get([f.remote(i) for i in range(4)])
    """)
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "SPINDLE_TOKEN": cluster.local.token},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def chaos_cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=1, log_to_driver=False)
    try:
        c.add_node(num_cpus=1)
        c.add_node(num_cpus=1)
        yield c
    finally:
        c.close()


def _live(cluster: Cluster) -> list[Node]:
    alive = {n["NodeID"] for n in spindle.nodes() if n["Alive"]}
    return [n for n in cluster.nodes if n.node_id in alive]


def _chaos(cluster: Cluster, rng: random.Random, log: list[str], drivers: list[subprocess.Popen[bytes]]) -> None:
    action = rng.choice(["node", "worker", "worker", "driver"])
    if action == "node":
        live = _live(cluster)
        if len(live) >= 2:
            victim = rng.choice(live)
            cluster.kill(victim)
            log.append(f"killed node {victim.node_id[:8]}{' (the driver’s own)' if victim.proc is None else ''}")
            cluster.add_node(num_cpus=1)
            return
        action = "worker"
    if action == "worker":
        ws = _workers(cluster)
        if ws:
            w = rng.choice(ws)
            try:
                w.kill()
                log.append(f"killed worker {w.pid}")
            except psutil.NoSuchProcess:
                pass
        return
    if drivers:
        d = drivers.pop()
        d.kill()
        d.wait()
        log.append(f"killed driver {d.pid}")
    drivers.append(_other_driver(cluster))


def test_a_mixed_workload_survives_random_kills_with_right_results_or_clear_errors(chaos_cluster: Cluster) -> None:
    rng = random.Random(SEED)
    log: list[str] = []
    drivers = [_other_driver(chaos_cluster)]
    tally = Tally.remote()
    outcomes = {"ok": 0, "clear_error": 0}
    try:
        for rnd in range(ROUNDS):
            squares = [square.remote(rnd * 100 + i) for i in range(12)]
            bigs = [big.remote(rnd * 10 + i) for i in range(2)]
            sums = [total.remote(b) for b in bigs]
            adds = [tally.add.remote(k) for k in range(1, 4)]
            put = spindle.put(np.full(200_000, rnd))
            killer = threading.Timer(rng.uniform(0.0, 1.0), _chaos, (chaos_cluster, rng, log, drivers))
            killer.start()
            killer.join()
            expected: list[tuple[Any, Any]] = [(r, (rnd * 100 + i) ** 2) for i, r in enumerate(squares)]
            expected += [(r, ("array", rnd * 10 + i)) for i, r in enumerate(bigs)]
            expected += [(r, (rnd * 10 + i) * 300_000) for i, r in enumerate(sums)]
            expected += [(r, k) for k, r in zip(range(1, 4), adds, strict=True)]
            expected.append((put, ("array", rnd)))
            for ref, want in expected:
                try:
                    got = spindle.get(ref, timeout=GET_TIMEOUT_S)
                except CLEAR_ERRORS as e:
                    assert str(e), "an error without a message"
                    outcomes["clear_error"] += 1
                    log.append(f"round {rnd}: {type(e).__name__}: {str(e)[:120]}")
                    continue
                if isinstance(want, tuple):
                    assert int(got[0]) == want[1] and got.shape[0] > 0, f"round {rnd}: wrong array"
                else:
                    assert got == want, f"round {rnd}: got {got!r}, want {want!r}"
                outcomes["ok"] += 1
        # after the storm the cluster still works end to end
        assert spindle.get([square.remote(i) for i in range(8)], timeout=GET_TIMEOUT_S) == [i * i for i in range(8)]
        assert spindle.get(tally.add.remote(5), timeout=GET_TIMEOUT_S) == 5
    finally:
        for d in drivers:
            d.kill()
            d.wait()
        print(f"chaos seed={SEED} outcomes={outcomes}\n  " + "\n  ".join(log))
    assert outcomes["ok"] > outcomes["clear_error"]
