"""Whole-process behaviour: the CLI, drivers coming and going, logs, tokens, cleanup, garbage input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

from spindle._proto import pb, rpc

PY = sys.executable


def run_driver(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def wait_until(pred: Any, timeout: float = 15.0) -> bool:
    deadline, delay = time.monotonic() + timeout, 0.02
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return bool(pred())


def test_shutdown_leaves_no_process_and_no_store_file() -> None:
    out = run_driver("""
        import json, os, psutil, numpy as np, spindle
        spindle.init(num_cpus=2)
        @spindle.remote
        def f(x): return np.ones(1_000_000) * x
        refs = [f.remote(i) for i in range(4)]
        spindle.get(refs)
        keep = spindle.put(np.ones(1_000_000))
        pids = [p.pid for p in psutil.Process().children(recursive=True)]
        node = spindle.get_runtime_context().get_node_id()
        spindle.shutdown()
        print(json.dumps({"pids": pids, "node": node}))
    """)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(info["pids"]) >= 3  # head, agent, workers
    assert wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                      for p in info["pids"]))
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"spindle-{info['node']}")]


def test_a_killed_driver_takes_its_embedded_cluster_with_it() -> None:
    proc = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import time, psutil, spindle
        spindle.init(num_cpus=1)
        @spindle.remote
        def f(): return 1
        spindle.get(f.remote())
        print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert pids
    assert wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                      for p in pids), timeout=20)


def test_worker_output_reaches_the_driver_with_a_ray_style_prefix() -> None:
    code = """
        import spindle
        spindle.init(num_cpus=1, log_to_driver={flag})
        @spindle.remote
        def count_primes():
            print("hello from the task")
        spindle.get(count_primes.remote())
        spindle.shutdown()
    """
    shown = run_driver(code.format(flag=True))
    assert shown.returncode == 0, shown.stderr
    line = next(ln for ln in shown.stdout.splitlines() if "hello from the task" in ln)
    assert line.startswith("(count_primes pid=") and "ip=" in line
    hidden = run_driver(code.format(flag=False))
    assert "hello from the task" not in hidden.stdout


def test_init_auto_without_a_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    out = run_driver("import spindle; spindle.init(address='auto')",
                     env={"SPINDLE_TEMP_DIR": str(tmp_path), "SPINDLE_ADDRESS": ""})
    assert out.returncode != 0
    assert "spindle start --head" in out.stderr


@pytest.fixture()
def started_cluster(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A cluster started by the CLI (`spindle start --head`), stopped by `spindle stop`."""
    env = {**os.environ, "SPINDLE_TEMP_DIR": str(tmp_path)}
    env.pop("SPINDLE_ADDRESS", None)
    env.pop("SPINDLE_TOKEN", None)
    spindle_cli = [PY, "-m", "spindle._cli"]
    port = str(_free_port())
    out = subprocess.run([*spindle_cli, "start", "--head", "--port", port, "--num-cpus", "2", "--node-ip",
                          "127.0.0.1"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "session_latest" / "address.json").read_text())
    try:
        yield {**env, "SPINDLE_RECORD_ADDRESS": record["address"], "SPINDLE_RECORD_TOKEN": record["token"]}
    finally:
        subprocess.run([*spindle_cli, "stop"], env=env, capture_output=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_start_status_and_auto_connect(started_cluster: dict[str, str]) -> None:
    env = started_cluster
    status = subprocess.run([PY, "-m", "spindle._cli", "status"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 0, status.stderr
    assert "1 node(s) alive" in status.stdout and "CPU" in status.stdout
    out = subprocess.run([PY, "-c", "import spindle; spindle.init(address='auto');"
                          "f = spindle.remote(lambda x: x + 1); print(spindle.get(f.remote(41)))"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("42")


def test_detached_actors_outlive_their_driver_and_owned_ones_do_not(started_cluster: dict[str, str]) -> None:
    env = started_cluster
    first = subprocess.run([PY, "-c", textwrap.dedent("""
        import spindle
        spindle.init(address="auto", namespace="app")
        @spindle.remote
        class Counter:
            def __init__(self): self.n = 0
            def incr(self):
                self.n += 1
                return self.n
        d = Counter.options(name="keeper", lifetime="detached").remote()
        o = Counter.options(name="owned").remote()
        print(spindle.get(d.incr.remote()), spindle.get(o.incr.remote()))
    """)], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["1", "1"]
    second = subprocess.run([PY, "-c", textwrap.dedent("""
        import time, spindle
        spindle.init(address="auto", namespace="app")
        print(spindle.get(spindle.get_actor("keeper").incr.remote()))
        for _ in range(300):
            try:
                spindle.get_actor("owned")
            except ValueError:
                print("owned-gone")
                break
            time.sleep(0.1)
    """)], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["2", "owned-gone"], second.stdout + second.stderr


def test_calls_without_the_cluster_token_are_refused(started_cluster: dict[str, str]) -> None:
    address = started_cluster["SPINDLE_RECORD_ADDRESS"]
    token = started_cluster["SPINDLE_RECORD_TOKEN"]
    with grpc.insecure_channel(address) as ch:
        stub = rpc.HeadStub(ch)
        for metadata in ((), (("x-spindle-token", "wrong"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.GetClusterView(pb.Empty(), metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        agent_address = stub.GetClusterView(pb.Empty(), metadata=(("x-spindle-token", token),),
                                            timeout=10).nodes[0].address
    with grpc.insecure_channel(agent_address) as ch:
        agent = rpc.NodeAgentStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            agent.RequestLease(pb.LeaseRequest(), metadata=(("x-spindle-token", "wrong"),), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            list(agent.FetchObject(pb.FetchRequest(object_id=b"x"), timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    out = subprocess.run([PY, "-c", f"import spindle; spindle.init(address='{address}')"],
                         env={**started_cluster, "SPINDLE_TOKEN": "wrong"}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "SPINDLE_TOKEN" in out.stderr


def test_garbage_on_the_ports_does_not_hurt_the_cluster(started_cluster: dict[str, str]) -> None:
    address = started_cluster["SPINDLE_RECORD_ADDRESS"]
    token = started_cluster["SPINDLE_RECORD_TOKEN"]
    host, port = address.rsplit(":", 1)
    with grpc.insecure_channel(address) as ch:
        view = rpc.HeadStub(ch).GetClusterView(pb.Empty(), metadata=(("x-spindle-token", token),), timeout=10)
    agent_host, agent_port = view.nodes[0].address.rsplit(":", 1)
    for target in ((host, int(port)), (agent_host, int(agent_port))):
        for payload in (os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                        os.urandom(512)):
            with socket.create_connection(target, timeout=5) as s:
                s.sendall(payload)
                time.sleep(0.05)
    with grpc.insecure_channel(address) as ch:  # a well-formed call with a garbage body
        raw = ch.unary_unary("/spindle.v1.Head/CreateActor")
        with pytest.raises(grpc.RpcError):
            raw(os.urandom(256), metadata=(("x-spindle-token", token),), timeout=10)
    out = subprocess.run([PY, "-c", "import spindle; spindle.init(address='auto');"
                          "f = spindle.remote(lambda: 'alive'); print(spindle.get(f.remote()))"],
                         env=started_cluster, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("alive")


def test_resources_cannot_be_given_when_connecting_to_a_cluster(started_cluster: dict[str, str]) -> None:
    out = subprocess.run([PY, "-c", "import spindle; spindle.init(address='auto', num_cpus=4)"],
                         env=started_cluster, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "must not be provided" in out.stderr


def test_a_node_agent_rejoins_a_replaced_head(tmp_path: Path) -> None:
    port = str(_free_port())
    env = {**os.environ, "SPINDLE_TOKEN": "rejoin-token", "SPINDLE_TEMP_DIR": str(tmp_path)}
    env.pop("SPINDLE_ADDRESS", None)
    cli = [PY, "-m", "spindle._cli", "start", "--node-ip", "127.0.0.1", "--block"]
    head = subprocess.Popen([*cli, "--head", "--port", port, "--num-cpus", "0"], env=env)
    worker = subprocess.Popen([*cli, "--address", f"127.0.0.1:{port}", "--num-cpus", "1"], env=env)
    code = textwrap.dedent(f"""
        import time, spindle
        spindle.init(address="127.0.0.1:{port}")
        deadline = time.time() + 60
        while spindle.cluster_resources().get("CPU", 0) < 1:
            assert time.time() < deadline, "the worker node did not join"
            time.sleep(0.2)
        f = spindle.remote(lambda: "ran")
        print(spindle.get(f.remote()))
    """)
    try:
        first = run_driver(code, env=env)
        assert first.returncode == 0, first.stderr
        head.send_signal(signal.SIGTERM)
        head.wait(timeout=30)
        head = subprocess.Popen([*cli, "--head", "--port", port, "--num-cpus", "0"], env=env)
        second = run_driver(code, env=env)
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip().endswith("ran")
    finally:
        for p in (worker, head):
            p.send_signal(signal.SIGTERM)
        for p in (worker, head):
            p.wait(timeout=30)


def test_store_files_of_a_killed_cluster_are_swept_by_the_next_agent() -> None:
    proc = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import time, numpy as np, spindle
        spindle.init(num_cpus=1)
        ref = spindle.put(np.ones(2_000_000))
        print(spindle.get_runtime_context().get_node_id(), flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    node = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)  # the head and agent die with it (SIGKILL, no cleanup)
    proc.wait()

    def leftovers() -> list[str]:
        return [n for n in os.listdir("/dev/shm") if n.startswith(f"spindle-{node}")]

    assert wait_until(lambda: bool(leftovers()) and not _agent_alive(node), timeout=20)
    out = run_driver("import spindle; spindle.init(num_cpus=1); spindle.shutdown()")
    assert out.returncode == 0, out.stderr
    assert leftovers() == []


def _agent_alive(node_id: str) -> bool:
    return any(node_id in " ".join(p.info["cmdline"] or ()) for p in psutil.process_iter(["cmdline"]))
