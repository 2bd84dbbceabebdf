"""A pull reads every range of an object into a new file, or fails with an error saying how far it got.

These drive ``transfer.pull`` (the receiving side: splice from the socket into the file) against a plain TCP
server on loopback that speaks the data port's protocol, so a peer that sends everything, one that hangs
part-way and one that hangs up early are each exact, without a cluster around them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from spindle._agent import transfer
from spindle._proto import pb

TICKET = b"t" * 16


def _pattern(n: int) -> bytes:
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@contextmanager
def _server(answer: Callable[[socket.socket, int, int], None]) -> Iterator[int]:
    """A data port on loopback: each connection sends the header; ``answer(conn, offset, length)`` replies."""
    ls = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        threads = []
        ls.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = ls.accept()
            except TimeoutError:
                continue
            hdr = b""
            while len(hdr) < transfer._HEADER.size:
                hdr += conn.recv(transfer._HEADER.size - len(hdr))
            ticket, offset, length = transfer._HEADER.unpack(hdr)
            assert ticket == TICKET
            t = threading.Thread(target=answer, args=(conn, offset, length), daemon=True)
            t.start()
            threads.append(t)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield ls.getsockname()[1]
    finally:
        done.set()
        server.join()
        ls.close()


@pytest.mark.parametrize("size", [1, 8 * 1024 * 1024 - 3, 40 * 1024 * 1024 + 7])
def test_every_range_arrives_in_place(tmp_path: Path, size: int) -> None:
    data = _pattern(size)

    def answer(conn: socket.socket, offset: int, length: int) -> None:
        with conn:
            conn.sendall(data[offset:offset + length])

    with _server(answer) as port:
        path = str(tmp_path / "obj")
        transfer.pull("127.0.0.1", pb.TransferTicket(size=size, port=port, ticket=TICKET), path)
    assert Path(path).read_bytes() == data
    assert os.listdir(tmp_path) == ["obj"]


def test_a_peer_that_hangs_part_way_fails_the_pull_after_the_timeout_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDLE_TRANSFER_TIMEOUT_S", "1")
    release = threading.Event()

    def answer(conn: socket.socket, offset: int, length: int) -> None:
        with conn:
            conn.sendall(_pattern(length // 2))
            release.wait(30)  # alive but silent

    size = 16 * 1024 * 1024
    with _server(answer) as port:
        with pytest.raises(transfer.TransferError, match=r"no data for 1 s after \d+ of 16777216 bytes"):
            transfer.pull("127.0.0.1", pb.TransferTicket(size=size, port=port, ticket=TICKET), str(tmp_path / "o"))
        release.set()
    assert os.listdir(tmp_path) == []


def test_a_peer_that_hangs_up_early_fails_the_pull_at_once_naming_the_bytes_received(tmp_path: Path) -> None:
    def answer(conn: socket.socket, offset: int, length: int) -> None:
        with conn:
            conn.sendall(_pattern(1000))

    with _server(answer) as port:
        with pytest.raises(transfer.TransferError, match=r"the connection ended after \d+ of 5000 bytes"):
            transfer.pull("127.0.0.1", pb.TransferTicket(size=5000, port=port, ticket=TICKET), str(tmp_path / "o"))
    assert os.listdir(tmp_path) == []
