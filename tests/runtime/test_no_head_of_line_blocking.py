"""No task waits behind another while a CPU is free (real 2-CPU cluster).

The long tasks here block until the test releases them (a marker file), so "the short tasks finished
while the long one was still running" is checked without any timing assertion.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import spindle

pytestmark = pytest.mark.usefixtures("cluster")


def _block_until(marker: str, limit_s: float = 120.0) -> None:
    deadline = time.time() + limit_s
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.01)


@spindle.remote
def noop() -> int:
    return 1


def test_a_new_functions_first_two_tasks_run_on_both_cpus_at_once() -> None:
    spindle.get([noop.remote() for _ in range(2000)])  # a burst of short tasks first

    @spindle.remote
    def interval() -> tuple[float, float, int]:
        start = time.time()
        time.sleep(0.3)
        return start, time.time(), os.getpid()

    (s1, e1, p1), (s2, e2, p2) = spindle.get([interval.remote(), interval.remote()], timeout=60)
    assert p1 != p2
    assert s1 < e2 and s2 < e1  # they overlapped: neither queued behind the other


def test_short_tasks_finish_while_a_long_task_of_another_function_runs(tmp_path: Path) -> None:
    release = str(tmp_path / "release")
    spindle.get([noop.remote() for _ in range(2000)])

    @spindle.remote
    def long_task(marker: str) -> str:
        _block_until(marker)
        return "long done"

    long_ref = long_task.remote(release)
    try:
        assert spindle.get([noop.remote() for _ in range(500)], timeout=60) == [1] * 500
        ready, _ = spindle.wait([long_ref], timeout=0)
        assert ready == []  # still running: the short ones did not wait for it
    finally:
        open(release, "w").close()
    assert spindle.get(long_ref, timeout=60) == "long done"


def test_tasks_queued_behind_a_call_that_turns_out_long_are_given_back_and_run_once(tmp_path: Path) -> None:
    release = str(tmp_path / "release")
    log = str(tmp_path / "runs")

    @spindle.remote
    def work(i: int, marker: str, log_path: str) -> int:
        if marker:
            _block_until(marker)
        with open(log_path, "a") as f:
            f.write(f"{i}\n")
        return i

    # teach the submitter that `work` is short, so its calls are pipelined several per worker
    assert spindle.get([work.remote(-1, "", os.devnull) for _ in range(3000)], timeout=120) == [-1] * 3000
    long_ref = work.remote(0, release, log)
    short = [work.remote(i, "", log) for i in range(1, 301)]
    try:
        assert spindle.get(short, timeout=60) == list(range(1, 301))
        ready, _ = spindle.wait([long_ref], timeout=0)
        assert ready == []
    finally:
        open(release, "w").close()
    assert spindle.get(long_ref, timeout=60) == 0
    runs = Path(log).read_text().split()
    assert sorted(int(r) for r in runs) == list(range(0, 301))  # every task ran exactly once


def test_nested_tasks_run_while_their_parents_wait() -> None:
    @spindle.remote
    def child(i: int) -> int:
        return i

    @spindle.remote
    def parent(n: int) -> int:
        return sum(spindle.get([child.remote(i) for i in range(n)]))

    assert spindle.get([parent.remote(50) for _ in range(6)], timeout=120) == [1225] * 6
