"""A lease holder stalled past the agent's confirm window (a SIGSTOPped driver) loses no task and never hangs: the
agent takes the unused lease back, and when the driver resumes it learns so and asks for another worker, its task
running once (max_retries=0) and never alongside the task the node lent that CPU to meanwhile.

Real embedded cluster with one CPU, ``SPINDLE_LEASE_CONFIRM_S=1``; the driver is a separate process that SIGSTOPs
itself right after its first lease is granted (``SPINDLE_TESTING_STOP_AFTER_GRANT=1``), the moment a starved
process would stall at; the test resumes it with SIGCONT.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import spindle
from spindle._core import api
from tests.runtime._nodes import init_with_env, wait_until


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    with init_with_env({"SPINDLE_LEASE_CONFIRM_S": "1"}, num_cpus=1):
        yield


def wait_for_file(path: Path) -> None:
    delay = 0.01
    while not path.exists():
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@spindle.remote(num_cpus=1)
def hold_cpu(folder: str) -> str:
    """Runs until ``folder/release`` exists, holding ``cpu.lock`` (which ``work`` below must find free)."""
    with open(os.path.join(folder, "cpu.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        Path(folder, "hold.started").touch()
        wait_for_file(Path(folder, "release"))
    return "held"


@spindle.remote(num_cpus=0)
def side(folder: str) -> str:
    """Keeps a second worker busy (so the worker of the lease taken back is one too many and is stopped)."""
    Path(folder, "side.started").touch()
    wait_for_file(Path(folder, "release"))
    return "side"


DRIVER = """
import fcntl, os, sys
from pathlib import Path
import spindle

spindle.init(address=sys.argv[1])

@spindle.remote(num_cpus=1, max_retries=0)
def work(folder):
    Path(folder, "work.started").touch()
    with open(os.path.join(folder, "cpu.lock"), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "ran while the node lent its CPU to another task"
    return "ran alone"

print(spindle.get(work.remote(sys.argv[2]), timeout=300), flush=True)
"""


def test_a_driver_stalled_past_the_lease_confirm_window_gets_another_worker_and_loses_no_task(tmp_path: Path) -> None:
    local = api._state["local"]
    env = {**os.environ, "SPINDLE_TOKEN": local.token, "SPINDLE_TESTING_STOP_AFTER_GRANT": "1"}
    err = tmp_path / "driver.err"
    with open(err, "w") as stderr:
        driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER), local.head_address, str(tmp_path)],
                                  env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        proc = psutil.Process(driver.pid)
        wait_until(lambda: proc.status() == psutil.STATUS_STOPPED or driver.poll() is not None, 120,
                   "the driver stopped right after its lease was granted")
        assert driver.poll() is None, err.read_text()

        # meanwhile: a second worker is busy, and the node's only CPU goes to another task once the agent has
        # taken the unused lease back (1 s): so that task starting is the sign the lease is gone
        sides = side.remote(str(tmp_path))
        wait_for_file(tmp_path / "side.started")
        held = hold_cpu.remote(str(tmp_path))
        wait_for_file(tmp_path / "hold.started")

        os.kill(driver.pid, signal.SIGCONT)
        wait_until(lambda: "took back a worker lease" in err.read_text() or driver.poll() is not None, 120,
                   "the resumed driver learnt its lease was taken back")
        assert driver.poll() is None, err.read_text()
        assert not (tmp_path / "work.started").exists()  # not run on the worker the lease had, nor anywhere yet

        (tmp_path / "release").touch()
        out, _ = driver.communicate(timeout=120)
        assert driver.returncode == 0, err.read_text()
        assert out.strip().splitlines()[-1] == "ran alone"
        assert spindle.get([held, sides], timeout=60) == ["held", "side"]
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGCONT)
            driver.kill()
            driver.wait()
