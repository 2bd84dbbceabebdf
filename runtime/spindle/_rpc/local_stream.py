"""Actor calls between processes of one node over a Unix socket, without thread hand-offs.

A synchronous actor call over a gRPC stream wakes about eight threads per round trip (gRPC's
request-iterator thread and completion-queue pollers on both sides, the worker's stream reader,
its executor, its response iterator, the caller's stream reader), and on a busy two-core node each
wake-up is a GIL hand-off. On this stream the caller's own thread writes the call, the worker's
connection thread reads it and queues it for the executor, the executor's thread writes the result
itself, and the caller's reader thread stores it: four wake-ups per call.

The socket is in Linux's abstract namespace, named after the worker's gRPC address, so it exists
only inside the worker's network namespace (its node): a caller on another node does not find it
and uses ``tcp_stream`` (or gRPC). Abstract sockets have no file permissions, so the stream opens
with the token handshake of ``frame_stream`` (which also holds the framing) before any call is read.
``SPINDLE_LOCAL_ACTOR_STREAM=0`` turns it off (calls on one node then go over gRPC).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

from spindle._rpc.frame_stream import FrameSocket, Listener, open_stream


def enabled() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("SPINDLE_LOCAL_ACTOR_STREAM", "1") != "0"


def _name(worker_address: str) -> str:
    return f"\0spindle-worker-{worker_address}"


def connect(worker_address: str, token: str, timeout: float = 5.0) -> FrameSocket | None:
    """A stream to the worker at ``worker_address`` if it runs in this network namespace, else None."""
    if not enabled():
        return None
    return open_stream(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), _name(worker_address), token, timeout)


def serve(worker_address: str, token: str, handle: Callable[[FrameSocket], None]) -> Listener | None:
    """Accept streams for this worker; ``handle`` runs on one thread per authenticated connection."""
    if not enabled():
        return None
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lsock.bind(_name(worker_address))
    except OSError:
        lsock.close()
        return None
    return Listener(lsock, token, handle, "spindle-local-stream")
