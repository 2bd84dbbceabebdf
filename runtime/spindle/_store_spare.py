"""A process's spare store file for its next large object, kept mapped so a put is one memcpy.

Writing 100 MiB into a *new* tmpfs file makes the kernel allocate and zero 25,600 pages on the writer's
critical path; ``pwrite`` into pages allocated ahead of time still looks each page up (32 ms per 100 MiB on
the bench VM); a ``memcpy`` into a mapping whose page tables are already filled is the floor (16-20 ms).
So each process keeps one pre-allocated spare file off the hot path; a file that comes back (below) is mapped
with ``MAP_POPULATE`` once, and a put copies its frame straight into that mapping before publishing the file by
rename. A fresh spare is written with ``pwrite``: for an object that never comes back (a task's return value),
filling and tearing down a mapping's page tables costs more than the page lookups it saves.

The writer keeps that mapping after publishing (``keep``) because a put/free loop, or a task argument
promoted to the store and released after the task, gives the freed object's file back (``give``) as the
next spare, still mapped. Before a freed file is written again the kernel is asked whether any *other*
process or open file still holds it: a write lease on the writer's own descriptor is granted only when no
other open file refers to the inode (a reader's mapping holds its file open), so the writer's own mapping
does not count and a reader's always does. Where leases cannot tell (``_store.unused`` falls back to
``/proc/*/maps``, which would see the writer's own mapping), no mapping is kept and puts ``pwrite``.

At most ``KEEP_MAX`` published objects keep their writer mapping (the agent counts a mapped object as in
use and never spills it); mappings and spares are dropped, off the hot path, after ``SPARE_IDLE_S`` idle.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from spindle import _store

if TYPE_CHECKING:
    from spindle._serialization import Serialized

log = logging.getLogger("spindle.store")

SPARE_IDLE_S = 10.0
KEEP_MAX = 1  # published objects whose writer mapping is kept for their file's return
_NUMPY_COPY_MIN = 1 << 20  # pieces at least this big are copied by numpy (without the GIL) when it is loaded


class Mapped:
    """A store file this process holds open read-write and mapped, page tables filled."""

    __slots__ = ("fd", "mm", "size")

    def __init__(self, path: str, size: int):
        self.fd = os.open(path, os.O_RDWR)
        try:
            self.mm = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                                prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self.fd)
            raise
        self.size = size

    def alone(self) -> bool:
        """Whether no other open file (so no mapping of another process, nor a reader here) holds the file: the
        kernel grants a write lease only then, and this descriptor and its own mapping are one open file."""
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETSIG, signal.SIGURG)  # a lease break must not be SIGIO (terminates)
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError:
            return False
        fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True

    def copy_in(self, pieces: list[bytes | memoryview]) -> int:
        """Copy the frame's pieces to offset 0; returns the bytes copied."""
        np = sys.modules.get("numpy")
        mm, off = self.mm, 0
        for p in pieces:
            n = len(p) if isinstance(p, bytes) else p.nbytes
            if n > self.size - off:
                raise ValueError("frame larger than its spare file")
            if np is not None and n >= _NUMPY_COPY_MIN:  # numpy copies without holding the GIL
                np.copyto(np.frombuffer(mm, np.uint8, n, off), np.frombuffer(p, np.uint8))
            else:
                mm[off:off + n] = p
            off += n
        return off

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:
            pass  # a view of it is still alive somewhere (never ours past copy_in): unmapped when that goes
        finally:
            os.close(self.fd)


_MAPPING_OK: bool | None = None


def mapping_ok() -> bool:
    """Whether writers may keep mappings: only where the kernel lease check sees other processes' mappings."""
    global _MAPPING_OK
    if _MAPPING_OK is None:
        _MAPPING_OK = _store._lease_works() and os.environ.get("SPINDLE_STORE_WRITER_MAP", "1") != "0"
    return _MAPPING_OK


class SpareFile:
    """One pre-allocated (and, where ``mapping_ok``, mapped) store file per process, for its next large object.

    After a large put, a background thread allocates a file of that size; the next put of up to that size
    takes it. The file is private to this process until it is published by rename, so no reader can have it
    mapped. An unused spare is deleted after SPARE_IDLE_S so an idle process holds no memory.

    A freed object's file comes back as the spare (``give``) when nobody else used it. After handing out such a
    recycled file the background thread waits ``REFILL_GRACE_S`` for the next one to come back before
    allocating a fresh file, which a give would then throw away (allocating and freeing 100 MiB costs ~50 ms
    of CPU); a put that finds no spare refills at once. Files are deleted and unmapped outside the lock.
    """

    REFILL_GRACE_S = 0.5

    def __init__(self, node_id: str):
        self.prefix = _store.store_prefix(node_id) + f"spare-{os.getpid()}-"
        self.cond = threading.Condition()
        self.path = ""
        self.size = 0
        self.mapped: Mapped | None = None  # the spare's mapping
        self.mapping = ""  # the spare the background thread is mapping now
        self.kept: dict[str, Mapped] = {}  # published objects' writer mappings, by path, oldest first
        self.doomed: list[tuple[str, Mapped | None]] = []  # files to delete and mappings to close, off the hot path
        self.wanted = 0
        self.last_use = 0.0
        self.refill_after = 0.0  # monotonic time before which the background thread allocates nothing
        self.allocating = 0
        self.recycled = False  # the spare is a freed object's file (readers may have mapped it), not a fresh one
        self.closed = False
        self._n = 0
        threading.Thread(target=self._loop, daemon=True, name="spindle-spare").start()

    # ---------------------------------------------------------------- the writer's side
    def write(self, path: str, ser: Serialized, keep: bool) -> int:
        """Write ``ser`` into the spare and publish it as ``path``; 0 (nothing written) if there is no spare.

        ``keep``: the object is this process's own and no one has it yet, so its file may come back (``give``):
        keep the writer mapping for that."""
        spare, mapped = self._claim(ser.size)
        if not spare:
            return 0
        tmp = _store.tmp_path(path)
        try:
            os.rename(spare, tmp)
            if mapped is not None:
                written = mapped.copy_in(ser.pieces())
                if written != mapped.size:
                    os.ftruncate(mapped.fd, written)
                    mapped.size = min(mapped.size, written)
            else:
                fd = os.open(tmp, os.O_WRONLY)
                try:
                    written = _store._pwrite_all(fd, ser.pieces(), ser.size)
                    os.ftruncate(fd, written)
                finally:
                    os.close(fd)
            os.rename(tmp, path)
        except BaseException:
            self._doom("", mapped)
            _store.delete_object(tmp)
            raise
        if mapped is not None:
            if keep:
                self._keep(path, mapped)
            else:
                self._doom("", mapped)
        return written

    def take(self, size: int) -> str:
        """A spare file of at least ``size`` bytes, now owned by the caller (unmapped), or "" (and ask for one)."""
        path, mapped = self._claim(size)
        if mapped is not None:
            mapped.close()
        return path

    def _claim(self, size: int) -> tuple[str, Mapped | None]:
        with self.cond:
            now = time.monotonic()
            self.last_use = now
            self.wanted = max(self.wanted, size) if self.path else size
            deadline = now + 2.0
            # finishing an allocation (or a mapping) under way beats allocating afresh (or pwrite)
            while ((self.allocating >= size and not self.path) or (self.mapping and self.mapping == self.path)) \
                    and time.monotonic() < deadline:
                self.cond.wait(0.05)
            if not (self.path and self.size >= size) or self.mapping == self.path:
                self.refill_after = now
                self.cond.notify_all()
                return "", None
            path, mapped, self.path, self.size, self.mapped = self.path, self.mapped, "", 0, None
            recycled, self.recycled = self.recycled, False
            # a recycled file tends to come back (the same loop frees the next one): wait for it first
            self.refill_after = now + self.REFILL_GRACE_S if recycled else now
            self.cond.notify_all()
        if recycled and not (mapped.alone() if mapped is not None else _store.unused(path)):
            _store.delete_object(path)  # a reader still maps the freed object's file: never write into it
            self._doom("", mapped)
            return "", None
        return path, mapped

    def _keep(self, path: str, mapped: Mapped) -> None:
        with self.cond:
            if self.closed:
                self.doomed.append(("", mapped))
            else:
                self.kept[path] = mapped
                while len(self.kept) > KEEP_MAX:
                    oldest = next(iter(self.kept))
                    self.doomed.append(("", self.kept.pop(oldest)))
            self.cond.notify_all()

    def forget(self, path: str) -> None:
        """The object at ``path`` is shared (read here, or handed elsewhere): its file will not come back."""
        with self.cond:
            mapped = self.kept.pop(path, None)
            if mapped is not None:
                self.doomed.append(("", mapped))
                self.cond.notify_all()

    def give(self, path: str, size: int) -> bool:
        """Adopt a freed object's file (and its kept mapping) as the spare: its pages are already allocated.
        Before it is written again, the claim checks that no other process has it open or mapped any more."""
        with self.cond:
            mapped = self.kept.pop(path, None)
            if self.closed:
                if mapped is not None:
                    self.doomed.append(("", mapped))
                    self.cond.notify_all()
                return False
            self._n += 1
            spare = f"{self.prefix}{self._n}"
            try:
                os.rename(path, spare)
            except OSError:
                if mapped is not None:
                    self.doomed.append(("", mapped))
                    self.cond.notify_all()
                return False
            if self.path:
                self.doomed.append((self.path, self.mapped))
            if mapped is not None and mapped.size != size:  # (never: a kept mapping is its object's size)
                self.doomed.append(("", mapped))
                mapped = None
            self.path, self.size, self.mapped, self.recycled = spare, size, mapped, True
            self.wanted = max(self.wanted, size)
            self.last_use = time.monotonic()
            self.cond.notify_all()
        return True

    def _doom(self, path: str, mapped: Mapped | None) -> None:
        with self.cond:
            self.doomed.append((path, mapped))
            self.cond.notify_all()

    # ---------------------------------------------------------------- the background thread
    def _loop(self) -> None:
        timeout = 1.0
        while True:
            path = to_map = ""
            with self.cond:
                if not self.doomed:
                    self.cond.wait(timeout)
                timeout = 1.0
                if self.closed:
                    return
                doomed, self.doomed = self.doomed, []
                now = time.monotonic()
                idle = now - self.last_use > SPARE_IDLE_S
                if idle:
                    doomed.extend(("", m) for m in self.kept.values())
                    self.kept.clear()
                if self.path and (idle or self.size < self.wanted):
                    doomed.append((self.path, self.mapped))
                    self.path, self.size, self.mapped = "", 0, None
                grace = self.refill_after - now
                if self.path:
                    if self.mapped is None and self.recycled and mapping_ok():
                        to_map = self.mapping = self.path  # a freed file given without its mapping (a fresh
                        # spare stays unmapped: see _allocate)
                        size = self.size
                elif idle or not self.wanted:
                    pass
                elif grace > 0:
                    timeout = grace  # look again when it is over, or sooner if a freed file is given meanwhile
                else:
                    self._n += 1
                    path, size = f"{self.prefix}{self._n}", self.wanted
                    self.allocating = size
            for p, m in doomed:
                _drop(p, m)
            if path:
                self._allocate(path, size)
            elif to_map:
                self._map(to_map, size)

    def _map(self, path: str, size: int) -> None:
        try:
            mapped: Mapped | None = Mapped(path, size)
        except (OSError, ValueError):
            mapped = None
        with self.cond:
            self.mapping = ""
            if mapped is not None and self.path == path and self.mapped is None:
                self.mapped, mapped = mapped, None
            self.cond.notify_all()
        if mapped is not None:
            mapped.close()

    def _allocate(self, path: str, size: int) -> None:
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError:
            _store.delete_object(path)  # the store is full: no spare, puts fall back to new files
            with self.cond:
                self.wanted = self.allocating = 0
                self.cond.notify_all()
            return
        # A fresh spare is not mapped: filling its page tables (MAP_POPULATE) and tearing them down again costs
        # several times the pwrite's page lookups (a task returning 100 MiB: ~570 of its ~890 samples of store
        # work). The mapping pays only for a file that comes back (``give``); ``_loop`` maps that one, once.
        doomed: tuple[str, Mapped | None] = ("", None)
        with self.cond:
            self.allocating = 0
            if self.path and self.size >= size:  # a freed object's file was given meanwhile
                doomed = (path, None)
            else:
                doomed = (self.path, self.mapped)
                self.path, self.size, self.mapped, self.recycled = path, size, None, False
            self.cond.notify_all()
        _drop(*doomed)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            doomed = [*self.doomed, (self.path, self.mapped), *(("", m) for m in self.kept.values())]
            self.path, self.mapped, self.doomed = "", None, []
            self.kept.clear()
            self.cond.notify_all()
        for p, m in doomed:
            _drop(p, m)


def _drop(path: str, mapped: Mapped | None) -> None:
    try:
        if mapped is not None:
            mapped.close()
        if path:
            _store.delete_object(path)
    except OSError as e:  # never the end of the background thread; the agent sweeps a file left behind
        log.warning("could not drop spare store file %s: %s", path or "(mapping)", e)
