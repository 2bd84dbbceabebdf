"""The node's shared-memory object store: one file per object under /dev/shm.

Writers lay a frame out with ``writev`` (the kernel allocates tmpfs pages without user page
faults); readers map the file read-only, so every process on the node shares the same pages
and numpy arrays deserialize zero-copy. Unlinking a file that readers still map is safe: the
pages live until the last mapping goes. The node agent owns the directory and unlinks on free.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._serialization import Serialized

SHM_DIR = os.environ.get("SPINDLE_SHM_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")


def store_prefix(node_id: str) -> str:
    return os.path.join(SHM_DIR, f"spindle-{node_id}-")


def object_path(node_id: str, object_id: bytes) -> str:
    return store_prefix(node_id) + object_id.hex()


def write_object(path: str, ser: Serialized) -> int:
    """Write ``ser`` as a new store file; returns the frame size."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        pieces = ser.pieces()
        written = 0
        # writev takes a bounded number of pieces at a time (IOV_MAX)
        while pieces:
            n = os.writev(fd, pieces[:512])
            written += n
            pieces = _advance(pieces, n)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    return written


def _advance(pieces: list[bytes | memoryview], n: int) -> list[bytes | memoryview]:
    out = pieces
    i = 0
    while i < len(out) and n >= len(out[i]):
        n -= len(out[i])
        i += 1
    out = out[i:]
    if out and n:
        out = [memoryview(out[0])[n:], *out[1:]]
    return out


def write_stream(path: str, data_chunks: Iterable[bytes]) -> None:
    """Write chunks as they arrive (a transfer from another node), then publish the file by rename."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        for c in data_chunks:
            view = memoryview(c)
            while view:
                view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        delete_object(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


def map_object(path: str) -> memoryview:
    """Map a store file read-only; the returned view keeps the mapping alive."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return memoryview(mm)


def delete_object(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def claim(node_id: str) -> int:
    """Hold the node's lock file for the agent's lifetime: the store's files are orphans once it is free."""
    import fcntl

    fd = os.open(store_prefix(node_id) + "lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def sweep_orphans() -> list[str]:
    """Delete the store files of agents that died without cleaning up (SIGKILL, OOM); returns their node ids."""
    import fcntl

    swept = []
    for name in os.listdir(SHM_DIR):
        if not (name.startswith("spindle-") and name.endswith("-lock")):
            continue
        node_id = name[len("spindle-") : -len("-lock")]
        path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its agent is alive
            continue
        try:
            delete_all(node_id)
            delete_object(path)
            swept.append(node_id)
        finally:
            os.close(fd)
    return swept


def delete_all(node_id: str) -> None:
    prefix = os.path.basename(store_prefix(node_id))
    for name in os.listdir(SHM_DIR):
        if name.startswith(prefix):
            delete_object(os.path.join(SHM_DIR, name))
