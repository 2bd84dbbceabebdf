"""The agent's worker pool accepts a worker's registration whichever comes first: its adoption or its RegisterWorker.

A worker forked by the zygote can register before the agent has read the zygote's reply naming its pid (the
agent's threads wait for the GIL on a busy node). The pool used to drop such a registration: the worker stayed
"starting" forever, and since the pool starts at most as many workers as callers wait for, an actor start then
waited for it forever (seen creating 60 actors at load ~20).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from spindle._agent.worker_pool import WorkerPool


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    exits: list[object] = []
    p = WorkerPool(SimpleNamespace(total={"CPU": 1.0}), lambda rec, code: exits.append((rec, code)))
    try:
        yield p
    finally:
        p.kill_all()


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_worker_that_registers_before_it_is_adopted_is_idle_once_adopted_and_handed_out(pool: WorkerPool) -> None:
    proc = _sleeper()
    pool.registered("w-early", "127.0.0.1:40001", proc.pid)
    assert "w-early" not in pool.by_id
    rec = pool.adopt("w-early", proc)
    assert (rec.state, rec.address) == ("idle", "127.0.0.1:40001")
    assert pool.acquire(timeout=5.0) is rec
    assert rec.state == "busy"


def test_a_worker_adopted_before_it_registers_becomes_idle_when_it_registers(pool: WorkerPool) -> None:
    proc = _sleeper()
    rec = pool.adopt("w-late", proc)
    assert rec.state == "starting"
    pool.registered("w-late", "127.0.0.1:40002", proc.pid)
    assert (rec.state, rec.address) == ("idle", "127.0.0.1:40002")
    assert pool.idle == [rec]


def test_a_registration_repeated_after_the_worker_was_handed_out_does_not_make_it_idle_again(pool: WorkerPool) -> None:
    proc = _sleeper()
    rec = pool.adopt("w-once", proc)
    pool.registered("w-once", "127.0.0.1:40003", proc.pid)
    assert pool.acquire(timeout=5.0) is rec
    pool.registered("w-once", "127.0.0.1:40003", proc.pid)
    assert rec.state == "busy" and pool.idle == []
