"""The pods the operator builds start a real Spindle cluster: the operator/runtime contract, end to end.

There is no kubelet in the test harness, so this test plays one: it takes the head and worker pod specs
exactly as the operator renders them, resolves their environment the way the kubelet would (the Secret's
token, ``status.podIP``; the head service's DNS name becomes 127.0.0.1), and runs their commands as local
processes: the head, the worker's wait-for-head init container, the worker agent, then a driver using
``init(address="auto")``. A change to the runtime's CLI or environment contract breaks this test, not a
user's cluster.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spindle_operator import OperatorSettings, Ports
from spindle_operator._builders import HEAD, WORKER, build_pod

from .conftest import wait_for
from .factories import cluster, group

pytestmark = pytest.mark.slow

TOKEN = "contract-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kubelet_env(container: dict[str, Any], head_port: int) -> dict[str, str]:
    """The container's env as the kubelet would set it, on this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINDLE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            env[var["name"]] = TOKEN
        elif var["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP":
            env[var["name"]] = "127.0.0.1"
    # Cluster DNS would resolve <cluster>-head-svc.<ns>.svc to the head; here the head is local.
    if "SPINDLE_ADDRESS" in env:
        env["SPINDLE_ADDRESS"] = f"127.0.0.1:{head_port}"
    return env


def kubelet_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """command + args with Kubernetes' $(VAR) expansion."""
    argv = list(container.get("command", [])) + list(container.get("args", []))
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_head_and_worker_pods_the_operator_builds_form_a_working_cluster(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path
):
    port = free_port()
    settings = OperatorSettings(ports=Ports(gcs=port))
    g = group(replicas=1, startParams={"resources": '{"contract": 1}'})
    g["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}}
    c = cluster(g)
    head_pod = build_pod(c, HEAD, c["spec"]["headGroupSpec"], settings)
    worker_pod = build_pod(c, WORKER, g, settings)

    def start(container: dict[str, Any], log: str) -> dict[str, str]:
        env = kubelet_env(container, port)
        with (tmp_path / log).open("wb") as out:
            processes.append(
                subprocess.Popen(kubelet_argv(container, env), env=env, cwd=tmp_path, stdout=out, stderr=out)
            )
        return env

    start(head_pod["spec"]["containers"][0], "head.log")
    [wait_container] = worker_pod["spec"]["initContainers"]
    wait_env = kubelet_env(wait_container, port)
    init = subprocess.run(kubelet_argv(wait_container, wait_env), env=wait_env, timeout=60, capture_output=True)
    assert init.returncode == 0, init.stderr.decode()
    worker_env = start(worker_pod["spec"]["containers"][0], "worker.log")

    def two_nodes() -> bool:
        for proc in processes:
            assert proc.poll() is None, "\n".join(p.read_text() for p in tmp_path.glob("*.log"))
        status = subprocess.run(
            ["spindle", "status", "--address", f"127.0.0.1:{port}"],
            env=worker_env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return "2 node(s) alive" in status.stdout

    wait_for(two_nodes, "head and worker agents joined", timeout=60)

    driver = (
        "import spindle\n"
        "spindle.init(address='auto')\n"
        "@spindle.remote(resources={'contract': 1})\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "print(spindle.get(double.remote(21)))\n"
        "[worker] = [n for n in spindle.nodes() if 'contract' in n['Resources']]\n"
        "print(worker['Resources']['CPU'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", driver], env=worker_env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    answer, worker_cpus = out.stdout.split()
    assert answer == "42"  # ran on the worker: only it offers the "contract" resource
    assert float(worker_cpus) == 2.0  # --num-cpus came from the container's CPU limit
