"""The agent's warm pool of worker processes: start, hand out, take back, reap.

Workers are started ahead of demand (one per CPU) so a lease is granted without waiting for a
Python interpreter to boot. A worker that exits is reaped at once by a waiter thread and
reported to the agent, which frees its lease or reports its actor to the head.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from spindle import _ids, _lifeline
from spindle._agent import pool_policy
from spindle._agent.runtime_env import WorkerEnv

log = logging.getLogger("spindle.agent")

EARLY_KEEP_S = 120.0  # how long a registration may wait for its worker's adoption
ZYGOTE_IDLE_S = float(os.environ.get("SPINDLE_ZYGOTE_IDLE_S", "60"))  # see pool_policy.zygote_should_stop


@dataclass
class WorkerRecord:
    worker_id: str
    proc: Any  # subprocess.Popen, or a zygote_client.ForkedProc (same pid/wait/poll/kill)
    address: str = ""
    state: str = "starting"  # starting, idle, busy, stopping (released past the warm count), dead
    lease_id: bytes = b""
    blocked: bool = False
    actor_id: bytes = b""
    incarnation: int = 0
    actor_hold: dict[str, float] = field(default_factory=dict)
    intended_exit: bool = False
    dedicated: bool = False
    idle_since: float = 0.0
    env_key: str = ""  # the runtime env this worker was started in ("" = the node's plain workers)
    exit_handled: threading.Event = field(default_factory=threading.Event)  # reaped, and its exit reported


def worker_env(token: str, agent_address: str, node_id: str, ip: str, head_address: str) -> tuple[str, dict[str, str]]:
    """A new worker's id and the environment variables that make it that worker."""
    worker_id = _ids.new_id().hex()
    return worker_id, {
        "SPINDLE_TOKEN": token,
        "SPINDLE_AGENT_ADDRESS": agent_address,
        "SPINDLE_NODE_ID": node_id,
        "SPINDLE_NODE_IP": ip,
        "SPINDLE_HEAD_ADDRESS": head_address,
        "SPINDLE_WORKER_ID": worker_id,
    }


def start_worker_process(token: str, agent_address: str, node_id: str, ip: str, head_address: str,
                         wenv: WorkerEnv | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    worker_id, env = worker_env(token, agent_address, node_id, ip, head_address)
    env = {**os.environ, **env}
    if wenv is not None:
        env.update(wenv.env)
    proc = subprocess.Popen([sys.executable, "-m", "spindle._core.worker"], env=_lifeline.child_env(env),
                            stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                            cwd=wenv.cwd if wenv is not None else None)
    return worker_id, proc


class _Spawner:
    """Starts worker processes from one thread that lives as long as the agent.

    A worker dies with the thread that started it (PR_SET_PDEATHSIG, see ``_lifeline``), so it must
    not be started from a short-lived thread (a gRPC handler, a top-up thread).
    """

    def __init__(self) -> None:
        self.q: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="worker-spawner").start()

    def _loop(self) -> None:
        while True:
            fn, fut = self.q.get()
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def run(self, fn: Callable[[], Any]) -> Any:
        fut: Future[Any] = Future()
        self.q.put((fn, fut))
        return fut.result()


class WorkerPool:
    def __init__(self, agent: Any, on_exit: Callable[[WorkerRecord, int | None], None]):
        self.agent = agent
        self.on_exit = on_exit
        self.cond = threading.Condition()
        self.by_id: dict[str, WorkerRecord] = {}
        self.idle: list[WorkerRecord] = []
        self.soft_limit = max(1, int(agent.total.get("CPU", 1)))
        self.closed = False
        self.spawner = _Spawner()
        self._zygote: Any = None
        self._forking = 0  # spawns asking the zygote for a fork now (it is not stopped under them)
        self.waiting = 0  # callers of acquire() waiting for a worker
        self._zygote_lock = threading.Lock()
        # registrations that arrived before the spawning thread adopted the worker: a forked worker can
        # register before the zygote's reply naming its pid has been read (a busy agent), and dropping the
        # registration left it "starting" forever, which also stopped the pool from starting more
        self._early: dict[str, tuple[str, float]] = {}

    def spawn(self, wenv: WorkerEnv | None = None) -> WorkerRecord:
        """Start a worker: a plain one is forked by the node's zygote (started on the first spawn after the
        warm ones); one with a runtime env, or any when there is no zygote, as a fresh interpreter."""
        a = self.agent
        from spindle._agent import zygote_client

        if wenv is None and zygote_client.enabled():
            with self._zygote_lock:
                if self._zygote is None and not self.closed:
                    # started from the spawner thread: it dies with the agent (see _lifeline)
                    self._zygote = self.spawner.run(
                        lambda: zygote_client.Zygote(_lifeline.child_env(dict(os.environ))))
                    self._zygote.on_idle = self._zygote_idle
                zygote = self._zygote
                self._forking += 1
            try:
                if zygote is not None and zygote.alive:
                    worker_id, env = worker_env(a.token, a.address, a.node_id, a.ip, a.head_address)
                    forked = zygote.spawn(env)
                    if forked is not None:
                        return self.adopt(worker_id, forked)
            finally:
                with self._zygote_lock:
                    self._forking -= 1
        worker_id, proc = self.spawner.run(
            lambda: start_worker_process(a.token, a.address, a.node_id, a.ip, a.head_address, wenv))
        return self.adopt(worker_id, proc, wenv.key if wenv is not None else "")

    def _zygote_idle(self) -> None:
        """The zygote's last fork exited: stop it if it is still idle ``ZYGOTE_IDLE_S`` from now."""
        timer = threading.Timer(ZYGOTE_IDLE_S, self._stop_idle_zygote)
        timer.daemon = True
        timer.start()

    def _stop_idle_zygote(self) -> None:
        with self._zygote_lock:
            zygote = self._zygote
            if zygote is None or not pool_policy.zygote_should_stop(
                    zygote.live_forks(), self._forking, time.monotonic() - zygote.idle_since, ZYGOTE_IDLE_S):
                return  # (a fork since: its exit sets another timer)
            self._zygote = None  # the next spawn starts another
        log.info("stopping the idle worker zygote (no fork for %.0f s)", ZYGOTE_IDLE_S)
        zygote.stop()

    def adopt(self, worker_id: str, proc: Any, env_key: str = "") -> WorkerRecord:
        """Take charge of a worker process (also ones started before the agent's server was up)."""
        rec = WorkerRecord(worker_id, proc, env_key=env_key)
        with self.cond:
            self.by_id[worker_id] = rec
            closing = self.closed
            early = self._early.pop(worker_id, None)
            if early is not None and not closing:
                self._mark_idle(rec, early[0])
        if closing:  # started while the agent stops: kill_all has already run
            self.kill(rec)
        threading.Thread(target=self._reap, args=(rec,), daemon=True, name=f"reap-{proc.pid}").start()
        return rec

    def _reap(self, rec: WorkerRecord) -> None:
        code = rec.proc.wait()
        with self.cond:
            rec.state = "dead"
            self.by_id.pop(rec.worker_id, None)
            if rec in self.idle:
                self.idle.remove(rec)
            self.cond.notify_all()
        try:
            if not self.closed:
                self.on_exit(rec, code)
        finally:
            rec.exit_handled.set()

    def registered(self, worker_id: str, address: str, pid: int) -> None:
        with self.cond:
            rec = self.by_id.get(worker_id)
            if rec is None:  # not adopted yet: kept until adopt() (for a while: a stranger's is dropped)
                now = time.monotonic()
                self._early = {k: v for k, v in self._early.items() if now - v[1] < EARLY_KEEP_S}
                self._early[worker_id] = (address, now)
                return
            self._mark_idle(rec, address)

    def _mark_idle(self, rec: WorkerRecord, address: str) -> None:
        """A worker that registered is ready for work (called with the lock)."""
        if rec.state != "starting":
            return
        if not rec.env_key and self.waiting == 0 and sum(
                1 for r in self.by_id.values() if not r.dedicated and not r.env_key
                and r.state not in ("dead", "stopping")) > self.soft_limit:
            # started for callers that were served meanwhile: past the warm count nobody needs it
            from spindle._agent import graceful

            rec.state = "stopping"
            graceful.terminate(rec.proc)
            return
        rec.address = address
        rec.state = "idle"
        rec.idle_since = time.monotonic()
        self.idle.append(rec)
        self.cond.notify_all()

    def acquire(self, timeout: float, dedicated: bool = False, wenv: WorkerEnv | None = None) -> WorkerRecord | None:
        """An idle worker of the runtime env ``wenv`` (the plain ones when None), started if none is idle."""
        key = wenv.key if wenv is not None else ""
        deadline = time.monotonic() + timeout
        spawned = False
        with self.cond:
            self.waiting += 1
            try:
                while True:
                    match = [r for r in self.idle if r.env_key == key]
                    if match:
                        rec = match[-1]
                        self.idle.remove(rec)
                        rec.state = "busy"
                        rec.dedicated = dedicated
                        if dedicated:
                            self._top_up()
                        return rec
                    if not spawned:
                        starting = sum(1 for r in self.by_id.values() if r.state == "starting" and r.env_key == key)
                        forks = not key and self._zygote is not None and self._zygote.alive
                        if pool_policy.should_start_worker(self.waiting, starting, forks):
                            if key:
                                self._evict_other_env(key)
                            self.cond.release()
                            try:
                                self.spawn(wenv)
                            finally:
                                self.cond.acquire()
                        spawned = True
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self.cond.wait(min(left, 0.5))
                    if not any(r.env_key == key for r in self.idle):
                        spawned = False
            finally:
                self.waiting -= 1

    def _evict_other_env(self, key: str) -> None:
        """Before starting a worker for runtime env ``key``: stop one idle worker of another runtime env,
        so environments used once do not keep processes forever (called with the lock)."""
        others = [r for r in self.idle if r.env_key and r.env_key != key]
        if others:
            victim = min(others, key=lambda r: r.idle_since)
            self.idle.remove(victim)
            victim.state = "busy"  # reaped as dead once killed
            self.kill(victim)

    def _top_up(self) -> None:
        """Keep a warm worker for tasks after one is taken for an actor (called with the lock)."""
        live = sum(1 for r in self.by_id.values() if not r.env_key and (
            r.state in ("starting", "idle") or (r.state == "busy" and not r.dedicated)))
        if live < self.soft_limit:
            threading.Thread(target=self.spawn, daemon=True).start()

    def release(self, rec: WorkerRecord) -> None:
        with self.cond:
            if rec.state == "dead":
                return
            if rec.env_key:  # keep up to one warm worker per CPU for each runtime env in use
                kill = sum(1 for r in self.idle if r.env_key == rec.env_key) >= self.soft_limit
            else:
                kill = sum(1 for r in self.by_id.values()
                           if not r.dedicated and not r.env_key and r.state not in ("dead", "stopping")) > self.soft_limit
            kill = kill and not rec.dedicated
            if kill:  # no longer counted: workers released together must not all stop (the warm ones go too)
                rec.state = "stopping"
            else:
                rec.state = "idle"
                rec.idle_since = time.monotonic()
                self.idle.append(rec)
                self.cond.notify_all()
        if kill:  # gracefully: it sends its buffered task events before it exits (SIGKILL would lose them)
            from spindle._agent import graceful

            graceful.terminate(rec.proc)

    def kill(self, rec: WorkerRecord) -> None:
        try:
            rec.proc.kill()
        except ProcessLookupError:
            pass

    def kill_all(self) -> None:
        with self.cond:
            self.closed = True
            recs = list(self.by_id.values())
        for r in recs:
            self.kill(r)
        for r in recs:
            try:
                r.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        with self._zygote_lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()
