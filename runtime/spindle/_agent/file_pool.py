"""Freed store files kept for the next large object, so a large value's pages are allocated once, not per object.

Every large object is one tmpfs file. Unlinking a freed one returns its pages, and the next object allocates and
zeroes as many again, on the writer's critical path. For a task returning 100 MiB in a loop that churn made the call
about twice Ray's (whose plasma arena is allocated once): the writer's ``pwrite`` into a new file, the agent's
unlink, and, on a VM that reports free memory to its host (virtio-balloon free page reporting, as here), the
worker's own next array landing on pages the host must fault in again (``clear_page_erms`` was 28% of the loop).

So the agent keeps a few freed files of large objects: each is renamed to a pool name (no reader can open it by
its object's name any more) and kept only if the kernel says no other process holds it (``_store.unused``: a
reader's mapping holds the file open). The next reservation of a large object in memory gets one, already named
as its writer's temporary file; the writer writes into the existing pages and publishes it by rename, as any new
object. If the writer dies first, the agent's sweep removes the temporary file like any other.

The pool is bounded (``MAX_FILES``, and bytes within the store's free budget: it yields whenever the store needs
room and never causes a spill) and empties after ``IDLE_S`` unused. Where the kernel cannot tell whether a file
is held (no leases) nothing is pooled.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from spindle import _store

MIN_SIZE = _store.SPARE_MIN  # smaller objects: allocating their pages costs less than keeping them
MAX_FILES = 4
IDLE_S = 10.0


@dataclass
class Pooled:
    path: str
    size: int
    since: float


def pick(sizes: list[int], need: int) -> int | None:
    """The pooled file for an object of ``need`` bytes: the smallest at least that big, else the biggest of at
    least half of it (the writer extends it); None when none is worth it. Pure: indices into ``sizes``."""
    fits = [i for i, s in enumerate(sizes) if s >= need]
    if fits:
        return min(fits, key=lambda i: sizes[i])
    near = [i for i, s in enumerate(sizes) if 2 * s >= need]
    return max(near, key=lambda i: sizes[i]) if near else None


def evictions(sizes: list[int], room: int, max_files: int = MAX_FILES) -> int:
    """How many of the pooled files (oldest first, sizes in that order) to delete so that at most ``max_files``
    remain and their bytes fit in ``room`` (the store's free budget). Pure."""
    total, n = sum(sizes), 0
    while n < len(sizes) and (len(sizes) - n > max_files or total > max(room, 0)):
        total -= sizes[n]
        n += 1
    return n


class FilePool:
    """The agent's pooled files (oldest first); its own lock, so callers need not hold the store's."""

    def __init__(self, node_id: str):
        self.prefix = _store.store_prefix(node_id) + "pool-"
        self.files: list[Pooled] = []
        self.lock = threading.Lock()
        self._n = 0
        self.enabled = _store._lease_works()

    @property
    def bytes(self) -> int:
        with self.lock:
            return sum(f.size for f in self.files)

    def offer(self, path: str, size: int, room: int) -> bool:
        """Keep the freed object file ``path`` (``size`` bytes) instead of deleting it; False: the caller deletes
        it as before. ``room``: the store's free budget, which the pool must stay within."""
        if not self.enabled or size < MIN_SIZE or size > room:
            return False
        with self.lock:
            self._n += 1
            pooled = f"{self.prefix}{self._n}"
        try:
            os.rename(path, pooled)  # from here on no reader can open it by its object's name
        except OSError:
            return False
        if not _store.unused(pooled):  # a reader still maps it: its pages are that reader's
            _store.delete_object(pooled)
            return True
        with self.lock:
            self.files.append(Pooled(pooled, size, time.monotonic()))
        self.fit(room)
        return True

    def take(self, need: int, tmp: str) -> str:
        """A pooled file for an object of ``need`` bytes, renamed to the writer's temporary name ``tmp``; "" if
        none fits."""
        if need < MIN_SIZE:
            return ""
        with self.lock:
            i = pick([f.size for f in self.files], need)
            if i is None:
                return ""
            got = self.files.pop(i)
        try:
            os.rename(got.path, tmp)
        except OSError:
            _store.delete_object(got.path)
            return ""
        return tmp

    def fit(self, room: int) -> None:
        """Delete the oldest files until the pool is within its bounds and ``room`` bytes."""
        with self.lock:
            n = evictions([f.size for f in self.files], room)
            gone, self.files = self.files[:n], self.files[n:]
        for f in gone:
            _store.delete_object(f.path)

    def expire(self, now: float) -> None:
        """Delete the files unused for ``IDLE_S``: an idle node gives its memory back."""
        with self.lock:
            gone = [f for f in self.files if now - f.since >= IDLE_S]
            self.files = [f for f in self.files if now - f.since < IDLE_S]
        for f in gone:
            _store.delete_object(f.path)
