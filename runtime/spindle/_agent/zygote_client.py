"""The agent's side of the node's worker zygote (``spindle._core.zygote``): fork a worker, learn when it exits.

Forked workers are the zygote's children, not the agent's, so the agent cannot ``waitpid`` them:
the zygote reports each exit with its code, and ``ForkedProc`` offers the part of
``subprocess.Popen`` the worker pool uses (``pid``, ``wait``, ``poll``, ``kill``). If the zygote cannot
start or dies, ``spawn`` returns None and the pool starts workers as fresh interpreters; workers of a
dead zygote exit on their own (their parent changed) and are reported exited.
``SPINDLE_WORKER_ZYGOTE=0`` turns the zygote off.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("spindle")


def enabled() -> bool:
    return os.environ.get("SPINDLE_WORKER_ZYGOTE", "1") != "0" and hasattr(os, "fork")


class ForkedProc:
    """A worker forked by the zygote, shaped like the ``subprocess.Popen`` the pool otherwise holds."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._done = threading.Event()

    def _exited(self, code: int | None) -> None:
        self.returncode = code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return self.returncode

    def kill(self) -> None:
        if self._done.is_set():
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Zygote:
    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "spindle._core.zygote"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lock = threading.Lock()  # one fork request at a time
        self._replies: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._children: dict[int, ForkedProc] = {}
        self._early_exits: dict[int, int] = {}
        self._state_lock = threading.Lock()
        self.alive = True
        self.ready = threading.Event()
        self.idle_since = time.monotonic()  # its last fork, or its last fork's exit
        self.on_idle: Callable[[], None] | None = None  # called when its last live fork exits
        threading.Thread(target=self._read_loop, daemon=True, name="zygote-reader").start()

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "ready" in msg:
                self.ready.set()
            elif "exit" in msg:
                with self._state_lock:
                    child = self._children.pop(msg["exit"], None)
                    if child is None:
                        self._early_exits[msg["exit"]] = msg["code"]
                if child is not None:
                    child._exited(msg["code"])
                    self._maybe_idle()
            else:
                self._replies.put(msg)
        # the zygote died: its children exit on their own (their parent changed); report them exited
        self.alive = False
        self.ready.set()
        self._replies.put({"error": "the zygote exited"})
        with self._state_lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.kill()
            child._exited(None)

    def spawn(self, env: dict[str, str], timeout: float = 30.0) -> ForkedProc | None:
        """Fork a worker with these environment variables set; None when the zygote cannot."""
        if not self.ready.wait(timeout) or not self.alive:
            return None
        with self._lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write((json.dumps({"env": env}) + "\n").encode())
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self.alive = False
                return None
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                log.warning("the worker zygote did not answer a fork request in %.0f s; starting workers afresh",
                            timeout)
                self.close()
                return None
        if "pid" not in reply:
            log.warning("the worker zygote could not fork a worker: %s", reply.get("error"))
            self._maybe_idle()  # no fork whose exit would start its idle timer: one that never forks stops too
            return None
        child = ForkedProc(reply["pid"])
        with self._state_lock:
            code = self._early_exits.pop(child.pid, None)
            if code is None:
                self._children[child.pid] = child
            self.idle_since = time.monotonic()
        if code is not None:
            child._exited(code)
            self._maybe_idle()
        return child

    def live_forks(self) -> int:
        with self._state_lock:
            return len(self._children)

    def _maybe_idle(self) -> None:
        with self._state_lock:
            self.idle_since = time.monotonic()
            idle = not self._children
        if idle and self.on_idle is not None:
            self.on_idle()

    def stop(self) -> None:
        """End it as the agent's exit would: close its input (it exits), killed if it has not in a few seconds."""
        self.alive = False
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.close()
            self.proc.wait()

    def close(self) -> None:
        self.alive = False
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
