"""cancel() on a real 2-CPU cluster, with Ray's semantics: queued tasks never run, running ones get
KeyboardInterrupt (or lose their worker with force=True), and the ref raises TaskCancelledError."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import TaskCancelledError

pytestmark = pytest.mark.usefixtures("cluster")


def _wait_for(path: Path, limit_s: float = 60.0) -> None:
    deadline = time.time() + limit_s
    delay = 0.01
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def test_cancelling_a_task_blocked_in_sleep_interrupts_it_with_keyboard_interrupt(tmp_path: Path) -> None:
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"

    @spindle.remote
    def sleeper() -> str:
        started.touch()
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            interrupted.touch()
            raise
        return "slept"

    ref = sleeper.remote()
    _wait_for(started)
    spindle.cancel(ref)
    with pytest.raises(TaskCancelledError) as info:
        spindle.get(ref, timeout=60)
    assert interrupted.exists()
    assert str(info.value) == f"Task 'test_cancelling_a_task_blocked_in_sleep_interrupts_it_with_keyboard_interrupt.<locals>.sleeper' ({info.value.task_id}) was cancelled."
    # the worker survived the interrupt and runs the next task
    assert spindle.get(_pid.remote(), timeout=60) > 0


@spindle.remote
def _pid() -> int:
    return os.getpid()


def test_a_cancelled_task_that_swallows_the_interrupt_still_reports_cancelled(tmp_path: Path) -> None:
    started = tmp_path / "started"

    @spindle.remote
    def stubborn() -> str:
        started.touch()
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            return "ignored the interrupt"
        return "slept"

    ref = stubborn.remote()
    _wait_for(started)
    spindle.cancel(ref)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=60)


def test_force_cancel_kills_the_worker_and_the_ref_raises_task_cancelled_error(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    @spindle.remote
    def hang(path: str) -> None:
        Path(path).write_text(str(os.getpid()))
        while True:
            time.sleep(1)

    ref = hang.remote(str(pid_file))
    _wait_for(pid_file)
    pid = int(pid_file.read_text())
    spindle.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=60)
    deadline = time.time() + 30
    while Path(f"/proc/{pid}").exists() and b"zombie" not in _state(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or b"zombie" in _state(pid)
    assert spindle.get(_pid.remote(), timeout=60) != pid


def _state(pid: int) -> bytes:
    try:
        status = Path(f"/proc/{pid}/status").read_bytes()
    except OSError:
        return b"zombie"
    return status.lower()


def test_a_queued_task_is_cancelled_without_ever_running(tmp_path: Path) -> None:
    release, ran = tmp_path / "release", tmp_path / "ran"

    @spindle.remote
    def blocker(path: str) -> None:
        while not os.path.exists(path):
            time.sleep(0.01)

    @spindle.remote
    def must_not_run(path: str) -> None:
        Path(path).touch()

    blockers = [blocker.remote(str(release)) for _ in range(2)]  # both CPUs busy
    queued = must_not_run.remote(str(ran))
    spindle.cancel(queued)
    with pytest.raises(TaskCancelledError):
        spindle.get(queued, timeout=30)
    release.touch()
    spindle.get(blockers, timeout=60)
    assert spindle.get(_pid.remote(), timeout=60) > 0
    assert not ran.exists()


def test_cancelling_a_finished_task_changes_nothing() -> None:
    ref = _pid.remote()
    value = spindle.get(ref, timeout=60)
    spindle.cancel(ref)
    assert spindle.get(ref, timeout=60) == value


def test_non_recursive_cancel_leaves_the_children_running(tmp_path: Path) -> None:
    child_started, child_done = tmp_path / "child-started", tmp_path / "child-done"

    @spindle.remote
    def child() -> None:
        child_started.touch()
        time.sleep(1.0)
        child_done.touch()

    @spindle.remote
    def parent() -> None:
        # sleep rather than get(): a parent blocked in get() lets the agent start a third worker, and when the
        # pool is trimmed back the parent's worker (the child's owner) may exit, and the child with it (as Ray)
        ref = child.remote()
        time.sleep(600)
        del ref

    ref = parent.remote()
    _wait_for(child_started)
    spindle.cancel(ref, recursive=False)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=60)
    _wait_for(child_done)


def test_the_cancelled_error_reads_well_and_survives_pickling() -> None:
    err = TaskCancelledError("ab12", "Task 'f' (ab12) was cancelled.")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "Task 'f' (ab12) was cancelled." and back.task_id == "ab12"
    assert str(pickle.loads(pickle.dumps(TaskCancelledError("ab12")))) == "Task ab12 was cancelled."


def test_a_task_pipelined_behind_a_long_one_is_cancelled_without_running(tmp_path: Path) -> None:
    release, log = tmp_path / "release", tmp_path / "runs"

    @spindle.remote
    def work(i: int, marker: str, log_path: str) -> int:
        while marker and not os.path.exists(marker):
            time.sleep(0.01)
        with open(log_path, "a") as f:
            f.write(f"{i}\n")
        return i

    assert spindle.get([work.remote(-1, "", os.devnull) for _ in range(3000)], timeout=120) == [-1] * 3000
    long_ref = work.remote(0, str(release), str(log))
    queued = [work.remote(i, "", str(log)) for i in range(1, 41)]
    spindle.cancel(queued[0])
    with pytest.raises(TaskCancelledError):
        spindle.get(queued[0], timeout=60)
    assert spindle.get(queued[1:], timeout=60) == list(range(2, 41))
    release.touch()
    assert spindle.get(long_ref, timeout=60) == 0
    assert sorted(int(x) for x in log.read_text().split()) == [0, *range(2, 41)]
