"""A caller on another node calls an actor over the TCP frame stream (_rpc.tcp_stream), with gRPC's guarantees.

A real two-node cluster: a head and one node agent, each in its own network namespace and IP. The driver
runs in the root namespace, so every actor is on another node than the caller: its worker's abstract
Unix socket is out of reach and the call stream goes over TCP (or gRPC when that is switched off).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle._core import context as _context
from spindle._core.actor_local_stream import LocalCall
from spindle._proto import pb, rpc
from spindle._rpc import tcp_stream
from spindle.exceptions import ActorDiedError, ActorUnavailableError
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.netns_harness.spindle_nodes import joined_cluster
from tests.runtime._nodes import actor_stream_call, answer_when_restarted

TOKEN = "tcp-stream-test-token"


@pytest.fixture(scope="module")
def node(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("tcpstream")
    head, a = netns_hosts_module(2)
    with joined_cluster(TOKEN, head, [(a, ["--num-cpus", "4"])], tmp) as nodes:
        yield {"id": nodes[a.ip], "ip": a.ip}


def _on(node: dict[str, Any]) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node["id"], soft=False)


@spindle.remote(num_cpus=0)
class Echo:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def add(self, i: int) -> int:
        self.seen.append(i)
        return i

    def seen_list(self) -> list[int]:
        return self.seen

    def address(self) -> str:
        return _context.core().address

    def pid(self) -> int:
        return os.getpid()

    def stream_stats(self) -> dict[str, Any]:
        listener = _context.core().executor.tcp_stream.listener
        if listener is None:  # nobody asked for its port: it does not listen
            return {}
        return {"accepted": listener.accepted, "refused": listener.refused, "bound": listener.sock.getsockname()}

    def block(self, path: str) -> None:
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(path + ".tmp", path)
        time.sleep(3600)


def _wait_for(path: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return int(path.read_text())


def test_a_cross_node_actor_is_called_over_tcp_and_answers_in_order(node: dict[str, Any]) -> None:
    a = Echo.options(scheduling_strategy=_on(node)).remote()
    assert spindle.get(a.add.remote(-1), timeout=60) == -1
    call = actor_stream_call(a)
    assert isinstance(call, LocalCall) and call.fs.sock.family == socket.AF_INET
    assert call.fs.sock.getpeername()[0] == node["ip"]
    assert call.fs.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    stats = spindle.get(a.stream_stats.remote())
    assert stats["accepted"] == 1 and stats["refused"] == 0  # this driver's one stream, nothing over gRPC
    assert stats["bound"][0] == node["ip"]  # the host of its gRPC address, not every interface
    assert [spindle.get(a.add.remote(i)) for i in range(200)] == list(range(200))  # one call at a time
    assert spindle.get([a.add.remote(i) for i in range(200, 2200)], timeout=120) == list(range(200, 2200))
    assert spindle.get(a.seen_list.remote()) == [-1, *range(2200)]
    assert spindle.get(a.stream_stats.remote())["accepted"] == 1


def _frame(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def test_a_wrong_token_is_refused_before_any_call_is_read(node: dict[str, Any]) -> None:
    a = Echo.options(scheduling_strategy=_on(node)).remote()
    address = spindle.get(a.address.remote(), timeout=60)
    cw = _context.core()
    port = cw.channels.stub(address, rpc.CoreWorkerStub).StreamPort(pb.Empty(), metadata=cw.md, timeout=10).port
    assert port > 0
    before = spindle.get(a.stream_stats.remote())
    assert tcp_stream.connect(address, port, "not-the-token") is None
    with socket.create_connection((node["ip"], port), timeout=30) as raw:
        call = pb.TaskBatch(tasks=[pb.TaskSpec(name="add")]).SerializeToString()
        raw.sendall(_frame(b"not-the-token") + _frame(call))
        try:
            got = raw.recv(16)
        except ConnectionResetError:  # closed with our call frame unread: Linux answers with a reset
            got = b""
        assert got == b""  # closed without an OK and without reading the call
    after = spindle.get(a.stream_stats.remote())
    assert after["refused"] == before["refused"] + 2 and after["accepted"] == before["accepted"]
    good = tcp_stream.connect(address, port, TOKEN)
    assert good is not None
    good.release()
    assert spindle.get(a.seen_list.remote()) == []


def test_a_killed_actor_worker_fails_the_remote_callers_call_in_flight_with_actor_died(
        node: dict[str, Any], tmp_path: Path) -> None:
    a = Echo.options(scheduling_strategy=_on(node)).remote()
    assert spindle.get(a.add.remote(1), timeout=60) == 1
    assert actor_stream_call(a).fs.sock.family == socket.AF_INET
    pid_file = tmp_path / "pid"
    hanging = a.block.remote(str(pid_file))
    os.kill(_wait_for(pid_file), signal.SIGKILL)
    with pytest.raises(ActorDiedError):
        spindle.get(hanging, timeout=60)
    with pytest.raises(ActorDiedError):
        spindle.get(a.add.remote(2), timeout=60)


def test_a_restartable_actor_killed_mid_call_fails_it_as_unavailable_and_answers_over_tcp_again(
        node: dict[str, Any], tmp_path: Path) -> None:
    a = Echo.options(scheduling_strategy=_on(node), max_restarts=1).remote()
    first_pid = spindle.get(a.pid.remote(), timeout=60)
    pid_file = tmp_path / "pid"
    hanging = a.block.remote(str(pid_file))
    os.kill(_wait_for(pid_file), signal.SIGKILL)
    with pytest.raises(ActorUnavailableError):
        spindle.get(hanging, timeout=60)
    assert answer_when_restarted(a.pid.remote) != first_pid
    assert actor_stream_call(a).fs.sock.family == socket.AF_INET
    assert spindle.get(a.stream_stats.remote())["accepted"] == 1  # the new worker's own stream


def test_with_the_switch_off_the_caller_stays_on_grpc(node: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDLE_TCP_ACTOR_STREAM", "0")
    a = Echo.options(scheduling_strategy=_on(node)).remote()
    assert [spindle.get(a.add.remote(i), timeout=60) for i in range(20)] == list(range(20))
    assert not isinstance(actor_stream_call(a), LocalCall)
    assert spindle.get(a.stream_stats.remote()) == {}  # nobody asked for its port, so it never listened
