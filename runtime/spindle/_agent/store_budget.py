"""The object store's budget: which objects live in memory, which are spilled, and when to refuse.

Pure policy, no I/O: the agent's store shell (``object_store.py``) asks it where a new object goes
and which objects to spill first, carries the plan out on files, and reports back. Ray's rules:
the store holds at most ``capacity`` bytes in shared memory; above it the least recently used
objects that nobody is reading or writing (the shell passes those as ``busy``: pinned) move to disk; an object that cannot fit even then is
written straight to disk; only when the disk cannot take it either is the store full.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field

# When spilling is needed, free this fraction of the capacity beyond what the new object needs, so a
# put loop above the limit spills in batches instead of once per put.
SPILL_HEADROOM = 0.2
# Writers pre-allocate a file for their next large object, and get a credit for writing the next
# objects without asking first, only while the store is below this fill.
SPARE_FILL_MAX = 0.5
CREDIT_FRACTION = 0.05  # of the capacity, per writer
CREDIT_MAX = 64 * 1024 * 1024


@dataclass
class Entry:
    size: int
    owner: str
    last_use: float
    in_memory: bool = True


@dataclass
class Plan:
    """Where a new object goes: ``memory`` (after spilling ``victims``) or ``disk``."""

    where: str
    victims: list[bytes] = field(default_factory=list)


def default_capacity(total_memory: int, shm_free: int, fraction: float = 0.3) -> tuple[int, bool]:
    """Ray's default: a fraction of the node's memory, capped by the free space of /dev/shm.

    Returns the capacity and whether the shm size was what limited it (worth a log line: a container's
    default 64 MiB /dev/shm makes most objects spill to disk).
    """
    wanted = int(total_memory * fraction)
    cap = int(shm_free * 0.95)
    return (cap, True) if cap < wanted else (wanted, False)


class StoreBudget:
    def __init__(self, capacity: int):
        self.capacity = max(0, int(capacity))
        self.entries: dict[bytes, Entry] = {}
        self.used = 0  # bytes in memory
        self.spilled = 0  # bytes on disk

    # ---------------------------------------------------------------- queries
    def plan(self, size: int, busy: Set[bytes] = frozenset(), exclude: bytes = b"") -> Plan:
        """Where an object of ``size`` bytes goes. ``busy`` objects (being written or read) are never spilled."""
        if size > self.capacity:
            return Plan("disk")
        over = self.used + size - self.capacity
        if over <= 0:
            return Plan("memory")
        goal = over + int(self.capacity * SPILL_HEADROOM)
        victims, freed = [], 0
        for oid in self.spill_order(busy, exclude):
            if freed >= goal:
                break
            victims.append(oid)
            freed += self.entries[oid].size
        if freed < over:
            return Plan("disk", victims)  # spilling the others frees memory for later, but not enough for this
        return Plan("memory", victims)

    def spill_order(self, busy: Set[bytes] = frozenset(), exclude: bytes = b"") -> list[bytes]:
        """In-memory objects that may be spilled, least recently used first."""
        cands = [(e.last_use, oid) for oid, e in self.entries.items()
                 if e.in_memory and oid not in busy and oid != exclude]
        cands.sort()
        return [oid for _, oid in cands]

    def spare_ok(self) -> bool:
        return self.used < self.capacity * SPARE_FILL_MAX

    def credit(self) -> int:
        """Bytes a writer may write to memory before asking again (reported afterwards): none once the
        store is half full, so the objects written unasked can never push it past its capacity alone."""
        return min(int(self.capacity * CREDIT_FRACTION), CREDIT_MAX) if self.spare_ok() else 0

    def owned_by(self, owner: str) -> list[bytes]:
        return [oid for oid, e in self.entries.items() if e.owner == owner]

    def owners(self) -> set[str]:
        return {e.owner for e in self.entries.values() if e.owner}

    def describe(self) -> str:
        n_mem = sum(1 for e in self.entries.values() if e.in_memory)
        return (f"{_fmt(self.used)} of {_fmt(self.capacity)} in memory ({n_mem} objects), "
                f"{_fmt(self.spilled)} spilled ({len(self.entries) - n_mem} objects)")

    # ---------------------------------------------------------------- changes
    def add(self, oid: bytes, size: int, owner: str, now: float, in_memory: bool) -> None:
        self.remove(oid)
        self.entries[oid] = Entry(size, owner, now, in_memory)
        if in_memory:
            self.used += size
        else:
            self.spilled += size

    def remove(self, oid: bytes) -> Entry | None:
        e = self.entries.pop(oid, None)
        if e is not None:
            if e.in_memory:
                self.used -= e.size
            else:
                self.spilled -= e.size
        return e

    def moved(self, oid: bytes, in_memory: bool) -> None:
        """An object was spilled (``in_memory=False``) or restored."""
        e = self.entries.get(oid)
        if e is None or e.in_memory == in_memory:
            return
        e.in_memory = in_memory
        delta = e.size if in_memory else -e.size
        self.used += delta
        self.spilled -= delta

    def touch(self, oid: bytes, now: float) -> None:
        e = self.entries.get(oid)
        if e is not None:
            e.last_use = now


class OwnerLiveness:
    """Decides when an owner process is dead from liveness probes, so its objects can be freed.

    Only "unreachable" counts as evidence (a busy owner answers slowly but answers). An owner on this
    node whose port refuses connections is gone; a remote owner gets a longer grace for network blips.
    """

    def __init__(self, local_failures: int = 3, remote_failures: int = 10):
        self.local_failures = local_failures
        self.remote_failures = remote_failures
        self.failures: dict[str, int] = {}

    def observe(self, owner: str, reachable: bool, local: bool) -> bool:
        """Record one probe; True once the owner is to be considered dead (then forgotten)."""
        if reachable:
            self.failures.pop(owner, None)
            return False
        n = self.failures.get(owner, 0) + 1
        if n >= (self.local_failures if local else self.remote_failures):
            self.failures.pop(owner, None)
            return True
        self.failures[owner] = n
        return False

    def forget(self, owner: str) -> None:
        self.failures.pop(owner, None)


def _fmt(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def fmt_bytes(n: int) -> str:
    return _fmt(n)
