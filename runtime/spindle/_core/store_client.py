"""The writer and reader side of the node's object store, for drivers and workers.

A large value is written only after the node agent reserved room for it (the agent keeps the
store within ``object_store_memory`` by spilling to disk, and names the path to write: shared
memory, or the spill directory when memory is full). A reader that finds an object gone from
shared memory (spilled) asks the agent to restore it. A full store (memory and disk) is always
``ObjectStoreFullError`` with the agent's explanation, never a bare "No space left on device".
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import time
from collections.abc import Container
from typing import TYPE_CHECKING

import grpc

from spindle import _store
from spindle._proto import pb
from spindle._store_spare import SpareFile
from spindle.exceptions import ObjectLostError, ObjectStoreFullError

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker
    from spindle._serialization import Serialized

_FULL = (errno.ENOSPC, errno.EDQUOT)


def unmap(maps: list[tuple[bytes, memoryview]]) -> list[bytes]:
    """Close the mappings of store files a finished task read in place; the ids of those now unmapped.

    A mapping that some value still uses (the task kept a view of it, or returned it) refuses to close: that
    object is not reported, so its owner never reuses its file.
    """
    out = []
    for oid, view in maps:
        mm = view.obj
        try:
            view.release()
            if not isinstance(mm, mmap.mmap):
                continue
            mm.close()
        except BufferError:
            continue
        out.append(oid)
    maps.clear()
    return out


class AgentUnreachable(Exception):
    """No agent to reserve room with: the caller keeps the value in its own memory instead."""


class StoreClient:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self._spare: SpareFile | None = None
        self._lock = threading.Lock()
        self._credit = 0  # bytes this process may put without asking (the agent's last answer said so)
        self._spare_ok = False
        self._unreported: dict[bytes, pb.ReserveRequest] = {}  # written on credit, not yet told to the agent
        self._report_wake = threading.Event()
        self._closing = False
        self._reporter: threading.Thread | None = None
        # large objects this process wrote for itself into shared memory that no process has mapped or
        # been handed yet: when freed, their files become the next put's spare (see _store_spare.SpareFile)
        self._private: set[bytes] = set()

    def shared(self, oid: bytes) -> None:
        """``oid`` is about to be read here or given to another process: its file must never be reused.

        (Task arguments are judged by the task's answer instead, see ``answered``.)"""
        if self._private and oid in self._private:
            self._unprivate(oid)

    def answered(self, handed: list[bytes], released: Container[bytes]) -> None:
        """A task that was handed ``handed`` (objects we own) answered, saying which files it unmapped: one it did
        not (still in use there, or read from another node's copy) may stay mapped, so its file is never reused."""
        if self._private:
            for oid in handed:
                if oid not in released and oid in self._private:
                    self._unprivate(oid)

    def _unprivate(self, oid: bytes) -> None:
        self._private.discard(oid)
        if self._spare is not None:
            self._spare.forget(_store.object_path(self.cw.node_id, oid))  # its writer mapping is no use now

    def recycle(self, oid: bytes, size: int) -> bool:
        """The owner freed ``oid``: if no process ever mapped it, keep its file as the spare. True when the agent
        never heard of it (freed before its report went), so there is nothing to free there either.

        The freed object's bytes become credit: the next put of up to that size into its file is written
        without asking the agent first (the store does not grow by it; the free and the report follow)."""
        if oid not in self._private:
            return False
        self._private.discard(oid)
        if self._spare is None:
            return False
        with self._lock:
            unreported = self._unreported.pop(oid, None)
        if not self._spare.give(_store.object_path(self.cw.node_id, oid), size):
            if unreported is not None:
                self._report(unreported)
            return False
        with self._lock:
            if self._spare_ok:
                self._credit += size
        return unreported is not None

    def _mark_private(self, oid: bytes, owner: str, path: str, size: int) -> None:
        if owner == self.cw.address and size >= _store.SPARE_MIN and self._spare is not None and self._in_shm(path):
            self._private.add(oid)

    def write(self, oid: bytes, ser: Serialized, owner: str) -> int:
        """Write a large value into this node's store on behalf of ``owner``; returns its size.

        Raises ``AgentUnreachable`` before writing anything when the node's agent does not answer.
        """
        if owner == self.cw.address:
            size = self._write_on_credit(oid, ser, keep=True)
            if size:
                self._mark_private(oid, owner, _store.object_path(self.cw.node_id, oid), size)
                return size
        reply = self._reserve(oid, ser.size, owner, force_disk=False)
        try:
            size = _store.write_object(reply.path, ser, self._spare_for(reply),
                                       keep=owner == self.cw.address and self._in_shm(reply.path),
                                       recycled=reply.recycled)
            self._mark_private(oid, owner, reply.path, size)
            return size
        except OSError as e:
            if e.errno not in _FULL or not self._in_shm(reply.path):
                self._release(oid)
                if e.errno in _FULL:
                    raise self._full(oid, ser.size, e) from None
                raise
        except BaseException:
            self._release(oid)
            raise
        # shared memory is fuller than the budget knew (other users of /dev/shm): write to the spill directory
        reply = self._reserve(oid, ser.size, owner, force_disk=True)
        try:
            return _store.write_object(reply.path, ser)
        except BaseException as e:
            self._release(oid)
            if isinstance(e, OSError) and e.errno in _FULL:
                raise self._full(oid, ser.size, e) from None
            raise

    def map(self, oid: bytes) -> memoryview:
        """Map a local object, restoring it through the agent if it was spilled."""
        self.shared(oid)
        for _ in range(3):  # the object may move between memory and disk while we look: look again
            try:
                return _store.map_object(_store.object_path(self.cw.node_id, oid))
            except FileNotFoundError:
                pass
            try:
                reply = self.cw.agent().RestoreObject(pb.RestoreRequest(object_id=oid), metadata=self.cw.md,
                                                      timeout=600)
            except grpc.RpcError as e:
                raise ObjectLostError(oid.hex(), f"its node's agent is unreachable ({e.code().name})") from None
            if not reply.path:
                break
            try:
                return _store.map_object(reply.path)
            except FileNotFoundError:
                continue
        raise ObjectLostError(oid.hex(), "its store file is gone")

    def close(self) -> None:
        self._closing = True
        self._report_wake.set()
        if self._spare is not None:
            self._spare.close()

    # ---------------------------------------------------------------- puts on credit
    # While the store has plenty of room, the agent gives each writer a credit: its own puts up to that
    # many bytes go straight to shared memory and are reported in batches afterwards, so a put of a
    # medium-sized value costs no round trip. (Only puts: their owner is the writer, so an object whose
    # report was lost with its writer has no one left to read it, and the agent's sweep may remove it.)
    def _write_on_credit(self, oid: bytes, ser: Serialized, keep: bool) -> int:
        with self._lock:
            if ser.size > self._credit:
                return 0
            self._credit -= ser.size
            spare = self._spare if self._spare_ok else None
        try:
            size = _store.write_object(_store.object_path(self.cw.node_id, oid), ser, spare, keep)
        except OSError as e:
            with self._lock:
                self._credit = 0
            if e.errno in _FULL:
                return 0  # ask the agent, which knows where there is room
            raise
        self._report(pb.ReserveRequest(object_id=oid, size=size, owner_address=self.cw.address,
                                       writer_pid=os.getpid()))
        return size

    def _report(self, req: pb.ReserveRequest) -> None:
        with self._lock:
            self._unreported[req.object_id] = req
            if self._reporter is None:
                self._reporter = threading.Thread(target=self._report_loop, daemon=True, name="spindle-store-report")
                self._reporter.start()
        self._report_wake.set()

    def _report_loop(self) -> None:
        while True:
            self._report_wake.wait()
            if not self._closing:
                time.sleep(0.01)  # a burst of puts costs one report (and a put freed meanwhile, none)
            with self._lock:
                self._report_wake.clear()
                batch = list(self._unreported.values())
                self._unreported.clear()
            if batch:
                self._send_report(batch)
            if self._closing:
                return

    def _send_report(self, batch: list[pb.ReserveRequest]) -> None:
        delay = 0.1
        for _ in range(8):  # ~25 s of an agent too busy to answer; it keeps unreported files for longer
            try:
                self.cw.agent().ObjectsWritten(pb.WrittenRequest(objects=batch), metadata=self.cw.md, timeout=10)
                return
            except grpc.RpcError:
                if self.cw.closed:
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ---------------------------------------------------------------- internals
    def _reserve(self, oid: bytes, size: int, owner: str, force_disk: bool) -> pb.ReserveReply:
        req = pb.ReserveRequest(object_id=oid, size=size, owner_address=owner, writer_pid=os.getpid(),
                                force_disk=force_disk)
        try:
            reply: pb.ReserveReply = self.cw.agent().ReserveObject(req, metadata=self.cw.md, timeout=600)
        except grpc.RpcError as e:
            raise AgentUnreachable(f"the node agent at {self.cw.agent_address} is unreachable ({e.code().name})") from None
        if reply.full:
            raise ObjectStoreFullError(reply.message)
        with self._lock:
            self._credit, self._spare_ok = reply.credit, reply.spare_ok
        return reply

    def _spare_for(self, reply: pb.ReserveReply) -> SpareFile | None:
        if not reply.spare_ok or not self._in_shm(reply.path):
            return None
        if self._spare is None:
            self._spare = SpareFile(self.cw.node_id)
        return self._spare

    def _in_shm(self, path: str) -> bool:
        return path.startswith(_store.store_prefix(self.cw.node_id))

    def _release(self, oid: bytes) -> None:
        try:
            self.cw.agent().FreeObjects(pb.FreeRequest(object_ids=[oid]), metadata=self.cw.md, timeout=10)
        except grpc.RpcError:
            pass  # the agent sweeps the reservation of a writer that is gone

    @staticmethod
    def _full(oid: bytes, size: int, err: OSError) -> ObjectStoreFullError:
        return ObjectStoreFullError(
            f"Failed to store object {oid.hex()} of {size} bytes: the disk ran out of space while writing it "
            f"({err.strerror}). Raise object_store_memory, give the spill directory more disk, or drop references "
            "to objects you no longer need.")
