"""gRPC plumbing shared by every Spindle process: token checks, servers, channels.

Every server refuses a call that does not carry the cluster token (metadata
``x-spindle-token``) before any handler runs, because the payloads are pickles and
unpickling is code execution. The refusal is decided on the call's headers and answered without
reading its body (the refusing handler takes a request *stream* it never reads), so a client
without the token cannot make a server buffer a large message: the server holds at most the
HTTP/2 flow-control window of it. Servers also close connections that stay idle, that never
finish the HTTP/2 handshake, or whose peer stopped answering keepalive pings, and accept at most
as many connections as their file-descriptor budget allows (see ``net.incoming_connection_cap``).
Channels are cached per address: one HTTP/2 connection per peer. Stubs come from ``Channels.stub``,
which never builds one on a channel that ``close`` has closed: gRPC (1.85) crashes the whole process
with a segmentation fault when a stub or call object is created on a closed channel, and a background
thread of a process that is shutting down does exactly that unless creation and closing exclude each
other. After ``close``, ``stub`` raises ``ChannelsClosed``, an ``RpcError`` (CANCELLED) that every
caller already handles; a call through a stub whose channel was closed afterwards raises gRPC's
``ValueError``.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc

from spindle._rpc.net import (
    check_bindable,
    env_seconds,
    free_port,
    incoming_connection_cap,
    new_token,
    raise_fd_limit,
    routable_ip,
)

__all__ = ["free_port", "new_token", "routable_ip"]

TOKEN_KEY = "x-spindle-token"
S = TypeVar("S")


class ChannelsClosed(grpc.RpcError):
    """Raised by ``Channels.stub`` once the process's channels are closed: its RPCs end as CANCELLED."""

    def __init__(self, address: str):
        super().__init__(f"no RPC to {address}: this process's channels are closed (it is shutting down)")

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return str(self)
MAX_MESSAGE = 512 * 1024 * 1024

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
    # a peer that went away (a restarted head) is found again within ~2 s of coming back, not after
    # gRPC's default backoff of up to 120 s
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),
    # the server pings its clients too, so a connection whose peer vanished is closed in ~40 s
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]
IDLE_S = 300.0  # a connection without any call for this long is closed (the client reconnects on its next call)
HANDSHAKE_S = 10.0  # a connection must finish the HTTP/2 handshake this soon after it is accepted


def server_options() -> list[tuple[str, int]]:
    """SERVER_OPTIONS plus the limits read at start: idle and handshake timeouts, connection cap."""
    idle = env_seconds("SPINDLE_RPC_IDLE_TIMEOUT_S", IDLE_S)
    handshake = min(env_seconds("SPINDLE_RPC_HANDSHAKE_TIMEOUT_S", HANDSHAKE_S), idle)
    cap = incoming_connection_cap(raise_fd_limit())
    return [*SERVER_OPTIONS,
            ("grpc.max_connection_idle_ms", int(idle * 1000)),
            ("grpc.server_handshake_timeout_ms", int(handshake * 1000)),
            ("grpc.max_allowed_incoming_connections", cap)]


class _TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str):
        self._token = token.encode()

        def deny(request_iterator: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token (set SPINDLE_TOKEN)")

        self._deny_unary = grpc.stream_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_KEY:
                v = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(v, self._token):
                    return continuation(handler_call_details)
                break
        method = handler_call_details.method or ""
        if method.endswith("/PushTasks") or method.endswith("/FetchObject") or method.endswith("/WatchJob"):
            return self._deny_stream
        return self._deny_unary


def make_server(token: str, host: str, port: int, max_workers: int = 32) -> tuple[grpc.Server, int]:
    """A server bound to host:port (0 = any free port) that checks the token; returns the port.

    ``host`` is the node's IP (127.0.0.1 for an embedded cluster): never every address unless asked.
    """
    check_bindable(host)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spindle-rpc"),
        interceptors=[_TokenInterceptor(token)],
        options=server_options(),
        maximum_concurrent_rpcs=None,
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # newer gRPC raises "Failed to bind to address" where older ones returned 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}: is the port in use?")
    return server, bound


class Channels:
    """One channel per peer address, created lazily and shared by every stub."""

    def __init__(self, token: str):
        self.metadata = ((TOKEN_KEY, token),)
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[tuple[str, Callable[[grpc.Channel], Any]], Any] = {}
        self._lock = threading.Lock()
        self.closed = False

    def stub(self, address: str, make: Callable[[grpc.Channel], S]) -> S:
        """``make(channel)`` for the peer at ``address`` (a stub class, or a function making a call object),
        made once and cached; ``ChannelsClosed`` once ``close`` has run (this process is shutting down)."""
        key = (address, make)
        cached: S | None = self._stubs.get(key)
        if cached is not None:
            return cached
        with self._lock:
            if self.closed:
                raise ChannelsClosed(address)
            made: S | None = self._stubs.get(key)
            if made is None:
                ch = self._channels.get(address)
                if ch is None:
                    ch = self._channels[address] = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                made = self._stubs[key] = make(ch)
            return made

    def get(self, address: str) -> grpc.Channel:
        ch = self._channels.get(address)
        if ch is None:
            with self._lock:
                ch = self._channels.get(address)
                if ch is None:
                    ch = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                    self._channels[address] = ch
        return ch

    def drop(self, address: str) -> None:
        with self._lock:
            ch = self._channels.pop(address, None)
            for key in [k for k in self._stubs if k[0] == address]:
                del self._stubs[key]
        if ch is not None:
            ch.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            chans = list(self._channels.values())
            self._channels.clear()
            self._stubs.clear()
        for ch in chans:
            ch.close()


def batched(q: Any) -> Iterator[Any]:
    """Drain a queue of TaskBatch messages into as few messages as possible (None ends the stream).

    The stream's sender blocks for the first batch, then merges everything already queued behind
    it, so a burst of submissions costs one message instead of one per task.
    """
    import queue as _queue

    while True:
        first = q.get()
        if first is None:
            return
        merged = None
        while True:
            try:
                nxt = q.get_nowait()
            except _queue.Empty:
                break
            if nxt is None:
                yield merged if merged is not None else first
                return
            if merged is None:
                merged = type(first)()
                merged.MergeFrom(first)
            merged.MergeFrom(nxt)
        yield merged if merged is not None else first
