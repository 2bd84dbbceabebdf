"""Workers beyond the warm ones are forked by the node's zygote (spindle._core.zygote), and behave like any worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import psutil
import pytest

import spindle
from spindle import _procs
from tests.runtime._nodes import answer_when_restarted

pytestmark = pytest.mark.usefixtures("cluster")

PY = sys.executable


@spindle.remote
class Probe:
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def pid(self) -> int:
        return os.getpid()

    def value_and_env(self) -> tuple[int, str]:
        return self.value, os.environ.get("SPINDLE_WORKER_ID", "")

    def die(self) -> None:
        os._exit(3)


def _parent_role(pid: int) -> str:
    info = _procs.info(pid)
    assert info is not None
    parent = _procs.info(info.ppid)
    assert parent is not None
    return parent.role()


def test_actors_run_in_workers_forked_by_the_zygote_each_with_its_own_identity() -> None:
    actors = [Probe.remote(i) for i in range(6)]
    pids = spindle.get([a.pid.remote() for a in actors], timeout=120)
    assert len(set(pids)) == 6
    assert sum(_parent_role(p) == "zygote" for p in pids) >= 4  # all but the warm workers taken first
    got = spindle.get([a.value_and_env.remote() for a in actors], timeout=60)
    assert [v for v, _ in got] == list(range(6))
    assert len({w for _, w in got}) == 6 and all(w for _, w in got)
    for a in actors:
        spindle.kill(a)


@spindle.remote
class GcProbe:
    def pid(self) -> int:
        return os.getpid()

    def collect(self) -> tuple[int, int, bool]:
        import gc

        before = gc.get_freeze_count()
        gc.collect()  # a full collection must leave the inherited (frozen) objects where they are
        return before, gc.get_freeze_count(), gc.isenabled()


def test_a_forked_worker_keeps_the_zygotes_objects_frozen_so_its_collector_leaves_their_pages_shared() -> None:
    actors = [GcProbe.remote() for _ in range(4)]  # more than the warm workers: some are forked
    pids = spindle.get([a.pid.remote() for a in actors], timeout=120)
    got = spindle.get([a.collect.remote() for a in actors], timeout=60)
    forked = [g for p, g in zip(pids, got, strict=True) if _parent_role(p) == "zygote"]
    assert forked
    for before, after, enabled in forked:
        assert before > 10_000 and after == before  # everything the zygote imported stays frozen
        assert enabled  # the worker's own garbage is still collected
    for a in actors:
        spindle.kill(a)


def test_a_forked_actor_that_dies_is_restarted_and_its_exit_is_seen() -> None:
    a = Probe.options(max_restarts=1).remote(7)
    first = spindle.get(a.pid.remote(), timeout=60)
    with pytest.raises(spindle.exceptions.RayActorError):
        spindle.get(a.die.remote(), timeout=60)
    second = answer_when_restarted(a.pid.remote)
    assert second != first
    assert spindle.get(a.value_and_env.remote(), timeout=60)[0] == 7
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE


def test_a_killed_driver_takes_the_zygote_and_its_workers_with_it() -> None:
    proc = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import json, os, time, psutil, spindle
        spindle.init(num_cpus=1)
        @spindle.remote
        class A:
            def pid(self): return os.getpid()
        actors = [A.remote() for _ in range(3)]
        pids = spindle.get([a.pid.remote() for a in actors])
        tree = [p.pid for p in psutil.Process().children(recursive=True)]
        print(json.dumps(sorted(set(tree) | set(pids))), flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = json.loads(proc.stdout.readline())
    assert any(_procs.info(p) is not None and _procs.info(p).role() == "zygote" for p in pids)  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive() -> list[int]:
        return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    deadline, delay = time.monotonic() + 30, 0.05
    while alive() and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    assert not alive()


def test_without_the_zygote_workers_start_as_fresh_interpreters() -> None:
    out = subprocess.run([PY, "-c", textwrap.dedent("""
        import json, os, spindle
        from spindle import _procs
        spindle.init(num_cpus=1)
        @spindle.remote
        class A:
            def who(self): return os.getpid(), _procs.info(os.getpid()).role(), _procs.info(os.getppid()).role()
        actors = [A.remote() for _ in range(3)]
        print(json.dumps(spindle.get([a.who.remote() for a in actors])))
    """)], capture_output=True, text=True, timeout=300, env={**os.environ, "SPINDLE_WORKER_ZYGOTE": "0"})
    assert out.returncode == 0, out.stderr
    who: list[Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert len({pid for pid, _, _ in who}) == 3
    assert all(role == "worker" and parent == "embedded" for _, role, parent in who)  # init(): head + agent
