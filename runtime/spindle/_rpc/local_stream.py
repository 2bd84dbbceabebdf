"""Actor calls between processes of one node over a Unix socket, without thread hand-offs.

A synchronous actor call over a gRPC stream wakes about eight threads per round trip (gRPC's
request-iterator thread and completion-queue pollers on both sides, the worker's stream reader,
its executor, its response iterator, the caller's stream reader), and on a busy two-core node each
wake-up is a GIL hand-off. On this stream the caller's own thread writes the call, the worker's
connection thread reads it and queues it for the executor, the executor's thread writes the result
itself, and the caller's reader thread stores it: four wake-ups per call.

The socket is in Linux's abstract namespace, named after the worker's gRPC address, so it exists
only inside the worker's network namespace (its node): a caller on another node does not find it
and uses gRPC. Abstract sockets have no file permissions, so the caller first sends the cluster
token and the worker answers ``OK`` only when it matches (the same check as every gRPC server),
before it reads any call. Frames are a 4-byte little-endian length and a serialized ``TaskBatch``
(caller to worker) or ``ResultBatch`` (worker to caller). ``SPINDLE_LOCAL_ACTOR_STREAM=0`` turns it
off (every call then goes over gRPC).
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator

_LEN = struct.Struct("<I")
_OK = b"OK"
MAX_FRAME = 512 * 1024 * 1024


def enabled() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("SPINDLE_LOCAL_ACTOR_STREAM", "1") != "0"


def _name(worker_address: str) -> str:
    return f"\0spindle-worker-{worker_address}"


class FrameSocket:
    """One end of a stream: ``send`` is thread-safe and writes from the calling thread."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._lock = threading.Lock()
        self._rfile = sock.makefile("rb", buffering=256 * 1024)
        self.closed = False

    def send(self, data: bytes) -> None:
        with self._lock:
            if len(data) < 65536:  # one syscall; a large frame is not copied to prepend its length
                self.sock.sendall(_LEN.pack(len(data)) + data)
            else:
                self.sock.sendall(_LEN.pack(len(data)))
                self.sock.sendall(data)

    def recv(self) -> bytes | None:
        """The next frame, or None when the peer closed the stream (or it broke)."""
        try:
            head = self._rfile.read(4)
            if len(head) < 4:
                return None
            (n,) = _LEN.unpack(head)
            if n > MAX_FRAME:
                return None
            data = self._rfile.read(n)
            return data if len(data) == n else None
        except (OSError, ValueError):
            return None

    def frames(self) -> Iterator[bytes]:
        while True:
            data = self.recv()
            if data is None:
                return
            yield data

    def close(self) -> None:
        """Ends the stream in both directions (wakes a thread blocked in ``recv``)."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        self.close()
        try:
            self._rfile.close()
            self.sock.close()
        except OSError:
            pass


def connect(worker_address: str, token: str, timeout: float = 5.0) -> FrameSocket | None:
    """A stream to the worker at ``worker_address`` if it runs in this network namespace, else None."""
    if not enabled():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(_name(worker_address))
        fs = FrameSocket(sock)
        fs.send(token.encode())
        if fs.recv() != _OK:
            fs.release()
            return None
        sock.settimeout(None)
        return fs
    except OSError:
        sock.close()
        return None


def serve(worker_address: str, token: str, handle: Callable[[FrameSocket], None]) -> socket.socket | None:
    """Accept streams for this worker; ``handle`` runs on one thread per authenticated connection."""
    if not enabled():
        return None
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lsock.bind(_name(worker_address))
    except OSError:
        lsock.close()
        return None
    lsock.listen(64)
    expected = token.encode()

    def conn_main(sock: socket.socket) -> None:
        fs = FrameSocket(sock)
        try:
            sock.settimeout(10.0)  # the token must come promptly
            got = fs.recv()
            if got is None or not hmac.compare_digest(got, expected):
                return
            sock.settimeout(None)
            fs.send(_OK)
            handle(fs)
        except OSError:
            pass
        finally:
            fs.release()

    def accept_loop() -> None:
        while True:
            try:
                sock, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=conn_main, args=(sock,), daemon=True, name="spindle-local-stream").start()

    threading.Thread(target=accept_loop, daemon=True, name="spindle-local-accept").start()
    return lsock
