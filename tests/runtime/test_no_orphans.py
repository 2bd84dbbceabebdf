"""No Spindle process outlives its cluster: not after shutdown(), not after the driver is SIGKILLed,
even with a task that never ends and an actor asleep in a call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

DRIVER = textwrap.dedent("""
    import json, os, sys, time
    import spindle
    from spindle._core import api

    spindle.init(num_cpus=2, include_dashboard=False)

    @spindle.remote
    def endless(path, hold_gil):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        while True:
            if hold_gil:  # libc's sleep called through PyDLL keeps the GIL: no Python thread runs any more
                import ctypes
                ctypes.PyDLL(None).sleep(3600)
            time.sleep(0.5)

    @spindle.remote
    class Sleeper:
        def pid(self):
            return os.getpid()

        def nap(self):
            time.sleep(1000)

    path = sys.argv[1] + "/task.pid"
    endless.remote(path, sys.argv[2] == "kill")
    s = Sleeper.remote()
    actor_pid = spindle.get(s.pid.remote())
    s.nap.remote()
    while not os.path.exists(path) or not open(path).read():
        time.sleep(0.05)
    pids = [p.pid for p in api._state["local"].procs] + [actor_pid, int(open(path).read())]
    print(json.dumps(pids), flush=True)
    if sys.argv[2] == "shutdown":
        spindle.shutdown()
        print("SHUT", flush=True)
    time.sleep(1000)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    delay = 0.02
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return [p for p in pids if _alive(p)]


def _start(tmp_path: object, mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), mode], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "SPINDLE_ADDRESS": "", "RAY_ADDRESS": ""})
    assert proc.stdout is not None
    pids = json.loads(proc.stdout.readline())
    assert len(pids) == 3 and all(_alive(p) for p in pids)  # head and agent (one process), actor, task
    return proc, pids


def test_shutdown_leaves_no_process_behind_even_with_an_endless_task_and_a_sleeping_actor(tmp_path: object) -> None:
    proc, pids = _start(tmp_path, "shutdown")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "SHUT"
        # shutdown() returned: the head and agent are gone, and the agent took its workers with it
        assert [p for p in pids if _alive(p)] == []
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_driver_takes_its_head_agent_and_every_worker_with_it_even_one_stuck_holding_the_gil(
        tmp_path: object) -> None:
    proc, pids = _start(tmp_path, "kill")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone_within(pids, 30) == []
