"""The examples on a real two-node cluster: a head and a node agent, each in its own network
namespace with its own IP, and drivers run the way users run them against a cluster."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples._run import grab, run_example
from tests.examples.test_examples import primes_between
from tests.netns_harness.hosts import Host
from tests.plugins.netns import HostFactory

pytestmark = pytest.mark.multinode

SPINDLE = str(Path(sys.executable).with_name("spindle"))
PORT = 6380


class Cluster:
    """`spindle start --head` in one host, `spindle start --address` in another (1 CPU each)."""

    def __init__(self, head: Host, node: Host, logs: Path) -> None:
        self.head, self.node = head, node
        self.address = f"{head.ip}:{PORT}"
        token = secrets.token_hex(8)
        self.env = {"SPINDLE_ADDRESS": self.address, "SPINDLE_TOKEN": token}
        base = {k: v for k, v in os.environ.items() if k not in ("SPINDLE_ADDRESS", "SPINDLE_TOKEN")}
        start = [SPINDLE, "start", "--num-cpus", "1", "--token", token, "--block"]
        for host, extra in ((head, ["--head", "--port", str(PORT)]), (node, ["--address", self.address])):
            log = open(logs / f"{host.name}.log", "w")  # noqa: SIM115 - the process outlives this call
            host.popen([*start, *extra, "--node-ip", host.ip], env=base, stdout=log, stderr=subprocess.STDOUT)
        self._wait_for_nodes(2)

    def status(self) -> str:
        proc = subprocess.run(
            [SPINDLE, "status", "--address", self.address],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return proc.stdout + proc.stderr

    def assert_cpus_free(self, after: str, timeout_s: float = 10) -> None:
        """Every driver so far has exited: no CPU may stay leased (else the next driver hangs)."""
        deadline, delay = time.monotonic() + timeout_s, 0.1
        while not re.search(r"CPU: 0(\.0)? / ", status := self.status()):
            assert time.monotonic() < deadline, f"CPUs still in use {timeout_s:g} s after {after} exited:\n{status}"
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _wait_for_nodes(self, n: int, timeout_s: float = 60) -> None:
        deadline, delay = time.monotonic() + timeout_s, 0.1
        while (status := self.status()).count(" alive ") < n:
            assert time.monotonic() < deadline, f"cluster never had {n} nodes alive:\n{status}"
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@pytest.fixture(scope="module")
def cluster(netns_hosts_module: HostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    head, node = netns_hosts_module(2)
    yield Cluster(head, node, tmp_path_factory.mktemp("cluster-logs"))


def test_primes_from_the_head_host_counts_correctly_on_two_nodes(cluster: Cluster) -> None:
    out = run_example(
        "primes.py", "--start", "10000000", "--end", "10020000", "--chunk-size", "2000",
        host=cluster.head, env=cluster.env, timeout=60,
    )  # fmt: skip
    assert int(grab(r"Primes between [\d,]+ and [\d,]+: (\d+)", out)) == primes_between(10_000_000, 10_020_000)
    cluster.assert_cpus_free(after="primes.py")


def test_counter_actor_is_shared_by_tasks_on_both_nodes(cluster: Cluster) -> None:
    out = run_example("counter.py", "--increments", "3", "--tasks", "4", host=cluster.head, env=cluster.env, timeout=60)
    assert int(grab(r"Counter value after 4 tasks: (\d+)", out)) == 3 + 4 * 3
    cluster.assert_cpus_free(after="counter.py")


def test_global_pacer_holds_the_rate_across_nodes(cluster: Cluster) -> None:
    rate, tasks, per_task = 20.0, 6, 4
    out = run_example(
        "pacer.py", "--rate", str(rate), "--tasks", str(tasks), "--calls-per-task", str(per_task),
        host=cluster.node, env=cluster.env, timeout=60,
    )  # fmt: skip
    calls = tasks * per_task
    assert int(grab(r"in (\d+) processes", out)) >= 2, out  # one CPU per node: both nodes ran tasks
    span = float(grab(r"Span: ([\d.]+) s", out))
    assert (calls - 1) / rate - 0.02 <= span <= (calls - 1) / rate + 2.0, out
    cluster.assert_cpus_free(after="pacer.py")


def test_two_actors_and_matrix_run_against_the_cluster(cluster: Cluster) -> None:
    out = run_example(
        "two_actors.py", "--rows", "2000", "--load-delay", "0.5", host=cluster.head, env=cluster.env, timeout=60
    )
    assert "Loaded [1000, 1000] rows" in out
    out = run_example("matrix.py", "--size", "300", "--tasks", "4", host=cluster.node, env=cluster.env, timeout=60)
    assert len(grab(r"Remote sums: \[(.*)\]", out).split(",")) == 4
    cluster.assert_cpus_free(after="matrix.py")


def test_drivers_outside_the_cluster_run_one_after_another(netns_hosts: HostFactory, tmp_path: Path) -> None:
    """A driver on a machine with no node agent (a laptop, a CI job) connects, runs, exits; the
    next one must find the cluster's CPUs free again."""
    head, node, laptop = netns_hosts(3)
    remote = Cluster(head, node, tmp_path)
    for attempt in range(3):
        out = run_example("calculate_square.py", "--n", "50", host=laptop, env=remote.env, timeout=60)
        assert grab(r"Tasks: (\d+)", out) == "50", f"driver {attempt}"
        remote.assert_cpus_free(after=f"driver {attempt}")
