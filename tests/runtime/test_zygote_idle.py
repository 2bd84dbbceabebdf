"""The node's worker zygote is stopped once none of its forks lives and none was asked for during
``SPINDLE_ZYGOTE_IDLE_S``, and started again when a worker must be forked (real embedded cluster, 1 CPU: one warm
worker started as a fresh interpreter, the burst's extra workers forked and stopped when the burst ends)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import spindle
from spindle import _procs
from tests.runtime._nodes import init_with_env, process_gone, wait_until


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    with init_with_env({"SPINDLE_ZYGOTE_IDLE_S": "1"}, num_cpus=1):
        yield


@spindle.remote(num_cpus=0)
def until_released(folder: str) -> int:
    """Runs until ``folder/<its pid>.release`` exists, so the test ends each worker's task when it chooses."""
    pid = os.getpid()
    Path(folder, f"{pid}.started").touch()
    delay = 0.01
    while not Path(folder, f"{pid}.release").exists():
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return pid


def zygotes() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True)
            if (info := _procs.info(p.pid)) is not None and info.role() == "zygote"]


def forked(pid: int) -> bool:
    info = _procs.info(pid)
    parent = _procs.info(info.ppid) if info is not None else None
    return parent is not None and parent.role() == "zygote"


def burst(folder: Path, n: int) -> int:
    """``n`` tasks at once, on ``n`` workers; ends the forked workers' tasks first (each such worker stopped
    before the next ends: past the warm count), the warm worker's last. Returns the pid of the zygote that forked."""
    folder.mkdir()
    refs = [until_released.remote(str(folder)) for _ in range(n)]
    wait_until(lambda: len(list(folder.glob("*.started"))) == n, 120, f"{n} tasks running at once")
    pids = [int(p.name.split(".")[0]) for p in folder.glob("*.started")]
    forks = [p for p in pids if forked(p)]
    assert len(forks) == n - 1, "all but the node's warm worker were forked"
    [zygote] = {info.ppid for p in forks if (info := _procs.info(p)) is not None}
    for pid in forks + [p for p in pids if p not in forks]:
        (folder / f"{pid}.release").touch()
        if pid in forks:
            wait_until(lambda pid=pid: process_gone(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                       60, "the burst's extra worker stopped")
    assert sorted(spindle.get(refs, timeout=60)) == sorted(pids)
    return zygote


def test_an_idle_zygote_without_live_forks_is_stopped_and_started_again_when_a_worker_is_forked(
        tmp_path: Path) -> None:
    first = burst(tmp_path / "first", 3)
    wait_until(lambda: not zygotes(), 60, "the idle zygote stopped")
    # (zygotes() no longer lists it once it exited; the agent reaps it a moment later: CI saw the zombie in between)
    wait_until(lambda: process_gone(first), 30, "the stopped zygote reaped by its agent")

    second = burst(tmp_path / "second", 3)  # forked by a zygote started again
    assert second != first
    wait_until(lambda: not zygotes(), 60, "the idle zygote stopped again")
