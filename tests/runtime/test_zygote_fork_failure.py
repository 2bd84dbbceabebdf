"""A zygote that cannot fork (every fork refused) costs no task: the node starts its workers as fresh interpreters
instead, and the zygote, which then has no fork whose exit would start its idle timer, is still stopped after
``SPINDLE_ZYGOTE_IDLE_S``. Real embedded cluster, 1 CPU; ``SPINDLE_TESTING_ZYGOTE_FORK_FAILS=1`` makes the real
zygote refuse each fork as ``fork(2)`` does when out of processes (EAGAIN)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle._core import api
from tests.runtime._nodes import init_with_env, wait_until
from tests.runtime.test_zygote_idle import forked, zygotes


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    with init_with_env({"SPINDLE_ZYGOTE_IDLE_S": "1", "SPINDLE_TESTING_ZYGOTE_FORK_FAILS": "1"}, num_cpus=1):
        yield


@spindle.remote(num_cpus=0)
def held(folder: str) -> int:
    """Runs until ``folder/release`` exists, so the burst's tasks run at once, one worker each."""
    Path(folder, f"{os.getpid()}.started").touch()
    while not Path(folder, "release").exists():
        time.sleep(0.05)
    return os.getpid()


def test_a_burst_runs_on_fresh_workers_when_forks_fail_and_the_zygote_that_never_forked_is_stopped(
        tmp_path: Path) -> None:
    refs = [held.remote(str(tmp_path)) for _ in range(3)]
    wait_until(lambda: len(list(tmp_path.glob("*.started"))) == 3, 120, "3 tasks running at once")
    pids = [int(p.name.split(".")[0]) for p in tmp_path.glob("*.started")]
    assert not any(forked(p) for p in pids), "every worker was started afresh"
    (tmp_path / "release").touch()
    assert sorted(spindle.get(refs, timeout=60)) == sorted(pids)
    wait_until(lambda: not zygotes(), 60, "the zygote that never forked stopped")
    log = Path(api._state["local"].session_dir, "logs", "agent.log").read_text()
    assert "could not fork a worker: [Errno 11] fork refused" in log  # there was a zygote, and it failed
