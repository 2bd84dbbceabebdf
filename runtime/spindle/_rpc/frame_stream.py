"""Length-prefixed frames over a stream socket, opened by a token handshake: what actor-call streams run on.

Split out so the two transports of a direct actor-call stream share one framing and one handshake:
``local_stream`` (a Unix socket, callers on the worker's node) and ``tcp_stream`` (callers on other
nodes) differ only in how they name, open and tune the socket.

A frame is a 4-byte little-endian length and its payload: a serialized ``TaskBatch`` (caller to
worker) or ``ResultBatch`` (worker to caller), at most ``MAX_FRAME`` bytes (gRPC's message limit).
The first frame is the handshake: the caller sends the cluster token, and the server compares it in
constant time and answers ``OK`` only when it matches, before it reads any other frame (the same
check as every gRPC server). A token frame may be at most ``TOKEN_MAX`` bytes and must arrive within
``HANDSHAKE_S``, and at most ``PENDING_MAX`` connections may be in their handshake at once (more are
closed at once), so a peer without the token can make the server neither buffer a large frame nor
hold many threads.
"""

from __future__ import annotations

import hmac
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

_LEN = struct.Struct("<I")
_OK = b"OK"
MAX_FRAME = 512 * 1024 * 1024
TOKEN_MAX = 4096
HANDSHAKE_S = 10.0
PENDING_MAX = 64


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

    def recv(self, limit: int = MAX_FRAME) -> bytes | None:
        """The next frame, or None when the peer closed the stream, it broke, or the frame exceeds ``limit``."""
        try:
            head = self._rfile.read(4)
            if len(head) < 4:
                return None
            (n,) = _LEN.unpack(head)
            if n > limit:
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


def open_stream(sock: socket.socket, address: Any, token: str, timeout: float) -> FrameSocket | None:
    """Connect ``sock`` to ``address`` and pass the handshake; None (and ``sock`` closed) on any failure."""
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        fs = FrameSocket(sock)
        fs.send(token.encode())
        if fs.recv(limit=len(_OK)) != _OK:
            fs.release()
            return None
        sock.settimeout(None)
        return fs
    except OSError:
        sock.close()
        return None


class Listener:
    """Accepts streams on a bound socket; ``handle`` runs on one thread per connection that passed the handshake.

    ``tune`` is applied to each accepted socket first (TCP sets its options there). ``accepted`` and
    ``refused`` count handshakes passed and failed (tests read them; nothing else does).
    """

    def __init__(self, lsock: socket.socket, token: str, handle: Callable[[FrameSocket], None], name: str,
                 tune: Callable[[socket.socket], None] | None = None):
        self.sock = lsock
        self.accepted = 0
        self.refused = 0
        self._token = token.encode()
        self._handle = handle
        self._name = name
        self._tune = tune
        self._pending = threading.BoundedSemaphore(PENDING_MAX)
        lsock.listen(64)
        threading.Thread(target=self._accept_loop, daemon=True, name=f"{name}-accept").start()

    @property
    def port(self) -> int:
        """The TCP port it listens on (0 for a Unix socket)."""
        addr = self.sock.getsockname()
        return int(addr[1]) if isinstance(addr, tuple) else 0

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            if not self._pending.acquire(blocking=False):
                self.refused += 1
                sock.close()
                continue
            threading.Thread(target=self._conn_main, args=(sock,), daemon=True, name=self._name).start()

    def _conn_main(self, sock: socket.socket) -> None:
        fs = FrameSocket(sock)
        try:
            ok = self._handshake(sock, fs)
            if ok:
                self._handle(fs)
        except OSError:
            pass
        finally:
            fs.release()

    def _handshake(self, sock: socket.socket, fs: FrameSocket) -> bool:
        try:
            if self._tune is not None:
                self._tune(sock)
            sock.settimeout(HANDSHAKE_S)  # the token must come promptly
            got = fs.recv(limit=TOKEN_MAX)
            if got is None or not hmac.compare_digest(got, self._token):
                self.refused += 1
                return False
            sock.settimeout(None)
            self.accepted += 1  # before the OK: a caller that has its stream sees itself counted
            fs.send(_OK)
            return True
        finally:
            self._pending.release()

    def close(self) -> None:
        """Stops accepting (streams already open go on)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
        except OSError:
            pass
        self.sock.close()
