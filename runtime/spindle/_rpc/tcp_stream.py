"""Actor calls to a worker on another node over TCP, with the same four thread wake-ups as on one node.

A caller on another node cannot reach a worker's abstract Unix socket (``local_stream``), and over
a gRPC stream a synchronous call costs about eight thread wake-ups (GIL hand-offs) per round trip.
Each worker therefore also serves the same frame stream (``frame_stream``: framing, token handshake,
limits) on a TCP port, bound to the host of its gRPC address (so never to all interfaces unless its
gRPC server is), with ``TCP_NODELAY`` on both ends (a call is one small frame; Nagle would hold it
back behind the previous result's ACK) and keepalive probes plus a send timeout, so a stream to a
peer that vanished without closing breaks within ~30 s instead of hanging (as gRPC's keepalive does).
Unlike gRPC's pings, the kernel answers these probes, so a node whose processes are frozen while its
kernel runs keeps its streams open: a caller drops them when the head declares the node dead (a
driver looks, ``_core.node_watch``; a worker is told by its agent, ``_agent.death_notice``), as a
caller on the Unix stream of a frozen node does.

How a caller learns the port: one ``CoreWorker.StreamPort`` unary call to the worker, per stream
opened (a stream lives as long as the actor's incarnation, so this is once per actor and caller, not
per call). Asking the worker itself, over the gRPC channel the caller has to it anyway, means the
answer cannot be stale (a restarted actor is a new worker with a new port), needs no change to what
the agent and head record about workers and actors, and is authenticated like every gRPC call. A
worker that serves no TCP stream answers 0, and any failure (the call, the connect, the handshake)
leaves the caller on the gRPC stream exactly as before. A worker starts listening on the first such
call (``OnDemand``), so one that no caller on another node talks to holds no extra socket or thread.
``SPINDLE_TCP_ACTOR_STREAM=0`` turns it off: a worker then does not listen, and a caller does not ask.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from spindle._rpc.frame_stream import FrameSocket, Listener, open_stream

KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3
SEND_TIMEOUT_MS = 30_000  # data unacknowledged this long breaks the stream (TCP_USER_TIMEOUT)


def enabled() -> bool:
    return os.environ.get("SPINDLE_TCP_ACTOR_STREAM", "1") != "0"


def host_of(address: str) -> str:
    """The host part of ``host:port`` (an IPv6 host may be bracketed: ``[::1]:80`` gives ``::1``)."""
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def tune(sock: socket.socket) -> None:
    """No Nagle delay; keepalive probes and a send timeout where the platform has them."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE_S), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
                        ("TCP_KEEPCNT", KEEPALIVE_PROBES), ("TCP_USER_TIMEOUT", SEND_TIMEOUT_MS)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _family(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def serve(worker_address: str, token: str, handle: Callable[[FrameSocket], None]) -> Listener | None:
    """Listen on an ephemeral port of the host of ``worker_address`` (the worker's gRPC address); None if
    switched off or it cannot listen (callers then use gRPC)."""
    if not enabled():
        return None
    try:
        family, sockaddr = _family(host_of(worker_address), 0)
        lsock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        lsock.bind(sockaddr)
    except OSError:
        lsock.close()
        return None
    return Listener(lsock, token, handle, "spindle-tcp-stream", tune=tune)


def connect(worker_address: str, port: int, token: str, timeout: float = 5.0) -> FrameSocket | None:
    """A stream to the worker whose gRPC address is ``worker_address`` and whose stream is on ``port``;
    None if switched off, ``port`` is 0, or connecting or the handshake fails."""
    if not enabled() or port <= 0:
        return None
    try:
        family, sockaddr = _family(host_of(worker_address), port)
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        tune(sock)
    except OSError:
        sock.close()
        return None
    return open_stream(sock, sockaddr, token, timeout)


class OnDemand:
    """A worker's TCP stream, listening from the first time a caller asks for its port."""

    def __init__(self, worker_address: str, token: str, handle: Callable[[FrameSocket], None]):
        self.listener: Listener | None = None
        self._args = (worker_address, token, handle)
        self._lock = threading.Lock()
        self._tried = False

    def port(self) -> int:
        """The port callers connect to; 0 when switched off or the worker cannot listen (they use gRPC)."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self.listener = serve(*self._args)
        return self.listener.port if self.listener is not None else 0
