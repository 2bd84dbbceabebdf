"""The node agent's side of the object store: the budget carried out on files.

Writers (drivers and workers on this node, and the agent's own pulls) reserve space here before
writing an object; the answer is the path to write: the shared-memory store, or the spill
directory when memory is full and nothing can be spilled. Spilling copies an object to the spill
directory and unlinks it from shared memory (readers that still map it keep their pages); a reader
that finds an object gone from shared memory asks ``restore`` for its path. The agent frees the
objects of owners that died (probed like Ray's owner-death detection) and sweeps partial files
of writers that died. What to spill and when to refuse is decided by ``store_budget``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable

import grpc

from spindle import _sessions, _store
from spindle._agent.file_pool import FilePool
from spindle._agent.store_budget import OwnerLiveness, Plan, StoreBudget, default_capacity, fmt_bytes
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels

log = logging.getLogger("spindle.agent")

SWEEP_S = 1.0
STALE_TMP_S = 5.0  # a partial file of a dead writer older than this is removed
STRAY_S = 120.0  # a store file the budget does not know (freed meanwhile, or its writer died before reporting it)


def _memory_limit() -> int:
    """The node's memory: physical memory, or the container's cgroup limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def store_capacity(requested: int | None) -> int:
    """The store's memory budget: ``object_store_memory`` if given, else Ray's default (30% of memory, capped
    by the free space of /dev/shm, which is tiny in a container unless the pod mounts a memory volume there)."""
    try:
        st = os.statvfs(_store.SHM_DIR)
        shm_free = st.f_bavail * st.f_frsize
    except OSError:
        shm_free = 0
    if requested:
        if requested > shm_free:
            log.warning("object_store_memory is %s but %s has only %s free: objects beyond that go to the spill "
                        "directory", fmt_bytes(requested), _store.SHM_DIR, fmt_bytes(shm_free))
        return int(requested)
    cap, by_shm = default_capacity(_memory_limit(), shm_free)
    if by_shm:
        log.warning("the object store is limited to %s by the free space of %s (30%% of memory would be %s); objects "
                    "beyond it spill to disk, which is slower. Give the node a larger %s (on Kubernetes: an emptyDir "
                    "with medium: Memory mounted there) or set object_store_memory.", fmt_bytes(cap), _store.SHM_DIR,
                    fmt_bytes(int(_memory_limit() * 0.3)), _store.SHM_DIR)
    log.info("object store: %s of memory in %s", fmt_bytes(cap), _store.SHM_DIR)
    return cap


class OwnerProbe:
    """Liveness probe of object owners (drivers and workers): any answer, even an error, means the process is there."""

    def __init__(self, token: str, node_ip: str):
        self.channels = Channels(token)  # probes only: a dead owner's channel is dropped, not kept
        self.local = {node_ip, "127.0.0.1", "localhost"}

    def reachable(self, owner: str) -> bool:
        try:
            rpc.CoreWorkerStub(self.channels.get(owner)).GetObject(
                pb.GetObjectRequest(object_id=b"", timeout_s=0.1), metadata=self.channels.metadata, timeout=2)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                self.channels.drop(owner)  # the next probe connects afresh instead of waiting out a backoff
                return False
        return True

    def is_local(self, owner: str) -> bool:
        return owner.rsplit(":", 1)[0] in self.local


class StoreFullError(Exception):
    """Neither memory nor the spill directory can take the object (the message says what to do)."""


def _tmp(path: str) -> str:
    return f"{path}.agent.tmp"


def _copy(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` through a private name; any failure leaves no partial file."""
    tmp = _tmp(dst)
    try:
        shutil.copyfile(src, tmp)
        os.rename(tmp, dst)
    except BaseException:
        _store.delete_object(tmp)
        raise


def _oid_of(name: str) -> bytes:
    try:
        return bytes.fromhex(name.split(".", 1)[0])
    except ValueError:
        return b""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ObjectStore:
    def __init__(self, node_id: str, capacity: int, spill_dir: str, probe: OwnerProbe,
                 on_owner_dead: Callable[[list[bytes]], None]):
        self.node_id = node_id
        self.spill_dir = spill_dir
        self.budget = StoreBudget(capacity)
        self.lock = threading.RLock()
        self.writers: dict[bytes, tuple[int, float]] = {}  # reserved, not yet published: writer pid, when
        self.liveness = OwnerLiveness()
        self._probe, self._on_owner_dead = probe, on_owner_dead
        self.pool = FilePool(node_id)  # freed large files, for the next large object (see file_pool)
        self.stopping = False
        _sessions.private_dir(spill_dir)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True, name="store-sweep").start()

    # ---------------------------------------------------------------- paths
    def shm_path(self, oid: bytes) -> str:
        return _store.object_path(self.node_id, oid)

    def spill_path(self, oid: bytes) -> str:
        return os.path.join(self.spill_dir, oid.hex())

    def _path(self, oid: bytes) -> str:
        e = self.budget.entries.get(oid)
        return self.shm_path(oid) if e is None or e.in_memory else self.spill_path(oid)

    # ---------------------------------------------------------------- writers
    def reserve(self, oid: bytes, size: int, owner: str, writer_pid: int,
                force_disk: bool = False) -> tuple[str, bool, str]:
        """Room for a new object: the path to write it to, whether the writer may pre-allocate (and write further
        objects on credit, ``credit()``), and a freed file to write it into ("" if none: see ``file_pool``), already
        named as the writer's temporary file."""
        with self.lock:
            now = time.monotonic()
            self.budget.remove(oid)  # a retried task writes its return again
            plan = Plan("disk") if force_disk else self._plan(size)
            spilled_all = self._spill(plan.victims)
            where = plan.where
            if where == "memory" and (not spilled_all or self.budget.used + size > self.budget.capacity):
                where = "disk"
            if where == "disk":
                free = self._disk_free()
                if free < size:
                    raise StoreFullError(self._full_message(oid, size, free))
            self.budget.add(oid, size, owner, now, in_memory=where == "memory")
            # a writer this agent cannot see (another pid namespace) is never taken for dead
            self.writers[oid] = (writer_pid if writer_pid and _pid_alive(writer_pid) else 0, now)
            path = self._path(oid)
            recycled = ""
            if where == "memory" and self.writers[oid][0]:  # (a writer we cannot see would leave it unswept)
                recycled = self.pool.take(size, _store.tmp_path(path, writer_pid))
            self.pool.fit(self.free_memory())
            return path, self.budget.spare_ok() and where == "memory", recycled

    def primaries(self) -> tuple[int, int]:
        """(count, bytes) of the objects made on this node and not freed by their owner (pulled copies excluded)."""
        with self.lock:
            owned = [e.size for e in self.budget.entries.values() if e.owner]
        return len(owned), sum(owned)

    def free_memory(self) -> int:
        return max(0, self.budget.capacity - self.budget.used)

    def credit(self) -> int:
        with self.lock:
            return self.budget.credit()

    def written(self, objects: list[tuple[bytes, int, str]]) -> None:
        """Objects written on credit (oid, size, owner): account for those still there, spill if now over."""
        with self.lock:
            now = time.monotonic()
            for oid, size, owner in objects:
                if oid not in self.budget.entries and os.path.exists(self.shm_path(oid)):  # else freed already
                    self.budget.add(oid, size, owner, now, in_memory=True)
            self.pool.fit(self.free_memory())
            if self.budget.used > self.budget.capacity:
                self._spill(self._plan(0).victims)

    def _plan(self, size: int, exclude: bytes = b"") -> Plan:
        plan = self.budget.plan(size, exclude=exclude)
        if plan.victims:  # spilling: now find out which objects are in use (costly, so only now)
            plan = self.budget.plan(size, busy=self._busy(), exclude=exclude)
        return plan

    def _busy(self) -> set[bytes]:
        """Objects being written (reserved, not yet published) or read (mapped by some process)."""
        for oid in list(self.writers):
            if os.path.exists(self._path(oid)):
                del self.writers[oid]
        return set(self.writers) | _store.mapped_ids(self.node_id)

    def _spill(self, victims: list[bytes]) -> bool:
        """Move ``victims`` to disk; False if the disk could not take them all."""
        for oid in victims:
            try:
                _copy(self.shm_path(oid), self.spill_path(oid))
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    return False
                raise
            _store.delete_object(self.shm_path(oid))
            self.budget.moved(oid, in_memory=False)
        if victims:
            log.info("spilled %d object(s) to %s; store: %s", len(victims), self.spill_dir, self.budget.describe())
        return True

    def _disk_free(self) -> int:
        try:
            st = os.statvfs(self.spill_dir)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    def _full_message(self, oid: bytes, size: int, disk_free: int) -> str:
        return (f"Failed to store object {oid.hex()} of {fmt_bytes(size)}: the object store of node "
                f"{self.node_id[:8]} is full ({self.budget.describe()}; objects in use cannot be spilled) and "
                f"its spill directory {self.spill_dir} has {fmt_bytes(disk_free)} free. Raise object_store_memory "
                "(spindle.init(object_store_memory=...) or 'spindle start --object-store-memory'), give the spill "
                "directory more disk, or drop references to objects you no longer need.")

    # ---------------------------------------------------------------- readers
    def path_for_read(self, oid: bytes) -> str:
        """Where the object is now (its shared-memory file, or its spilled copy)."""
        with self.lock:
            self.budget.touch(oid, time.monotonic())
            return self._path(oid)

    def map(self, oid: bytes) -> memoryview:
        """Map the object wherever it is; FileNotFoundError if this node does not have it."""
        for _ in range(3):  # a spill or restore may move it between our look and the open: look again
            try:
                return _store.map_object(self.path_for_read(oid))
            except FileNotFoundError:
                if oid not in self.budget.entries:
                    raise
        return _store.map_object(self.path_for_read(oid))

    def restore(self, oid: bytes) -> str:
        """Bring a spilled object back into memory if it fits (spilling others); the path to map, "" if unknown."""
        with self.lock:
            e = self.budget.entries.get(oid)
            if e is None:
                return ""
            e.last_use = time.monotonic()
            if e.in_memory:
                return self.shm_path(oid)
            plan = self._plan(e.size, exclude=oid)
            if plan.where != "memory" or not self._spill(plan.victims):
                return self.spill_path(oid)  # readers map the spilled copy (page cache) instead
            try:
                _copy(self.spill_path(oid), self.shm_path(oid))
            except FileNotFoundError:
                return self._path(oid)
            except OSError as err:
                log.warning("could not restore object %s into memory (%s); reading it from disk", oid.hex(), err)
                return self.spill_path(oid)
            _store.delete_object(self.spill_path(oid))
            self.budget.moved(oid, in_memory=True)
            return self.shm_path(oid)

    # ---------------------------------------------------------------- freeing
    def free(self, oids: list[bytes]) -> None:
        with self.lock:
            for oid in oids:
                e = self.budget.entries.get(oid)
                self.budget.remove(oid)
                self.writers.pop(oid, None)
                if e is None or not e.in_memory or not self.pool.offer(self.shm_path(oid), e.size, self.free_memory()):
                    _store.delete_object(self.shm_path(oid))
                _store.delete_object(self.spill_path(oid))

    def shutdown(self) -> None:
        self.stopping = True
        with self.lock:
            _store.delete_all(self.node_id)
            shutil.rmtree(self.spill_dir, ignore_errors=True)

    def _loop(self) -> None:
        while not self.stopping:
            time.sleep(SWEEP_S)
            try:
                self.pool.expire(time.monotonic())
                self.check_owners()
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive any one bad file
                log.exception("object store sweep failed")

    def check_owners(self) -> None:
        with self.lock:
            owners = self.budget.owners()
        for owner in owners:
            if self.liveness.observe(owner, self._probe.reachable(owner), self._probe.is_local(owner)):
                with self.lock:
                    oids = self.budget.owned_by(owner)
                    size = sum(self.budget.entries[o].size for o in oids)
                log.info("owner %s is gone: freeing its %d object(s) (%s)", owner, len(oids), fmt_bytes(size))
                self._on_owner_dead(oids)

    def sweep(self) -> None:
        """Remove partial files of writers that died, and store files whose object was freed meanwhile."""
        now_wall = time.time()
        prefix = os.path.basename(_store.store_prefix(self.node_id))
        with self.lock:
            for oid, (pid, _) in list(self.writers.items()):
                if not pid or _pid_alive(pid) or os.path.exists(self._path(oid)):
                    continue
                self.writers.pop(oid, None)
                self.budget.remove(oid)  # the writer died before publishing: nobody can have a ref to it
            for d, strip in ((_store.SHM_DIR, prefix), (self.spill_dir, "")):
                try:
                    names = os.listdir(d)
                except OSError:
                    continue
                for name in names:
                    if not name.startswith(strip) or name.endswith("lock"):
                        continue
                    self._sweep_one(os.path.join(d, name), name[len(strip):], now_wall)

    def _sweep_one(self, path: str, name: str, now_wall: float) -> None:
        try:
            age = now_wall - os.stat(path).st_mtime
        except FileNotFoundError:
            return
        pid = _store.pid_of_temp(name)
        if name.endswith(".tmp") or name.startswith("spare-"):
            if name.endswith(".agent.tmp") or not pid or _pid_alive(pid) or age < STALE_TMP_S:
                return
            if name.endswith(".tmp") and self.writers.get(_oid_of(name), (1, 0.0))[0] == 0:
                return  # its writer is in another pid namespace: we cannot tell whether it lives
            log.info("removing %s, left by process %d that died while writing", path, pid)
            _store.delete_object(path)
            return
        try:
            oid = bytes.fromhex(name)
        except ValueError:
            return
        if oid not in self.budget.entries and age > STRAY_S:
            _store.delete_object(path)
