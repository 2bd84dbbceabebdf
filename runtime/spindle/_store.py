"""The node's shared-memory object store: one file per object under /dev/shm.

Writers lay a frame out with ``pwritev`` (the kernel allocates tmpfs pages without user page
faults), or copy a large one into their mapped spare file (``_store_spare``); readers map the file read-only, so every process on the node shares the same pages
and numpy arrays deserialize zero-copy. Unlinking a file that readers still map is safe: the
pages live until the last mapping goes. The node agent owns the directory and unlinks on free.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spindle._serialization import Serialized
    from spindle._store_spare import SpareFile

SHM_DIR = os.environ.get("SPINDLE_SHM_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")


def store_prefix(node_id: str) -> str:
    return os.path.join(SHM_DIR, f"spindle-{node_id}-")


def object_path(node_id: str, object_id: bytes) -> str:
    return store_prefix(node_id) + object_id.hex()


SPARE_MIN = 16 * 1024 * 1024  # objects at least this big use (and then ask for) a pre-allocated file

_LEASE_WORKS: bool | None = None


def _lease_free(path: str) -> bool:
    """Whether the kernel grants a write lease on ``path``: only when no other open file (and so no mapping: a
    mapping holds its file open) refers to it. The lease is dropped at once; a break would be signalled with
    SIGURG (ignored) instead of SIGIO (which terminates)."""
    import fcntl
    import signal

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError:
            return False
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True
    finally:
        os.close(fd)


def _lease_works() -> bool:
    """Whether ``_lease_free`` sees read-only mappings on this kernel (it needs leases enabled and the inode's
    reader count, CONFIG_IMA): checked once on a scratch file that this process maps."""
    global _LEASE_WORKS
    if _LEASE_WORKS is None:
        path = os.path.join(SHM_DIR, f"spindle-leasecheck-{os.getpid()}")
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, mmap.PAGESIZE)
                mm = mmap.mmap(fd, mmap.PAGESIZE, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            try:
                busy_seen = not _lease_free(path)
            finally:
                mm.close()
            _LEASE_WORKS = busy_seen and _lease_free(path)
        except OSError:
            _LEASE_WORKS = False
        finally:
            delete_object(path)
    return _LEASE_WORKS


def unused(path: str) -> bool:
    """True only if no process has the store file ``path`` open or mapped (so it may be overwritten).

    Asks the kernel (a write lease is granted only on a file nobody else holds); where leases cannot tell, every
    process's ``/proc/<pid>/maps`` is searched for the file's current name.
    """
    try:
        if _lease_works():
            return _lease_free(path)
        needle = path.encode()
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/maps", "rb") as f:
                        if needle in f.read():
                            return False
                except OSError:
                    continue
        return True
    except OSError:
        return False


def tmp_path(path: str, pid: int = 0) -> str:
    """The private name a writer (this process, or process ``pid``) fills before publishing ``path`` by rename (the
    pid lets the agent sweep leftovers)."""
    return f"{path}.{pid or os.getpid()}.tmp"


def write_object(path: str, ser: Serialized, spare: SpareFile | None = None, keep: bool = False,
                 recycled: str = "") -> int:
    """Write ``ser`` as a new store file; returns the frame size. Any failure leaves no partial file.

    ``recycled``: a freed object's file the agent gave for this one (its pages are allocated: see
    ``_agent/file_pool``), written in place. Else a large frame goes into the process's spare file when it has
    one (``_store_spare``); ``keep``: the object is the writer's own and unshared, so the spare's mapping may stay
    for the file's return."""
    if recycled:
        written = _write_recycled(recycled, path, ser)
        if written:
            return written
    if spare is not None and ser.size >= SPARE_MIN:
        written = spare.write(path, ser, keep)
        if written:
            return written
    tmp = tmp_path(path)
    return _fill_and_publish(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), tmp, path, ser)


def _write_recycled(recycled: str, path: str, ser: Serialized) -> int:
    """Write the frame into the freed file ``recycled`` and publish it as ``path``; 0 if that file is gone."""
    try:
        fd = os.open(recycled, os.O_WRONLY)
    except FileNotFoundError:
        return 0
    return _fill_and_publish(fd, recycled, path, ser)


def _fill_and_publish(fd: int, tmp: str, path: str, ser: Serialized) -> int:
    """Write the frame through ``fd`` (open on the private file ``tmp``), close it and publish ``tmp`` as ``path``;
    returns the frame size. On any failure ``tmp`` is deleted."""
    try:
        try:
            written = _pwrite_all(fd, ser.pieces(), ser.size)
            os.ftruncate(fd, written)  # (a recycled file that was bigger: its tail is freed)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        return written
    except BaseException:
        delete_object(tmp)
        raise


PARALLEL_MIN = 8 * 1024 * 1024  # frames at least this big are written by several threads at once
_PAGE = 4096
_writers: ThreadPoolExecutor | None = None
_writers_lock = threading.Lock()


def _pwrite_all(fd: int, pieces: list[bytes | memoryview], size: int) -> int:
    """Write the frame at offset 0; a large one in ranges by up to 4 threads (the copy into shared memory is the
    whole cost of a large put, and ``pwritev`` runs without the GIL)."""
    global _writers
    parts = min(4, os.cpu_count() or 1) if size >= PARALLEL_MIN else 1
    if parts == 1:
        return _pwrite_range(fd, pieces, 0)
    ranges = _split(pieces, -(-size // parts // _PAGE) * _PAGE)
    with _writers_lock:
        if _writers is None:
            _writers = ThreadPoolExecutor(max_workers=3, thread_name_prefix="spindle-write")
    futures = [_writers.submit(_pwrite_range, fd, rp, off) for off, rp in ranges[1:]]
    try:
        written = _pwrite_range(fd, ranges[0][1], ranges[0][0])
    finally:
        wait(futures)  # none may still write once the caller closes (or deletes) the file
    return written + sum(f.result() for f in futures)


def _pwrite_range(fd: int, pieces: list[bytes | memoryview], offset: int) -> int:
    written = 0
    while pieces:  # pwritev takes a bounded number of pieces at a time (IOV_MAX), and may write less
        n = os.pwritev(fd, pieces[:512], offset + written)
        if n <= 0:
            raise OSError(errno.EIO, "short write into the object store")
        written += n
        pieces = _advance(pieces, n)
    return written


def _split(pieces: list[bytes | memoryview], step: int) -> list[tuple[int, list[bytes | memoryview]]]:
    """The pieces cut into consecutive ranges of ``step`` bytes (the last one shorter): (offset, pieces) each."""
    out: list[tuple[int, list[bytes | memoryview]]] = []
    cur: list[bytes | memoryview] = []
    start = room = 0
    offset = 0
    for p in pieces:
        view = memoryview(p)
        while len(view):
            if room == 0:
                if cur:
                    out.append((start, cur))
                cur, start, room = [], offset, step
            take = min(room, len(view))
            cur.append(view[:take])
            view, room, offset = view[take:], room - take, offset + take
    if cur:
        out.append((start, cur))
    return out


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


def write_stream(path: str, data_chunks: Iterable[bytes | memoryview]) -> None:
    """Write chunks as they arrive (a transfer from another node), then publish the file by rename."""
    tmp = tmp_path(path)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            for c in data_chunks:
                view = memoryview(c)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        delete_object(tmp)
        raise


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


def claim(node_id: str, spill_dir: str = "") -> int:
    """Hold the node's lock file for the agent's lifetime: the store's files are orphans once it is free.

    The lock file names the agent's spill directory, so whoever sweeps the orphans removes it too.
    """
    import fcntl

    fd = os.open(store_prefix(node_id) + "lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, spill_dir.encode(), 0)
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
            swept.append(node_id)
        finally:
            os.close(fd)
    return swept


def delete_all(node_id: str) -> None:
    """Remove every file of a node's store, and the spill directory its lock file names."""
    import shutil

    spill_dir = ""
    try:
        with open(store_prefix(node_id) + "lock") as f:
            if os.fstat(f.fileno()).st_uid == os.geteuid():  # /dev/shm is shared: trust only our own lock files
                spill_dir = f.read(4096).strip()
    except OSError:
        pass
    if spill_dir and os.path.basename(spill_dir.rstrip("/")).startswith("spill-"):
        shutil.rmtree(spill_dir, ignore_errors=True)
    prefix = os.path.basename(store_prefix(node_id))
    for name in os.listdir(SHM_DIR):
        if name.startswith(prefix) and not name.endswith("-lock"):
            delete_object(os.path.join(SHM_DIR, name))
    delete_object(store_prefix(node_id) + "lock")  # last: it names the spill directory


def pid_of_temp(name: str) -> int:
    """The writer's pid in a ``<object>.<pid>.tmp`` or ``spare-<pid>-<n>`` store file name (0 if none)."""
    try:
        if name.endswith(".tmp"):
            return int(name[: -len(".tmp")].rsplit(".", 1)[1])
        if "-spare-" in name:
            return int(name.split("-spare-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        pass
    return 0


def mapped_ids(node_id: str) -> set[bytes]:
    """Objects of this node's store that some process on the node has mapped (is reading): never spill those.

    Scans /proc/*/maps; only called when the store must spill, so its cost stays off the fast path.
    """
    prefix = store_prefix(node_id)
    out: set[bytes] = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                data = f.read()
        except OSError:
            continue
        start = 0
        needle = prefix.encode()
        while True:
            i = data.find(needle, start)
            if i < 0:
                break
            end = data.find(b"\n", i)
            name = data[i + len(needle) : end if end >= 0 else len(data)].split(b" ")[0]
            start = i + len(needle)
            try:
                out.add(bytes.fromhex(name.decode()))
            except ValueError:
                pass
    return out
