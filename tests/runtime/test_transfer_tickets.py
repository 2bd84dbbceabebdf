"""A node agent's transfer tickets hold their object's file open; freeing the object closes the tickets that send
nothing at that moment, so the freed file is not held and can be reused for the next large object (``file_pool``
reuses only files nobody holds). Real TransferServer on loopback, real tmpfs files, the kernel's own answer
(``_store.unused``) on whether anyone still holds the file."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from spindle import _store
from spindle._agent.transfer import TransferServer, pull


@pytest.fixture
def server() -> Iterator[TransferServer]:
    assert _store._lease_works(), "this kernel grants write leases and counts open files"
    s = TransferServer("127.0.0.1")
    try:
        yield s
    finally:
        s.close()


def _file(name: str, size: int) -> str:
    path = os.path.join(_store.SHM_DIR, f"spindle-test-tickets-{os.getpid()}-{name}")
    with open(path, "wb") as f:
        f.write(b"t" * size)
    return path


def test_freeing_an_object_closes_its_idle_tickets_so_nobody_holds_its_file(server: TransferServer) -> None:
    path, other = _file("a", 1 << 20), _file("b", 1 << 20)
    try:
        ticket = server.open(path, b"A")
        server.open(other, b"B")
        dest = _file("dest", 0)
        pull("127.0.0.1", ticket, dest)  # the ticket was used, and is idle now
        assert open(dest, "rb").read() == b"t" * (1 << 20)
        assert not _store.unused(path)  # the ticket keeps it open (until it expires, TICKET_IDLE_S)
        server.forget({b"A"})
        assert _store.unused(path)
        assert not _store.unused(other)  # another object's ticket stays
    finally:
        for p in (path, other, os.path.join(_store.SHM_DIR, f"spindle-test-tickets-{os.getpid()}-dest")):
            _store.delete_object(p)


def test_a_freed_object_s_ticket_still_sending_is_left_to_finish(server: TransferServer) -> None:
    path = _file("c", 1 << 20)
    try:
        server.open(path, b"C")
        with server.lock:
            [t] = server.tickets.values()
            t.active += 1  # a range being sent right now
        server.forget({b"C"})
        assert len(server.tickets) == 1 and not _store.unused(path)
        with server.lock:
            t.active -= 1
        server.forget({b"C"})
        assert server.tickets == {} and _store.unused(path)
    finally:
        _store.delete_object(path)
