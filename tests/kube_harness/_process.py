"""Child processes of the harness: started with logs in files, stopped for sure.

etcd, kube-apiserver and kube-controller-manager log a lot; their output goes to one file each so a
failure can show the tail of the right log instead of interleaving three of them on the terminal.
Each child gets PR_SET_PDEATHSIG so it dies with the test process even when pytest is SIGKILLed,
and stop() escalates from SIGTERM to SIGKILL, so a session never leaves servers behind.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class StartupError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


class Process:
    """One server binary running with its output in ``log``."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._file = log.open("wb")
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Started from the main thread only, so preexec_fn's fork caveat does not apply.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def failure(self, why: str) -> StartupError:
        """Stop the process (a half-started server must not linger) and describe why, with its log."""
        self.stop()
        return StartupError(f"{self.name} {why}; last lines of {self.log}:\n{tail(self.log)}")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` with exponential backoff until it holds; StartupError if the process dies or
        time runs out (the process is stopped then)."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not self.alive():
                raise self.failure(f"exited with code {self._popen.returncode} before {what}")
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise self.failure(f"was not {what} within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        if not self._file.closed:
            self._file.close()


def start_retrying(start: Callable[[], T], attempts: int = 3) -> T:
    """Run ``start`` again when a server lost the race for the port free_port() picked."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except StartupError as exc:
            if attempt == attempts or "address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")
