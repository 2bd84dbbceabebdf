"""Moving a large object between node agents at link speed: byte ranges over plain TCP, in parallel.

gRPC streams cost several copies per chunk under the GIL (protobuf framing, gRPC's buffers, the Python
bytes of each message). Instead the agent that has the object hands out a ticket over gRPC (OpenTransfer,
with the cluster token) and serves the object's bytes on a data port: each connection sends the ticket and
a byte range, and the agent answers with ``sendfile`` straight from the store file (no user-space copy, no
GIL). The pulling agent reads the ranges on several connections at once into its own new store file
(``splice`` from the socket through a pipe into the file at the range's offset: one kernel copy, no user-space
buffer, no GIL; ``recv_into`` + ``pwrite`` where splice is refused), then publishes it by rename.

A ticket names one object and holds its file open (a free or a spill during the transfer cannot pull it
away); it is forgotten once no connection has used it for ``TICKET_IDLE_S``. A peer that stops answering
fails the pull after ``SPINDLE_TRANSFER_TIMEOUT_S`` without progress; one that dies fails it at once (the
connection ends early); either way the error names the peer and how far the transfer got.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spindle import _store
from spindle._proto import pb, rpc
from spindle._rpc.net import env_seconds

if TYPE_CHECKING:
    from spindle._agent.agent import Agent

log = logging.getLogger("spindle.agent")

_HEADER = struct.Struct("<16sQQ")  # ticket, offset, length
TICKET_IDLE_S = 60.0
RANGE_MIN = 8 * 1024 * 1024  # ranges are at least this big: small objects go on one connection
MAX_STREAMS = 4
_BUF = 8 * 1024 * 1024
_PIPE = 1 << 20  # splice moves at most a pipe's capacity per call
MAX_CONNECTIONS = 64  # data connections served at once (16 pulls of 4 ranges)
HEADER_TIMEOUT_S = 10.0


class TransferError(Exception):
    """The object could not be read from its node; the message names the peer and what happened."""


@dataclass
class _Ticket:
    fd: int
    size: int
    object_id: bytes
    active: int = 0
    last_use: float = field(default_factory=time.monotonic)


class TransferServer:
    """The data port of a node agent: serves byte ranges of objects it issued tickets for."""

    def __init__(self, ip: str):
        self.sock = socket.create_server((ip, 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.tickets: dict[bytes, _Ticket] = {}
        self.closed = False
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        threading.Thread(target=self._accept_loop, daemon=True, name="transfer-accept").start()
        threading.Thread(target=self._expire_loop, daemon=True, name="transfer-expire").start()

    def open(self, path: str, object_id: bytes) -> pb.TransferTicket:
        """A ticket for object ``object_id``'s store file at ``path`` (FileNotFoundError if it is not there)."""
        fd = os.open(path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        ticket = secrets.token_bytes(16)
        with self.lock:
            self.tickets[ticket] = _Ticket(fd, size, object_id)
        return pb.TransferTicket(size=size, port=self.port, ticket=ticket)

    def forget(self, object_ids: set[bytes]) -> None:
        """The objects were freed: close their tickets that send nothing now. A ticket's open file would keep a freed
        object's file from being reused (``file_pool`` reuses only files nobody holds) until the ticket expired."""
        with self.lock:
            done = [k for k, t in self.tickets.items() if t.object_id in object_ids and not t.active]
            gone = [self.tickets.pop(k) for k in done]
        for t in gone:
            os.close(t.fd)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        with self.lock:
            tickets, self.tickets = list(self.tickets.values()), {}
        for t in tickets:
            os.close(t.fd)

    def _accept_loop(self) -> None:
        while not self.closed:
            self.slots.acquire()  # at most MAX_CONNECTIONS at once; further ones wait in the listen backlog
            try:
                conn, _ = self.sock.accept()
            except OSError:
                self.slots.release()
                if self.closed:
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="transfer-send").start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._send_range(conn)
        finally:
            self.slots.release()

    def _send_range(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(HEADER_TIMEOUT_S)  # a connection that does not say what it wants is dropped
            try:
                header = _recv_exactly(conn, _HEADER.size)
            except OSError:
                return
            if header is None:
                return
            ticket_id, offset, length = _HEADER.unpack(header)
            with self.lock:
                t = self.tickets.get(ticket_id)
                if t is None or offset + length > t.size:
                    return  # unknown ticket or a range beyond the object: the connection just closes
                t.active += 1
                t.last_use = time.monotonic()
            # sendfile needs a blocking socket; a peer that stops reading fails it after the send timeout
            conn.settimeout(None)
            secs = int(env_seconds("SPINDLE_TRANSFER_TIMEOUT_S", 30.0))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", max(secs, 1), 0))
            try:
                while length:
                    n = os.sendfile(conn.fileno(), t.fd, offset, length)
                    if n == 0:
                        return  # the file is shorter than it was (cannot happen to a store file)
                    offset, length = offset + n, length - n
            except OSError:
                return  # the puller went away: it reports the failure on its side
            finally:
                with self.lock:
                    t.active -= 1
                    t.last_use = time.monotonic()

    def _expire_loop(self) -> None:
        while not self.closed:
            time.sleep(5.0)
            now = time.monotonic()
            with self.lock:
                done = [k for k, t in self.tickets.items() if not t.active and now - t.last_use > TICKET_IDLE_S]
                expired = [self.tickets.pop(k) for k in done]
            for t in expired:
                os.close(t.fd)


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    while view:
        k = conn.recv_into(view)
        if not k:
            return None
        view = view[k:]
    return bytes(buf)


def _receive(s: socket.socket, fd: int, offset: int, length: int, got: list[int], i: int, stop: list[str]) -> None:
    """Copy the range's bytes from ``s`` into ``fd`` at ``offset``, counting them in ``got[i]``; ConnectionError if
    the peer ended the connection early. Stops quietly once ``stop`` holds an error (another range failed)."""
    if hasattr(os, "splice"):
        try:
            _receive_splice(s, fd, offset, length, got, i, stop)
            return
        except OSError as e:  # a file system without splice support: same bytes, the copying way
            if e.errno not in (errno.EINVAL, errno.ENOSYS) or got[i]:
                raise
    # blocking reads of whole buffers (MSG_WAITALL): the thread takes the GIL once per 8 MiB, not once per socket
    # read; the agent's other threads would otherwise hold each read up (the GIL's 5 ms switch interval).
    view = memoryview(bytearray(min(_BUF, max(length, 1))))
    while got[i] < length and not stop:
        k = s.recv_into(view, min(len(view), length - got[i]), socket.MSG_WAITALL)
        if not k:
            raise ConnectionError("the peer ended the connection early")
        done = 0
        while done < k:
            done += os.pwrite(fd, view[done:k], offset + got[i] + done)
        got[i] += k


def _receive_splice(s: socket.socket, fd: int, offset: int, length: int, got: list[int], i: int,
                    stop: list[str]) -> None:
    """Socket -> pipe -> file with splice(2): the kernel moves the socket's pages into the pipe and copies them
    once into the store file's pages. On this VM the receiver spends ~1.05 s of CPU per GiB this way against
    1.5-1.7 s with ``recv_into`` + ``pwrite`` of 8 MiB buffers (bench/README.md, two-node pulls)."""
    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE)
        except OSError:  # capped by /proc/sys/fs/pipe-max-size: the default 64 KiB pipe still works
            pass
        while got[i] < length and not stop:
            k = os.splice(s.fileno(), w, min(_PIPE, length - got[i]))
            if not k:
                raise ConnectionError("the peer ended the connection early")
            done = 0
            while done < k:
                done += os.splice(r, fd, k - done, offset_dst=offset + got[i] + done)
            got[i] += k
    finally:
        os.close(r)
        os.close(w)


def ranges(size: int, streams: int = MAX_STREAMS) -> list[tuple[int, int]]:
    """(offset, length) pieces covering ``size`` bytes: up to ``streams`` of them, none under RANGE_MIN."""
    if size <= 0:
        return [(0, 0)]
    n = max(1, min(streams, size // RANGE_MIN))
    step = -(-size // n)
    return [(off, min(step, size - off)) for off in range(0, size, step)]


def pull(host: str, ticket: pb.TransferTicket, path: str, streams: int = MAX_STREAMS) -> float:
    """Read the ticket's object from ``host`` into a new store file at ``path``; returns the seconds it took.

    Raises TransferError (nothing is left behind) when the peer dies, stops answering, or refuses the ticket.
    """
    start = time.monotonic()
    timeout = env_seconds("SPINDLE_TRANSFER_TIMEOUT_S", 30.0)
    tmp = _store.tmp_path(path)
    pieces = ranges(ticket.size, streams)
    socks: list[socket.socket] = []
    errors: list[str] = []
    got = [0] * len(pieces)
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)  # it may exist: a freed file reserve gave us to write into
    try:
        os.ftruncate(fd, ticket.size)

        def fail(why: str) -> None:
            errors.append(why)
            for s in list(socks):  # the other connections stop at once instead of finishing a failed transfer
                _shutdown(s)

        def read(i: int, offset: int, length: int) -> None:
            try:
                s = socket.create_connection((host, ticket.port), timeout=timeout)
            except OSError as e:
                fail(f"could not connect to its data port {host}:{ticket.port} ({e})")
                return
            socks.append(s)
            try:
                s.sendall(_HEADER.pack(ticket.ticket, offset, length))
                # blocking reads (splice and recv honour SO_RCVTIMEO, which keeps a silent peer from blocking
                # forever: EAGAIN after the timeout)
                s.settimeout(None)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", max(int(timeout), 1), 0))
                _receive(s, fd, offset, length, got, i, errors)
            except ConnectionError:  # reset, or ended before the range was complete
                fail(f"the connection ended after {sum(got)} of {ticket.size} bytes (the node stopped, or the object "
                     "was freed there)")
            except (TimeoutError, BlockingIOError):
                fail(f"no data for {timeout:.0f} s after {sum(got)} of {ticket.size} bytes (the node is unreachable "
                     "or hung; SPINDLE_TRANSFER_TIMEOUT_S)")
            except OSError as e:
                if not errors:
                    fail(f"the transfer failed after {sum(got)} of {ticket.size} bytes ({e})")
            finally:
                s.close()

        threads = [threading.Thread(target=read, args=(i, off, n), daemon=True, name="transfer-recv")
                   for i, (off, n) in enumerate(pieces[1:], start=1)]
        for t in threads:
            t.start()
        read(0, *pieces[0])
        for t in threads:
            t.join()
        if errors:
            raise TransferError(errors[0])
    except BaseException:
        os.close(fd)
        _store.delete_object(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    return time.monotonic() - start


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def pull_object(agent: Agent, object_id: bytes, loc: pb.ObjectLocation, path: str) -> None:
    """Copy ``object_id`` from the agent at ``loc`` into this node's store file ``path`` (the caller reserved it).

    Raises grpc.RpcError (the agent refused: NOT_FOUND, UNAVAILABLE) or TransferError.
    """
    stub = rpc.NodeAgentStub(agent.channels.get(loc.agent_address))
    ticket = stub.OpenTransfer(pb.FetchRequest(object_id=object_id, requester=agent.address),
                               metadata=agent.channels.metadata, timeout=60)
    host = loc.agent_address.rsplit(":", 1)[0].strip("[]")
    try:
        seconds = pull(host, ticket, path)
    except TransferError as e:
        raise TransferError(f"reading object {object_id.hex()} from {host}: {e}") from None
    log.info("pulled object %s (%.1f MiB) from %s in %.3f s (%.2f GiB/s)", object_id.hex(), ticket.size / 2**20,
             loc.agent_address, seconds, ticket.size / 2**30 / max(seconds, 1e-9))
