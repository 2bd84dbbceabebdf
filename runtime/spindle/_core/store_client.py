"""The writer and reader side of the node's object store, for drivers and workers.

A large value is written only after the node agent reserved room for it (the agent keeps the
store within ``object_store_memory`` by spilling to disk, and names the path to write: shared
memory, or the spill directory when memory is full). A reader that finds an object gone from
shared memory (spilled) asks the agent to restore it. A full store (memory and disk) is always
``ObjectStoreFullError`` with the agent's explanation, never a bare "No space left on device".
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

import grpc

from spindle import _store
from spindle._proto import pb
from spindle.exceptions import ObjectLostError, ObjectStoreFullError

if TYPE_CHECKING:
    from spindle._core.core_worker import CoreWorker
    from spindle._serialization import Serialized

_FULL = (errno.ENOSPC, errno.EDQUOT)


class AgentUnreachable(Exception):
    """No agent to reserve room with: the caller keeps the value in its own memory instead."""


class StoreClient:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self._spare: _store.SpareFile | None = None

    def write(self, oid: bytes, ser: Serialized, owner: str) -> int:
        """Write a large value into this node's store on behalf of ``owner``; returns its size.

        Raises ``AgentUnreachable`` before writing anything when the node's agent does not answer.
        """
        reply = self._reserve(oid, ser.size, owner, force_disk=False)
        try:
            return _store.write_object(reply.path, ser, self._spare_for(reply))
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
        if self._spare is not None:
            self._spare.close()

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
        return reply

    def _spare_for(self, reply: pb.ReserveReply) -> _store.SpareFile | None:
        if not reply.spare_ok or not self._in_shm(reply.path):
            return None
        if self._spare is None:
            self._spare = _store.SpareFile(self.cw.node_id)
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
