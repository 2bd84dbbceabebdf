"""The frame stream under direct actor calls (_rpc.frame_stream) and its TCP and Unix transports, on real sockets."""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from spindle._rpc import frame_stream, local_stream, tcp_stream
from spindle._rpc.frame_stream import FrameSocket, Listener

TOKEN = "frame-stream-token"


def _echo(fs: FrameSocket) -> None:
    for frame in fs.frames():
        fs.send(frame[::-1])


@pytest.fixture
def tcp() -> Iterator[Listener]:
    listener = tcp_stream.serve("127.0.0.1:1", TOKEN, _echo)
    assert listener is not None
    yield listener
    listener.close()


def test_host_of_takes_the_host_of_an_address() -> None:
    assert tcp_stream.host_of("10.1.2.3:4567") == "10.1.2.3"
    assert tcp_stream.host_of("[::1]:80") == "::1"
    assert tcp_stream.host_of("node-a.example:80") == "node-a.example"


def test_a_tcp_listener_binds_the_host_of_the_workers_address_on_an_ephemeral_port(tcp: Listener) -> None:
    host, port = tcp.sock.getsockname()
    assert host == "127.0.0.1" and port == tcp.port and port > 0


def test_frames_round_trip_in_order_over_tcp_with_nodelay_on_both_ends(tcp: Listener) -> None:
    seen: list[int] = []
    server_done = threading.Event()

    def record(fs: FrameSocket) -> None:
        seen.append(fs.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        server_done.set()
        _echo(fs)

    listener = tcp_stream.serve("127.0.0.1:1", TOKEN, record)
    assert listener is not None
    try:
        fs = tcp_stream.connect("127.0.0.1:1", listener.port, TOKEN)
        assert fs is not None
        assert fs.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        big = os.urandom(200_000)  # above the one-syscall size: length and payload are sent apart
        for payload in (b"abc", b"", big, b"xyz"):
            fs.send(payload)
        assert [fs.recv() for _ in range(4)] == [b"cba", b"", big[::-1], b"zyx"]
        assert server_done.wait(10) and seen[0] != 0
        assert listener.accepted == 1 and listener.refused == 0
        fs.release()
    finally:
        listener.close()


def test_a_wrong_token_gets_no_stream_and_is_counted_as_refused(tcp: Listener) -> None:
    assert tcp_stream.connect("127.0.0.1:1", tcp.port, "wrong") is None
    assert tcp.refused == 1 and tcp.accepted == 0


def test_an_oversized_token_frame_is_refused_without_reading_it(tcp: Listener) -> None:
    with socket.create_connection(("127.0.0.1", tcp.port), timeout=10) as raw:
        raw.sendall(struct.pack("<I", frame_stream.TOKEN_MAX + 1))  # announces a frame larger than any token
        try:
            got = raw.recv(16)
        except ConnectionResetError:
            got = b""
        assert got == b""
    assert tcp.refused == 1


def test_recv_ends_the_stream_on_a_frame_above_its_limit() -> None:
    a, b = socket.socketpair()
    fa, fb = FrameSocket(a), FrameSocket(b)
    fa.send(b"12345")
    assert fb.recv(limit=4) is None
    fa.send(b"1234")
    fa.release()
    fb.release()


def test_recv_returns_none_when_the_peer_closes_mid_frame() -> None:
    a, b = socket.socketpair()
    a.sendall(struct.pack("<I", 10) + b"short")
    a.close()
    fb = FrameSocket(b)
    assert fb.recv() is None
    fb.release()


def test_port_zero_or_the_switch_off_means_no_tcp_stream(tcp: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tcp_stream.connect("127.0.0.1:1", 0, TOKEN) is None
    monkeypatch.setenv("SPINDLE_TCP_ACTOR_STREAM", "0")
    assert tcp_stream.connect("127.0.0.1:1", tcp.port, TOKEN) is None
    assert tcp_stream.serve("127.0.0.1:1", TOKEN, _echo) is None
    assert tcp.accepted == 0


def test_a_tcp_listener_on_an_address_it_cannot_bind_is_none() -> None:
    assert tcp_stream.serve("192.0.2.1:1", TOKEN, _echo) is None  # TEST-NET-1: not an address of this machine


def test_the_unix_transport_shares_the_handshake() -> None:
    name = f"frame-stream-test-{os.getpid()}:1"
    listener = local_stream.serve(name, TOKEN, _echo)
    assert listener is not None and listener.port == 0
    try:
        assert local_stream.connect(name, "wrong") is None
        fs = local_stream.connect(name, TOKEN)
        assert fs is not None
        fs.send(b"hello")
        assert fs.recv() == b"olleh"
        fs.release()
        assert listener.accepted == 1 and listener.refused == 1
    finally:
        listener.close()


def test_a_workers_tcp_stream_listens_from_the_first_ask_on_one_port(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = tcp_stream.OnDemand("127.0.0.1:1", TOKEN, _echo)
    assert stream.listener is None  # nobody asked yet: no socket, no thread
    port = stream.port()
    assert port > 0 and stream.port() == port
    fs = tcp_stream.connect("127.0.0.1:1", port, TOKEN)
    assert fs is not None
    fs.release()
    assert stream.listener is not None
    stream.listener.close()
    monkeypatch.setenv("SPINDLE_TCP_ACTOR_STREAM", "0")
    off = tcp_stream.OnDemand("127.0.0.1:1", TOKEN, _echo)
    assert off.port() == 0 and off.listener is None
