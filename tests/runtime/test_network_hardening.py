"""Hostile networks: where processes listen, what an unauthenticated client can cost, idle connections, fds.

Every check runs real head / agent / worker / driver processes and looks at them from outside
(/proc, raw sockets), the way an attacker or an operator would.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from spindle._proto import pb, rpc

PY = sys.executable
TOKEN = "hardening-token"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise KeyError("Max open files")


def _start_head(env: dict[str, str] | None = None,
                preexec: Callable[[], None] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([PY, "-m", "spindle._head", "--host", "127.0.0.1", "--port", str(port)],
                            env={**os.environ, "SPINDLE_TOKEN": TOKEN, **(env or {})}, stdout=subprocess.PIPE,
                            preexec_fn=preexec)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("SPINDLE_HEAD_PORT="), line
    return proc, f"127.0.0.1:{port}"


@pytest.fixture()
def head() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    proc, address = _start_head()
    try:
        yield proc, address
    finally:
        proc.kill()
        proc.wait()


def _authenticated_view(address: str) -> pb.ClusterView:
    with grpc.insecure_channel(address) as ch:
        view: pb.ClusterView = rpc.HeadStub(ch).GetClusterView(pb.Empty(), metadata=(("x-spindle-token", TOKEN),),
                                                               timeout=30, wait_for_ready=True)
        return view


def test_every_process_of_an_embedded_cluster_listens_on_loopback_only() -> None:
    out = subprocess.run([PY, "-c", textwrap.dedent("""
        import json, psutil, spindle
        spindle.init(num_cpus=2)
        @spindle.remote
        class A:
            def ping(self): return 1
        a = A.remote()
        spindle.get(a.ping.remote())
        spindle.get([spindle.remote(lambda: 1).remote() for _ in range(4)])
        me = psutil.Process()
        listening = {}
        for p in [me, *me.children(recursive=True)]:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    listening.setdefault(" ".join(p.cmdline()[1:3])[:40], []).append(c.laddr.ip)
        print(json.dumps(listening))
    """)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listening = json.loads(out.stdout.strip().splitlines()[-1])
    roles = " ".join(listening)
    # the embedded cluster's head and agent share one process (spindle._embedded)
    # a worker is either a fresh interpreter or forked by the zygote (it keeps the zygote's command line)
    assert "spindle._embedded" in roles and ("spindle._core.worker" in roles or "spindle._core.zygote" in roles)
    assert "-c" in roles  # the driver's own CoreWorker server
    # gRPC listens on IPv6 sockets: 127.0.0.1 shows as its v4-mapped form
    assert {ip.removeprefix("::ffff:") for ips in listening.values() for ip in ips} == {"127.0.0.1"}, listening


def test_an_unauthenticated_big_call_is_refused_without_the_server_buffering_it(
        head: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, address = head
    before = _proc_status(proc.pid, "VmHWM")
    big = b"\0" * (300 * 1024 * 1024)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(address, options=options) as ch:
        for method, metadata in (("/spindle.v1.Head/CreateActor", ()),
                                 ("/spindle.v1.Head/KvPut", (("x-spindle-token", "wrong"),))):
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method)(big, metadata=metadata, timeout=60)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    del big
    grown_mb = (_proc_status(proc.pid, "VmHWM") - before) / 1024
    assert grown_mb < 64, f"the head's peak RSS grew by {grown_mb:.0f} MB for refused calls"
    assert _authenticated_view(address).nodes is not None  # and it still serves the cluster


def test_node_agents_and_workers_refuse_unauthenticated_big_calls_without_reading_them_too() -> None:
    proc, address = _start_head()
    agent = subprocess.Popen([PY, "-m", "spindle._agent", "--head", address, "--num-cpus", "1"],
                             env={**os.environ, "SPINDLE_TOKEN": TOKEN}, stdout=subprocess.PIPE)
    try:
        assert agent.stdout is not None
        line = agent.stdout.readline().decode()
        assert line.startswith("SPINDLE_AGENT_ADDRESS="), line
        agent_address = line.split("=", 1)[1].strip()
        big = b"\0" * (100 * 1024 * 1024)
        options = [("grpc.max_send_message_length", -1)]
        before = _proc_status(agent.pid, "VmHWM")
        with grpc.insecure_channel(agent_address, options=options) as ch:
            for method in ("/spindle.v1.NodeAgent/StartActor", "/spindle.v1.NodeAgent/FreeObjects"):
                with pytest.raises(grpc.RpcError) as info:
                    ch.unary_unary(method)(big, timeout=60)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:  # a request stream (how tasks reach workers)
                list(ch.stream_stream("/spindle.v1.CoreWorker/PushTasks")(iter([big, big]), timeout=60))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        grown_mb = (_proc_status(agent.pid, "VmHWM") - before) / 1024
        assert grown_mb < 32, f"the agent's peak RSS grew by {grown_mb:.0f} MB for refused calls"
    finally:
        agent.kill()
        agent.wait()
        proc.kill()
        proc.wait()


def test_cluster_processes_raise_their_fd_soft_limit_to_the_hard_limit() -> None:
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    proc, _ = _start_head(preexec=low_soft_limit)
    try:
        assert _soft_nofile(proc.pid) == 4096
    finally:
        proc.kill()
        proc.wait()


def _h2_idler(address: str, handshake: bool) -> socket.socket:
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    if handshake:
        s.sendall(H2_PREFACE)
    return s


def _closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """True once the server closed the connection (a GOAWAY may come first)."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except TimeoutError:
        return False
    except OSError:
        return True
    return False


def test_idle_connections_beyond_the_fd_budget_are_capped_and_closed() -> None:
    budget = 256

    def small_fd_budget() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (budget, budget))

    proc, address = _start_head(env={"SPINDLE_RPC_IDLE_TIMEOUT_S": "3", "SPINDLE_RPC_HANDSHAKE_TIMEOUT_S": "3"},
                                preexec=small_fd_budget)
    idlers: list[socket.socket] = []
    try:
        with grpc.insecure_channel(address) as ch:  # a client that connected before the flood
            stub = rpc.HeadStub(ch)
            md: Any = (("x-spindle-token", TOKEN),)
            stub.GetClusterView(pb.Empty(), metadata=md, timeout=30, wait_for_ready=True)
            for i in range(3 * budget):  # half speak HTTP/2 and then nothing, half never say a word
                try:
                    idlers.append(_h2_idler(address, handshake=i % 2 == 0))
                except OSError:
                    pass  # refused at the cap: fine
                if i % 64 == 0:
                    assert _open_fds(proc.pid) < budget
            assert proc.poll() is None, "the head died under the connection flood"
            peak = _open_fds(proc.pid)
            assert peak < budget, f"the head holds {peak} fds of its {budget}"
            # the head keeps working for the clients it already had ...
            stub.KvPut(pb.KvRequest(key="k", value=b"v", overwrite=True), metadata=md, timeout=30)
            # ... closes the idle and half-open connections ...
            closed = sum(_closed_by_peer(s, timeout=20) for s in idlers[:200])
            assert closed == min(200, len(idlers))
            for s in idlers:
                s.close()
            idlers.clear()
        # ... and new clients get in again
        deadline = time.monotonic() + 30
        while True:
            try:
                _authenticated_view(address)
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "new clients could not connect after the flood"
                time.sleep(0.5)
        assert _open_fds(proc.pid) < 64
    finally:
        for s in idlers:
            s.close()
        proc.kill()
        proc.wait()
