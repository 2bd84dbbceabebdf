"""The physical limit of a transfer between the two namespaces: a plain TCP copy of a store-like file.

``python -m bench.socket_copy send IP PORT SIZE STREAMS`` (in one namespace) serves a /dev/shm file of SIZE
bytes with ``sendfile`` on STREAMS connections; ``... recv IP PORT SIZE STREAMS`` (in the other) reads the
ranges into a new /dev/shm file (``recv_into`` + ``pwrite``) and prints GiB/s: a plain program's copy, without
any runtime around it (a node agent's pull does the same with ``splice`` in place of ``recv_into`` + ``pwrite``). Run by ``python -m bench --multinode`` beside ``remote_pull``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time


def _ranges(size: int, streams: int) -> list[tuple[int, int]]:
    step = -(-size // streams)
    return [(off, min(step, size - off)) for off in range(0, size, step)]


def send(ip: str, port: int, size: int, streams: int) -> None:
    path = f"/dev/shm/spindle-bench-copy-src-{os.getpid()}"
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
        ls = socket.create_server((ip, port), backlog=streams)
        print("ready", flush=True)

        def serve(conn: socket.socket) -> None:
            with conn:
                i = int.from_bytes(conn.recv(4), "little")
                off, n = _ranges(size, streams)[i]
                while n:
                    k = os.sendfile(conn.fileno(), fd, off, n)
                    off, n = off + k, n - k

        threads = []
        for _ in range(streams):
            conn, _ = ls.accept()
            threads.append(threading.Thread(target=serve, args=(conn,)))
            threads[-1].start()
        for t in threads:
            t.join()
    finally:
        os.close(fd)
        os.unlink(path)


def recv(ip: str, port: int, size: int, streams: int) -> float:
    path = f"/dev/shm/spindle-bench-copy-dst-{os.getpid()}"
    start = time.perf_counter()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)

        def get(i: int, off: int, n: int) -> None:
            for delay in (0.05, 0.1, 0.2, 0.5, 1, 2, 4):
                try:
                    s = socket.create_connection((ip, port))
                    break
                except ConnectionRefusedError:
                    time.sleep(delay)
            with s:
                s.sendall(i.to_bytes(4, "little"))
                view = memoryview(bytearray(min(n, 4 << 20)))
                while n:
                    k = s.recv_into(view[: min(n, len(view))])
                    if not k:
                        raise EOFError("the sender closed early")
                    os.pwrite(fd, view[:k], off)
                    off, n = off + k, n - k

        threads = [threading.Thread(target=get, args=(i, o, n)) for i, (o, n) in enumerate(_ranges(size, streams))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return size / (time.perf_counter() - start) / (1 << 30)
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    role, ip, port, size, streams = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if role == "send":
        send(ip, port, size, streams)
    else:
        print(f"{recv(ip, port, size, streams):.3f}")
